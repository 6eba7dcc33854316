"""`POST /_/oidc/explain` and `trustpub explain`: what matched, without minting or using the jti.

The report covers the publishers of the caller's own repository (same issuer, same lookup
key) and nothing else; a token that does not verify gets the contract's error envelope.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from support.claims import REMOVE, gitlab_claims, google_claims
from support.oidc_issuer import OIDCIssuer
from werkzeug.test import TestResponse

from .conftest import MakeApp, MakeClaims, MakeToken
from .exchange_api import (
    AUDIENCE,
    assert_failure,
    assert_minted,
    mint,
    replay_keys,
    upload_token_projects,
)
from .policies import OWNER_ID, github_publisher, gitlab_publisher, google_publisher, write_policy

EXPLAIN_PATH = "/_/oidc/explain"
TRUSTPUB = Path(sys.executable).with_name("trustpub")
MakeIssuer = Callable[..., OIDCIssuer]


def explain(client: FlaskClient, token: str) -> TestResponse:
    return client.post(EXPLAIN_PATH, json={"token": token})


def report_of(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert isinstance(body, dict)
    assert set(body) == {
        "issuer",
        "provider",
        "lookup_key",
        "would_mint",
        "projects",
        "reason",
        "publishers",
    }
    for publisher in body["publishers"]:
        assert set(publisher) == {
            "source",
            "matches",
            "selected",
            "specificity",
            "projects",
            "checks",
        }
        for check in publisher["checks"]:
            assert set(check) == {"claim", "expected", "received", "ok"}
        assert publisher["matches"] is all(check["ok"] for check in publisher["checks"])
    return body


def test_matching_token_is_explained_and_can_still_be_exchanged(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, store: redis.Redis
) -> None:
    token = make_token()

    report = report_of(explain(client, token))

    assert report["issuer"] == oidc_issuer.url
    assert report["provider"] == "github"
    assert report["lookup_key"] == "octo-org/demo"
    assert report["would_mint"] is True
    assert report["projects"] == ["demo-pkg"]
    assert report["reason"] is None
    (publisher,) = report["publishers"]
    assert publisher["source"] == "publishers.toml: publisher[0]"  # no server directories
    assert publisher["matches"] is True
    assert publisher["selected"] is True
    assert [check["claim"] for check in publisher["checks"]] == [
        "repository",
        "repository_owner_id",
        "workflow_ref",
        "repository_id",
        "environment",
    ]
    assert publisher["checks"][2] == {
        "claim": "workflow_ref",
        "expected": "workflow file 'release.yml'",
        "received": "release.yml",
        "ok": True,
    }
    # Neither minted nor consumed: the same token exchanges afterwards, once.
    assert replay_keys(store) == []
    assert_minted(mint(client, token))
    assert_failure(mint(client, token), 422, "invalid-reuse-token")
    # Explaining a used token still works: the report is about matching, not replay.
    assert report_of(explain(client, token))["would_mint"] is True


def test_mismatch_is_explained_check_by_check_and_agrees_with_the_exchange(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = make_app(
        [
            github_publisher(oidc_issuer.url, environment="production", projects=["a"]),
            github_publisher(oidc_issuer.url, workflow="publish.yml", projects=["b"]),
        ]
    ).test_client()
    token = make_token(environment="pypi")

    report = report_of(explain(client, token))
    description = assert_failure(mint(client, token), 422, "invalid-publisher")

    assert report["would_mint"] is False
    assert report["projects"] == []
    assert report["reason"] == description
    first, second = report["publishers"]
    assert (first["matches"], second["matches"]) == (False, False)
    assert [c for c in first["checks"] if not c["ok"]] == [
        {
            "claim": "environment",
            "expected": "'production' (any case)",
            "received": "pypi",
            "ok": False,
        }
    ]
    assert [c["claim"] for c in second["checks"] if not c["ok"]] == ["workflow_ref"]


def test_only_the_callers_own_publishers_are_listed(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: MakeIssuer,
    make_token: MakeToken,
) -> None:
    enterprise = make_oidc_issuer("/my-enterprise")
    client = make_app(
        [
            github_publisher(oidc_issuer.url, projects=["mine"]),
            github_publisher(oidc_issuer.url, repository="octo-org/secret", projects=["secret"]),
            github_publisher(oidc_issuer.url, repository="octo-org/dem", projects=["prefix"]),
            github_publisher(enterprise.url, projects=["enterprise-twin"]),
        ],
        issuers=[oidc_issuer.url, enterprise.url],
    ).test_client()

    response = explain(client, make_token())
    report = report_of(response)

    assert [p["projects"] for p in report["publishers"]] == [["mine"]]
    text = response.get_data(as_text=True)
    for other in ("secret", "prefix", "enterprise-twin", 'octo-org/dem"'):
        assert other not in text


def test_repository_without_publishers_gets_an_empty_report(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = make_app(
        [github_publisher(oidc_issuer.url, repository="octo-org/other")]
    ).test_client()

    report = report_of(explain(client, make_token()))

    assert report["publishers"] == []
    assert report["would_mint"] is False
    assert "no trusted publisher is registered for 'octo-org/demo'" in report["reason"]


def test_the_selected_publisher_is_the_most_specific(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = make_app(
        [
            github_publisher(oidc_issuer.url, environment=None, projects=["any-run"]),
            github_publisher(oidc_issuer.url, refs=["refs/tags/v*"], projects=["tags"]),
        ]
    ).test_client()

    report = report_of(explain(client, make_token()))

    assert report["projects"] == ["tags"]
    assert [(p["projects"], p["matches"], p["selected"]) for p in report["publishers"]] == [
        (["any-run"], True, False),
        (["tags"], True, True),
    ]


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda issuer, claims: issuer.sign(claims(aud="someone-else")), 422, "invalid-token"),
        (lambda issuer, claims: issuer.sign(claims(exp=1, iat=0, nbf=0)), 422, "invalid-token"),
        (
            lambda issuer, claims: issuer.sign(claims(), key=_other_key()),
            422,
            "invalid-token",
        ),
        (
            lambda issuer, claims: issuer.sign(claims(iss="https://unknown.example")),
            422,
            "invalid-payload",
        ),
        (lambda issuer, claims: "not.a.jwt", 422, "invalid-payload"),
        (
            lambda issuer, claims: issuer.sign(claims(event_name="pull_request_target")),
            422,
            "invalid-publisher",
        ),
        (
            lambda issuer, claims: issuer.sign(claims(repository_id=REMOVE)),
            422,
            "invalid-publisher",
        ),
    ],
    ids=[
        "other-audience",
        "expired",
        "bad-signature",
        "unknown-issuer",
        "not-a-jwt",
        "pull-request-target",
        "missing-claim",
    ],
)
def test_tokens_that_cannot_be_explained_get_the_contract_envelope(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_claims: MakeClaims,
    make: Callable[[OIDCIssuer, MakeClaims], str],
    status: int,
    code: str,
) -> None:
    description = assert_failure(explain(client, make(oidc_issuer, make_claims)), status, code)

    assert "demo-pkg" not in description
    assert "publisher[" not in description


def _other_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_body_rules_are_those_of_mint_token(client: FlaskClient, make_token: MakeToken) -> None:
    # The GitLab recipe's curl -d: a form content type around a JSON body.
    response = client.post(
        EXPLAIN_PATH,
        data=json.dumps({"token": make_token()}),
        content_type="application/x-www-form-urlencoded",
    )
    assert report_of(response)["would_mint"] is True
    assert_failure(client.post(EXPLAIN_PATH, data="{"), 422, "invalid-payload")
    assert_failure(client.post(EXPLAIN_PATH, json={"token": 5}), 422, "invalid-payload")
    assert_failure(client.get(EXPLAIN_PATH), 405, "method-not-allowed")


def test_switched_off_publishing_and_providers_are_not_explained(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    off = make_app(enabled=False).test_client()
    github_off = make_app(disabled_providers=frozenset({"github"})).test_client()

    assert_failure(explain(off, make_token()), 422, "not-enabled")
    assert_failure(explain(github_off, make_token()), 422, "not-enabled")


def test_gitlab_and_google_tokens_are_explained_without_being_used(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    gitlab, google = make_oidc_issuer(), make_oidc_issuer()
    client = make_app(
        [
            gitlab_publisher(gitlab.url, environment="PyPI"),
            google_publisher(google.url),
        ],
        gitlab_issuers=(gitlab.url,),
        google_issuers=(google.url,),
    ).test_client()
    gitlab_token = gitlab.sign(gitlab_claims(gitlab.url, AUDIENCE))
    google_token = google.sign(google_claims(google.url, AUDIENCE))

    gitlab_report = report_of(explain(client, gitlab_token))
    google_report = report_of(explain(client, google_token))

    assert (gitlab_report["provider"], gitlab_report["lookup_key"]) == (
        "gitlab",
        "group/sub/project",
    )
    (publisher,) = gitlab_report["publishers"]
    assert [c for c in publisher["checks"] if not c["ok"]] == [
        {"claim": "environment", "expected": "'PyPI' (exact case)", "received": "pypi", "ok": False}
    ]
    assert google_report["provider"] == "google"
    assert google_report["would_mint"] is True
    # The jti-less Google token was not used up either.
    assert replay_keys(store) == []
    assert upload_token_projects(assert_minted(mint(client, google_token))) == ["google-pkg"]


# -- trustpub explain ------------------------------------------------------------------


def _run_explain(
    *args: str, stdin: str | None, issuer: OIDCIssuer, policies_dir: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTPUB_")}
    environ.update(
        {
            "TRUSTPUB_AUDIENCE": AUDIENCE,
            "TRUSTPUB_POLICIES_DIR": str(policies_dir),
            "TRUSTPUB_GITHUB_ISSUERS": issuer.url,
            "REQUESTS_CA_BUNDLE": issuer.ca_path,
        }
    )
    return subprocess.run(
        [str(TRUSTPUB), "explain", *args],
        input=stdin,
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_explains_a_token_from_an_argument_or_stdin(
    oidc_issuer: OIDCIssuer, make_token: MakeToken, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    write_policy(
        policies,
        [
            github_publisher(oidc_issuer.url, projects=["demo-pkg"]),
            github_publisher(oidc_issuer.url, workflow="nightly.yml", projects=["nightly"]),
        ],
    )
    token = make_token()
    run: dict[str, Any] = {"issuer": oidc_issuer, "policies_dir": policies, "tmp_path": tmp_path}

    readable = _run_explain(token, stdin=None, **run)
    from_stdin = _run_explain("--json", stdin=token + "\n", **run)
    dash = _run_explain("-", "--json", stdin=token, **run)

    assert readable.returncode == 0, readable.stderr
    assert f"issuer:    {oidc_issuer.url} (github)" in readable.stdout
    assert "result:    would mint an upload token for demo-pkg" in readable.stdout
    assert "publishers.toml: publisher[0]: matches (selected); projects demo-pkg" in readable.stdout
    assert (
        "  FAIL workflow_ref: expected workflow file 'nightly.yml', received 'release.yml'"
        in readable.stdout
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    report = json.loads(from_stdin.stdout)
    assert report["would_mint"] is True
    assert report["projects"] == ["demo-pkg"]
    assert json.loads(dash.stdout) == report


def test_cli_exit_status_and_errors(
    oidc_issuer: OIDCIssuer, make_token: MakeToken, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    write_policy(policies, [github_publisher(oidc_issuer.url, environment="production")])
    run: dict[str, Any] = {"issuer": oidc_issuer, "policies_dir": policies, "tmp_path": tmp_path}

    refused = _run_explain(make_token(), stdin=None, **run)
    unverifiable = _run_explain(make_token(aud="elsewhere"), stdin=None, **run)

    assert refused.returncode == 1
    assert "result:    refused: no trusted publisher matches this token" in refused.stdout
    assert "  FAIL environment: expected 'production' (any case), received 'pypi'" in refused.stdout
    assert unverifiable.returncode == 1
    assert unverifiable.stdout == ""
    assert unverifiable.stderr.startswith("invalid-token: ")


def test_explain_is_rate_limited_per_address_apart_from_minting(
    make_app: MakeApp, make_token: MakeToken
) -> None:
    client = make_app(mint_rate_limit="2/minute").test_client()
    token = make_token()

    answers = [explain(client, token) for _ in range(2)]
    limited = explain(client, token)

    for answer in answers:
        report_of(answer)
    assert_failure(limited, 429, "rate-limited")
    assert_minted(mint(client, token))  # its own budget: minting is not spent by explaining


# What a resurrected owner must not learn of the former owner's publishers.
FORMER_OWNERS = (
    "secret-env",
    "secret-release.yml",
    "former-owners-pkg",
    "publisher[",
    "refs/tags/v",
)


def test_resurrected_github_owner_learns_nothing_of_the_former_owners_publishers(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = make_app(
        [
            github_publisher(
                oidc_issuer.url,
                workflow="secret-release.yml",
                environment="secret-env",
                refs=["refs/tags/v*"],
                projects=["former-owners-pkg"],
            )
        ]
    ).test_client()
    # "octo-org" was deleted and registered again by a stranger: a new owner ID, the
    # same names. Before, explain and the refused mint showed it every check of the
    # former owner's publishers: workflow files, environments, refs, projects.
    token = make_token(repository_owner_id="4242")

    response = explain(client, token)
    report = report_of(response)
    description = assert_failure(mint(client, token), 422, "invalid-publisher")

    assert report["would_mint"] is False
    assert report["publishers"] == []
    for text in (response.get_data(as_text=True), description):
        for secret in FORMER_OWNERS:
            assert secret not in text, (secret, text)
    # Still says why, in the caller's own terms.
    assert "repository_owner_id" in description
    assert repr(OWNER_ID) in description


def test_resurrected_gitlab_project_learns_nothing_of_the_former_publishers(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app(
        [
            gitlab_publisher(
                gitlab.url,
                namespace_id="1",
                project_id="2",
                environment="secret-env",
                workflow_filepath="ci/secret-release.yml",
                projects=["former-owners-pkg"],
            )
        ],
        gitlab_issuers=(gitlab.url,),
    ).test_client()
    token = gitlab.sign(gitlab_claims(gitlab.url, AUDIENCE, namespace_id="777", project_id="778"))

    response = explain(client, token)
    report = report_of(response)
    description = assert_failure(mint(client, token), 422, "invalid-publisher")

    assert report["publishers"] == []
    for text in (response.get_data(as_text=True), description):
        for secret in FORMER_OWNERS:
            assert secret not in text, (secret, text)


def test_recreated_google_account_learns_nothing_of_the_former_publishers(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer
) -> None:
    google = make_oidc_issuer()
    client = make_app(
        [google_publisher(google.url, sub="1111", projects=["former-owners-pkg"])],
        google_issuers=(google.url,),
    ).test_client()
    token = google.sign(google_claims(google.url, AUDIENCE, sub="2222"))

    response = explain(client, token)
    report = report_of(response)
    description = assert_failure(mint(client, token), 422, "invalid-publisher")

    assert report["publishers"] == []
    for text in (response.get_data(as_text=True), description):
        assert "former-owners-pkg" not in text
