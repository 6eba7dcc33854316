"""Revocation (RFC 7009 and the operator API) and the never-forgotten rule, on real Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from support.claims import unverified_claims

from app.clocks import CLOCK_SKEW_SECONDS
from app.oidc.verify import LEEWAY_SECONDS
from app.settings import MAX_TOKEN_TTL

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint, token_past_the_epoch
from .oauth_api import REVOCATIONS_PATH, REVOKE_PATH, Clients, is_active
from .policies import github_publisher


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients.toml")


@pytest.fixture
def app(make_app: MakeApp, clients: Clients, oidc_issuer: Any) -> Flask:
    # Two workflows of one repository and a second project, so bulk revocations can be
    # shown to hit exactly what they name.
    return make_app(
        [
            github_publisher(oidc_issuer.url),
            github_publisher(oidc_issuer.url, workflow="nightly.yml", projects=["other-pkg"]),
        ],
        clients_file=clients.path,
    )


def minted(client: FlaskClient, make_token: MakeToken, **overrides: Any) -> str:
    token: str = assert_minted(mint(client, make_token(**overrides)))["token"]
    return token


def nightly_overrides() -> dict[str, str]:
    ref = "octo-org/demo/.github/workflows/nightly.yml@refs/heads/main"
    return {"workflow_ref": ref, "job_workflow_ref": ref}


def test_holder_burns_its_own_token_without_credentials(
    client: FlaskClient, make_token: MakeToken, clients: Clients, store: redis.Redis
) -> None:
    token = minted(client, make_token)
    other = minted(client, make_token)

    response = client.post(REVOKE_PATH, data={"token": token})

    assert response.status_code == 200
    assert not is_active(client, token, clients.basic("index"))
    assert is_active(client, other, clients.basic("index"))
    # The entry lives as long as the token would have, and no longer.
    (key,) = store.keys("trustpub:rev:jti:*")
    remaining = unverified_claims(token.removeprefix("pypi-"))["exp"] - int(time.time())
    # Kept as long as a replica whose clock is behind may still take the token.
    remaining += CLOCK_SKEW_SECONDS
    assert remaining - 2 <= store.ttl(key) <= remaining + 2


@pytest.mark.parametrize(
    "token", ["", "garbage", "pypi-not.a.token"], ids=["empty", "garbage", "prefixed-garbage"]
)
def test_revoking_an_unknown_token_is_not_an_error(client: FlaskClient, token: str) -> None:
    response = client.post(REVOKE_PATH, data={"token": token})

    # RFC 7009: 200 for invalid tokens; a missing parameter is a malformed request.
    assert response.status_code == (400 if token == "" else 200)


def test_revoke_with_wrong_client_credentials_is_refused(
    client: FlaskClient, make_token: MakeToken, clients: Clients
) -> None:
    token = minted(client, make_token)

    response = client.post(
        REVOKE_PATH, data={"token": token}, headers={"Authorization": "Bearer tpc_wrong"}
    )

    assert response.status_code == 401
    assert is_active(client, token, clients.basic("index"))


def test_project_revocation_covers_tokens_minted_up_to_the_moment(
    client: FlaskClient, make_token: MakeToken, clients: Clients
) -> None:
    demo = minted(client, make_token)
    other_project = minted(client, make_token, **nightly_overrides())
    issued_at = unverified_claims(demo.removeprefix("pypi-"))["iat"]

    earlier = client.post(
        REVOCATIONS_PATH,
        json={"project": "Demo.Pkg", "before": issued_at - 1},
        headers=clients.basic("operator"),
    )
    assert earlier.status_code == 200, earlier.get_json()
    assert is_active(client, demo, clients.basic("index"))  # minted after that moment

    response = client.post(
        REVOCATIONS_PATH, json={"project": "demo-pkg"}, headers=clients.basic("operator")
    )

    assert response.status_code == 200
    revoked = response.get_json()["revoked"]
    assert revoked["scope"] == "project"
    assert revoked["expires_at"] == revoked["before"] + MAX_TOKEN_TTL + CLOCK_SKEW_SECONDS
    assert not is_active(client, demo, clients.basic("index"))
    assert is_active(client, other_project, clients.basic("index"))


@pytest.mark.parametrize(
    ("body", "demo_active", "nightly_active"),
    [
        ({"repository": "OCTO-ORG/demo"}, False, False),
        ({"repository": "octo-org/demo", "workflow": "nightly.yml"}, True, False),
        ({"repository": "octo-org/other"}, True, True),
    ],
    ids=["whole-repository", "one-workflow", "another-repository"],
)
def test_publisher_revocation_hits_exactly_what_it_names(
    client: FlaskClient,
    make_token: MakeToken,
    clients: Clients,
    oidc_issuer: Any,
    body: dict[str, str],
    demo_active: bool,
    nightly_active: bool,
) -> None:
    demo = minted(client, make_token)
    nightly = minted(client, make_token, **nightly_overrides())

    response = client.post(
        REVOCATIONS_PATH, json={**body, "issuer": oidc_issuer.url}, headers=clients.basic("admin")
    )

    assert response.status_code == 200, response.get_json()
    assert is_active(client, demo, clients.basic("index")) is demo_active
    assert is_active(client, nightly, clients.basic("index")) is nightly_active


def test_operator_revokes_one_token_by_jti(
    client: FlaskClient, make_token: MakeToken, clients: Clients
) -> None:
    token = minted(client, make_token)
    jti = unverified_claims(token.removeprefix("pypi-"))["jti"]

    response = client.post(REVOCATIONS_PATH, json={"jti": jti}, headers=clients.bearer("operator"))

    assert response.status_code == 200
    assert not is_active(client, token, clients.basic("index"))


def test_a_token_given_as_a_jti_is_refused_and_never_recorded(
    client: FlaskClient,
    make_token: MakeToken,
    clients: Clients,
    store: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An operator pastes the leaked token into the jti field: acknowledged, it would
    # revoke nothing (no token has that jti) and write the live token into the audit
    # stream and the log.
    token = minted(client, make_token)

    response = client.post(
        REVOCATIONS_PATH, json={"jti": token}, headers=clients.bearer("operator")
    )

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid-request"
    assert token not in response.get_data(as_text=True)
    assert token not in repr(store.xrange("trustpub:audit"))
    assert token not in caplog.text
    assert is_active(client, token, clients.basic("index"))


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"project": "demo-pkg"}, 401, "unauthenticated"),
        ("index", {"project": "demo-pkg"}, 403, "insufficient-scope"),
        ("operator", {"project": "demo-pkg", "jti": "x"}, 400, "invalid-request"),
        ("operator", {}, 400, "invalid-request"),
        ("operator", {"project": 5}, 400, "invalid-request"),
        ("operator", {"project": "demo-pkg", "before": "yesterday"}, 400, "invalid-request"),
        ("operator", {"project": "demo-pkg", "before": 4102444800}, 400, "invalid-request"),
        ("operator", {"token": "pypi-garbage"}, 400, "invalid-request"),
        ("operator", b"[" * 5000 + b"]" * 5000, 400, "invalid-request"),
        # Targets no token can carry were acknowledged as revoked and revoked nothing.
        ("operator", {"project": "demo-pkg\n"}, 400, "invalid-request"),
        ("operator", {"project": " demo_pkg"}, 400, "invalid-request"),
        ("operator", {"repository": "https://github.com/octo-org/demo"}, 400, "invalid-request"),
        ("operator", {"repository": "octo-org/demo/"}, 400, "invalid-request"),
        (
            "operator",
            {
                "repository": "octo-org/demo",
                "issuer": "https://token.actions.githubusercontent.com/",
            },
            400,
            "invalid-request",
        ),
        (
            "operator",
            {"repository": "octo-org/demo", "workflow": ".github/workflows/release.yml"},
            400,
            "invalid-request",
        ),
        ("operator", b'{"project": "demo-pkg", "project": "other"}', 400, "invalid-request"),
        # Fields the scope does not take were ignored: a project revoked whole.
        ("operator", {"project": "demo-pkg", "workflow": "release.yml"}, 400, "invalid-request"),
        ("operator", {"jti": "x", "before": 1}, 400, "invalid-request"),
        ("operator", {"project": "demo-pkg", "befor": 1}, 400, "invalid-request"),
        ("operator", {"project": "demo-pkg", "before": -1}, 400, "invalid-request"),
    ],
    ids=[
        "no-credentials",
        "introspect-only-client",
        "two-scopes",
        "no-scope",
        "project-not-string",
        "before-not-number",
        "before-in-future",
        "token-not-ours",
        "deeply-nested",  # was a RecursionError: 500
        "project-trailing-newline",
        "project-leading-space",
        "repository-url",
        "repository-trailing-slash",
        "issuer-not-trusted",
        "github-workflow-path",
        "duplicate-keys",
        "workflow-beside-project",
        "before-beside-jti",
        "unknown-field",
        "before-negative",
    ],
)
def test_operator_revocation_errors(
    client: FlaskClient,
    clients: Clients,
    headers: Any,
    body: dict[str, Any] | bytes,
    status: int,
    code: str,
    store: redis.Redis,
) -> None:
    auth = clients.basic(headers) if isinstance(headers, str) else headers

    if isinstance(body, bytes):
        response = client.post(
            REVOCATIONS_PATH, data=body, content_type="application/json", headers=auth
        )
    else:
        response = client.post(REVOCATIONS_PATH, json=body, headers=auth)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert store.keys("trustpub:rev:*") == []


@pytest.mark.parametrize(
    ("repository", "status"),
    [
        ("github.com/octo-org/demo", 400),  # a host in front
        ("octo-org", 400),  # an owner alone: no scope covers a whole owner
        ("octo-org/demo/extra", 400),
        ("OCTO-ORG/Demo", 200),  # GitHub compares repositories ignoring case
    ],
)
def test_a_repository_no_token_of_its_issuer_carries_is_refused(
    client: FlaskClient,
    clients: Clients,
    make_token: MakeToken,
    oidc_issuer: Any,
    repository: str,
    status: int,
) -> None:
    token = assert_minted(mint(client, make_token()))["token"]
    body = {"repository": repository, "issuer": oidc_issuer.url}

    response = client.post(REVOCATIONS_PATH, json=body, headers=clients.basic("operator"))

    assert response.status_code == status
    # Acknowledged only when it revoked the token of octo-org/demo.
    assert is_active(client, token, clients.basic("index")) is (status == 400)


def test_store_down_revocation_answers_503_not_success(
    client: FlaskClient, make_token: MakeToken, clients: Clients, redis_server: Any
) -> None:
    token = minted(client, make_token)
    redis_server.kill()

    holder = client.post(REVOKE_PATH, data={"token": token})
    operator = client.post(
        REVOCATIONS_PATH, json={"project": "demo-pkg"}, headers=clients.basic("operator")
    )

    for response in (holder, operator):
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0


def test_data_loss_never_forgets_a_revocation_or_a_used_oidc_token(
    client: FlaskClient, make_token: MakeToken, clients: Clients, store: redis.Redis
) -> None:
    oidc_token = make_token()
    revoked = assert_minted(mint(client, oidc_token))["token"]
    unrevoked = minted(client, make_token)
    assert client.post(REVOKE_PATH, data={"token": revoked}).status_code == 200
    assert not is_active(client, revoked, clients.basic("index"))

    store.flushall()  # Redis restarted without persistence, or failed over to an empty replica

    # The revocation record is gone, yet the token stays inactive; so does every token
    # minted before the loss, whose revocations cannot be vouched for any more.
    assert not is_active(client, revoked, clients.basic("index"))
    assert not is_active(client, unrevoked, clients.basic("index"))
    # The replay record is gone, yet the exchanged OIDC token stays refused.
    assert_failure(mint(client, oidc_token), 422, "invalid-reuse-token")
    assert store.get("trustpub:epoch") is not None
    # Tokens issued after the loss exchange normally and are active: issued, that is, more
    # than the leeway and the clock skew after the new epoch began, as an issuer's clock
    # may be the leeway ahead of a replica's, and a replica's the skew ahead of Redis's.
    fresh = assert_minted(mint(client, token_past_the_epoch(make_token, store)))["token"]
    assert is_active(client, fresh, clients.basic("index"))
    # The store has an epoch again, a new one: what was minted before the loss stays
    # inactive (above, the epoch was merely missing; here it differs from theirs).
    assert not is_active(client, revoked, clients.basic("index"))
    assert not is_active(client, unrevoked, clients.basic("index"))


@pytest.mark.parametrize("ahead", [1, 30, LEEWAY_SECONDS])
def test_a_token_of_an_issuer_clock_ahead_is_not_exchanged_again_after_a_data_loss(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis, ahead: int
) -> None:
    oidc_token = make_token(now=int(time.time()) + ahead)  # within the leeway: accepted
    assert_minted(mint(client, oidc_token))

    store.flushall()  # a moment later: the replay record is gone, a new epoch begins

    assert_failure(mint(client, oidc_token), 422, "invalid-reuse-token")


def test_a_gitlab_workflow_is_revoked_by_its_path(client: FlaskClient, clients: Clients) -> None:
    # GitLab names the CI file by its path: only GitHub's workflows are bare file names.
    body = {"repository": "group/sub/project", "workflow": "ci/release.yml"}

    response = client.post(
        REVOCATIONS_PATH,
        json={**body, "issuer": "https://gitlab.com"},
        headers=clients.basic("operator"),
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["revoked"]["scope"] == "repository"
