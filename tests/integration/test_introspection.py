"""Introspection (RFC 7662) as an index server uses it, against the real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app.tokens.keys import load_key_ring
from app.tokens.mint import UploadTokenMinter
from app.tokens.scopes import project_scope

from .conftest import MakeApp, MakeToken
from .exchange_api import AUDIENCE, assert_failure, assert_minted, mint
from .oauth_api import INTROSPECT_PATH, Clients, introspect, is_active
from .redis_watch import commands_sent
from .test_observability import counter


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients.toml")


@pytest.fixture
def app(make_app: MakeApp, clients: Clients) -> Flask:
    return make_app(clients_file=clients.path)


def minted_token(client: FlaskClient, make_token: MakeToken, **overrides: Any) -> str:
    token: str = assert_minted(mint(client, make_token(**overrides)))["token"]
    return token


def test_active_token_reports_projects_expiry_and_publisher(
    client: FlaskClient, make_token: MakeToken, clients: Clients
) -> None:
    token = minted_token(client, make_token, run_id="4242", sha="a" * 40)

    response = introspect(client, token, clients.basic("index"))

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["active"] is True
    assert body["projects"] == ["demo-pkg"]
    assert body["scope"] == "upload"
    assert body["iss"] == f"urn:trustpub:{AUDIENCE}"
    assert 0 < body["exp"] - int(time.time()) <= 900
    publisher = body["publisher"]
    assert publisher["provider"] == "github"
    assert publisher["repository"] == "octo-org/demo"
    assert publisher["workflow"] == "release.yml"
    assert publisher["environment"] == "pypi"
    assert publisher["ref"] == "refs/tags/v1.0.0"
    assert publisher["sha"] == "a" * 40
    assert publisher["run_id"] == "4242"


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        (lambda c: {}, 401, "invalid_client"),
        (lambda c: {"Authorization": "Basic aW5kZXg6d3Jvbmc="}, 401, "invalid_client"),
        (lambda c: {"Authorization": "Bearer tpc_not-a-client"}, 401, "invalid_client"),
        (lambda c: {"Authorization": "Digest whatever"}, 401, "invalid_client"),
        (lambda c: c.basic("operator"), 403, "insufficient_scope"),
    ],
    ids=["no-credentials", "wrong-secret", "unknown-bearer", "other-scheme", "revoke-only-client"],
)
def test_introspection_requires_a_client_with_the_introspect_scope(
    client: FlaskClient,
    make_token: MakeToken,
    clients: Clients,
    headers: Callable[[Clients], dict[str, str]],
    status: int,
    error: str,
) -> None:
    token = minted_token(client, make_token)

    response = introspect(client, token, headers(clients))

    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert "active" not in response.get_json()
    if status == 401:
        assert "Basic" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "credentials",
    [
        lambda c: c.basic("index"),
        lambda c: c.bearer("index"),
        lambda c: c.basic("admin"),
    ],
    ids=["basic", "bearer", "admin-scope"],
)
def test_introspection_accepts_basic_and_bearer_credentials(
    client: FlaskClient,
    make_token: MakeToken,
    clients: Clients,
    credentials: Callable[[Clients], dict[str, str]],
) -> None:
    assert is_active(client, minted_token(client, make_token), credentials(clients))


def _expired_upload_token(signing_key_path: Path, store: redis.Redis) -> str:
    """Expired, and nothing else wrong with it: signed by the loaded key, in the live epoch
    (a token of another epoch is inactive whether or not its expiry is checked)."""
    minter = UploadTokenMinter(
        keys=load_key_ring(signing_key_path),
        issuer=f"urn:trustpub:{AUDIENCE}",
        audience=f"urn:trustpub:upload:{AUDIENCE}",
        ttl=900,
        prefix="pypi-",
    )
    long_ago = int(time.time()) - 3600
    publisher = {"provider": "github", "repository": "octo-org/demo", "workflow": "release.yml"}
    epoch = store.get("trustpub:epoch")
    assert epoch is not None
    epoch_id = epoch.decode().rpartition(":")[0]
    return minter.mint(frozenset({"demo-pkg"}), publisher, epoch_id, long_ago).token


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    # Flip one payload character: still base64url, no longer what was signed.
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    return ".".join((header, flipped, signature))


@pytest.mark.parametrize(
    "make_candidate",
    [
        lambda token, oidc, expired: "",
        lambda token, oidc, expired: "garbage",
        lambda token, oidc, expired: token.removeprefix("pypi-"),
        lambda token, oidc, expired: "pypi-" + oidc,
        lambda token, oidc, expired: oidc,
        lambda token, oidc, expired: _tampered(token),
        lambda token, oidc, expired: token + "x",
        lambda token, oidc, expired: expired,
    ],
    ids=[
        "empty",
        "garbage",
        "no-prefix",
        "oidc-token-with-prefix",
        "oidc-token",
        "tampered-payload",
        "bad-signature",
        "expired",
    ],
)
def test_anything_but_an_active_token_is_exactly_inactive(
    client: FlaskClient,
    make_token: MakeToken,
    clients: Clients,
    signing_key_path: Path,
    store: redis.Redis,
    make_candidate: Callable[[str, str, str], str],
) -> None:
    oidc_token = make_token()
    token = minted_token(client, make_token)
    expired = _expired_upload_token(signing_key_path, store)
    candidate = make_candidate(token, oidc_token, expired)

    response = client.post(
        INTROSPECT_PATH, data={"token": candidate}, headers=clients.basic("index")
    )

    if candidate == "":
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
    else:
        assert response.status_code == 200
        assert response.data == b'{"active":false}\n'
        assert response.mimetype == "application/json"
        assert response.headers["Cache-Control"] == "no-store"


def test_introspection_costs_one_redis_round_trip(
    client: FlaskClient, make_token: MakeToken, clients: Clients, redis_server: Any
) -> None:
    tokens = [minted_token(client, make_token) for _ in range(3)]
    for token in tokens:  # warm: connection established, nothing else pending
        assert is_active(client, token, clients.basic("index"))

    def introspect_all() -> None:
        for token in tokens:
            assert is_active(client, token, clients.basic("index"))

    sent = commands_sent(redis_server, introspect_all)

    # Redis's clock in the same round trip: the introspection checks its own against it.
    assert [command.name for command in sent] == ["MGET", "TIME"] * len(tokens)


def test_store_down_answers_503_never_active(
    client: FlaskClient, make_token: MakeToken, clients: Clients, redis_server: Any
) -> None:
    token = minted_token(client, make_token)
    redis_server.kill()

    response = introspect(client, token, clients.basic("index"))

    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert "active" not in response.get_json()
    assert response.headers["Retry-After"]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "active"),
    [
        ("application/x-www-form-urlencoded", "token={token}", 200, True),
        (
            "application/x-www-form-urlencoded",
            "token_type_hint=access_token&token={token}",
            200,
            True,
        ),
        ("application/x-www-form-urlencoded; charset=utf-8", "token={token}", 200, True),
        ("application/x-www-form-urlencoded", "token={token}&token=other", 200, True),
        ("application/x-www-form-urlencoded", "token=other&token={token}", 200, False),
        ("application/x-www-form-urlencoded", "token=%F0%9F%98%80", 200, False),
        ("application/x-www-form-urlencoded", "tok=x", 400, None),
        ("application/x-www-form-urlencoded", "&".join(["a=1"] * 40) + "&token={token}", 400, None),
        (
            "multipart/form-data; boundary=b",
            '--b\r\nContent-Disposition: form-data; name="token"\r\n\r\n{token}\r\n--b--\r\n',
            200,
            True,
        ),
        ("application/json", '{{"token": "{token}"}}', 400, None),
    ],
    ids=[
        "form",
        "with-type-hint",
        "charset",
        "first-of-two-wins",
        "first-of-two-is-not-it",
        "percent-encoded-junk",
        "no-token",
        "too-many-fields",
        "multipart",
        "json-is-not-a-form",
    ],
)
def test_introspection_reads_the_token_from_the_form(
    client: FlaskClient,
    clients: Clients,
    make_token: MakeToken,
    content_type: str,
    body: str,
    status: int,
    active: bool | None,
) -> None:
    token = minted_token(client, make_token)

    response = client.post(
        INTROSPECT_PATH,
        data=body.format(token=token).encode(),
        headers={**clients.basic("index"), "Content-Type": content_type},
    )

    assert response.status_code == status, response.get_data(as_text=True)
    if active is None:
        assert response.get_json()["error"] == "invalid_request"
    else:
        assert response.get_json()["active"] is active


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("trustpub:epoch", b"no-time-in-it"),
        ("trustpub:epoch", b":1764000000"),
        ("trustpub:epoch", b"\xff\xfe:1764000000"),
        ("project", b"yesterday"),
    ],
    ids=["epoch-without-time", "epoch-without-id", "epoch-not-utf8", "revocation-not-a-time"],
)
def test_a_store_record_that_cannot_be_read_answers_503_never_active(
    client: FlaskClient,
    make_token: MakeToken,
    clients: Clients,
    redis_server: Any,
    caplog: pytest.LogCaptureFixture,
    key: str,
    value: bytes,
) -> None:
    token = minted_token(client, make_token)
    store = redis_server.client()
    try:
        store.set("trustpub:" + project_scope("demo-pkg") if key == "project" else key, value)
    finally:
        store.close()

    def store_errors(operation: str) -> float:
        return counter(client, "trustpub_store_errors_total", operation=operation)

    before = {operation: store_errors(operation) for operation in ("mget", "claim", "ping")}
    with caplog.at_level("ERROR", logger="app.stores.redis"):
        response = introspect(client, token, clients.basic("index"))

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert "cannot be read" in caplog.text
    # Every such answer is a 503: the documented alert on store errors must see it.
    assert store_errors("mget") - before["mget"] == 1.0
    if key == "trustpub:epoch":
        # Nothing can be minted in an epoch that cannot be read, and the process says so.
        assert_failure(mint(client, make_token()), 503, "store-unavailable")
        assert client.get("/readyz").status_code == 503
        assert store_errors("claim") - before["claim"] == 1.0
        assert store_errors("ping") - before["ping"] == 1.0


def test_a_replica_whose_clock_is_off_redis_refuses_every_token_operation_and_is_not_ready(
    make_app: MakeApp,
    make_token: MakeToken,
    clients: Clients,
    store: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload_token = minted_token(make_app(clients_file=clients.path).test_client(), make_token)
    replay_records = len(store.keys("trustpub:jti:*"))
    right_time = time.time
    # The whole host's clock steps two minutes ahead (a VM resumed): the replica is built
    # on it, and the CI token it is sent is dated by it too, so only Redis disagrees.
    monkeypatch.setattr(time, "time", lambda: right_time() + 120)
    stepped = make_app(clients_file=clients.path).test_client()

    minted = mint(stepped, make_token())
    introspected = introspect(stepped, upload_token, clients.basic("index"))
    revoked = stepped.post("/oauth/revoke", data={"token": upload_token})
    ready = stepped.get("/readyz")

    assert_failure(minted, 503, "store-unavailable")
    assert introspected.status_code == 503
    assert "active" not in introspected.get_json()
    assert revoked.status_code == 503
    assert ready.status_code == 503
    assert len(store.keys("trustpub:jti:*")) == replay_records  # nothing claimed
    assert not store.keys("trustpub:rev:*")  # nothing revoked
    monkeypatch.undo()
    right = make_app(clients_file=clients.path).test_client()
    assert is_active(right, upload_token, clients.basic("index"))
