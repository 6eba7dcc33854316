"""Every route, hostile inputs: never a 5xx (Redis is up), always the family's error shape,
and the secret sent never comes back in an answer, a log line or an audit record.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from support.oidc_issuer import OIDCIssuer
from support.redis_server import RedisServer
from werkzeug.test import TestResponse

from app import create_app

from .conftest import module_settings, stop_polling
from .exchange_api import post_chunked
from .registrations_api import ManagementClients

SECRET = "pypi-SENTINELSECRETeyJhbGciOiJFZERTQSJ9.c2VjcmV0.c2lnbmF0dXJl"
CLIENT_SECRET_MARK = "tpc_"

ROUTES: list[tuple[str, str]] = [
    ("GET", "/_/oidc/audience"),
    ("POST", "/_/oidc/mint-token"),
    ("POST", "/_/oidc/github/mint-token"),
    ("POST", "/_/oidc/explain"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/revocations"),
    ("GET", "/api/v1/projects/demo-pkg/publishers"),
    ("POST", "/api/v1/projects/demo-pkg/publishers"),
    ("DELETE", "/api/v1/projects/demo-pkg/publishers/rp_x"),
    ("PUT", "/api/v1/projects/demo-pkg"),
    ("POST", "/api/v1/projects"),
    ("PUT", "/api/v1/projects"),
    ("GET", "/api/v1/projects"),
    ("GET", "/api/v1/audit"),
]
POST_ROUTES = [route for route in ROUTES if route[0] == "POST"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW"]

BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not-utf8", b"\xff\xfe\xfd"),
    ("null", b"null"),
    ("list", b"[1,2]"),
    ("string", b'"s"'),
    ("number", b"1"),
    ("nan", b"NaN"),
    ("token-nan", b'{"token": NaN}'),
    ("token-infinity", b'{"token": -Infinity}'),
    ("token-huge-number", b'{"token": 1e999}'),
    ("token-big-int", b'{"token": ' + b"9" * 5000 + b"}"),
    ("deep", b"[" * 20000 + b"]" * 20000),
    ("deep-object", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("over-64k", b'{"token": "' + b"A" * 70000 + b'"}'),
    ("dup-keys", b'{"token": "a", "token": "b"}'),
    ("lone-surrogate", b'{"token": "\\ud800"}'),
    ("nul", b'{"token": "\\u0000"}'),
    ("secret-json", json.dumps({"token": SECRET}).encode()),
    ("secret-form", f"token={SECRET}".encode()),
    ("form-many", b"&".join(b"token=%d" % i for i in range(2000))),
    ("form-bad-percent", b"token=%ff%fe%zz"),
]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain; charset=utf-16",
    "\x00/\x00",
]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


AUTHORIZATIONS: list[tuple[str, str]] = [
    ("basic-empty", "Basic"),
    ("basic-space", "Basic "),
    ("basic-garbage", "Basic !!!***"),
    ("basic-no-colon", "Basic " + _b64(b"nocolon")),
    ("basic-not-utf8", "Basic " + _b64(b"\xff\xfe:\xff")),
    ("basic-wrong", "Basic " + _b64(f"admin:{SECRET}".encode())),
    ("basic-unknown", "Basic " + _b64(f"nobody:{SECRET}".encode())),
    ("basic-nul", "Basic " + _b64(b"admin\x00:x")),
    ("bearer-empty", "Bearer"),
    ("bearer-secret", f"Bearer {SECRET}"),
    ("bearer-case", f"bEaReR    {SECRET}   "),
    ("digest", f'Digest username="a", response="{SECRET}"'),
    ("negotiate", f"Negotiate {SECRET}"),
    ("token-scheme", f"Token {SECRET}"),
    ("latin1", "Bearer caf\xe9" + SECRET),
    ("huge", "Bearer " + SECRET + "A" * 60000),
    ("only-spaces", "   "),
]

PATH_PARAMS = [
    "%00",
    "..",
    "%2e%2e",
    "%2F",
    "%ff%fe",
    "%C3%A9",
    "\u202e",
    "a" * 5000,
    "demo-pkg%0aX-Injected:%20yes",
    "demo-pkg%0d%0a",
    "-",
    "_",
    "a..b",
    "%20",
]

QUERIES = [
    "limit=1&limit=2&limit=x",
    "limit=0",
    "limit=1001",
    "limit=NaN",
    "limit=%EF%BC%91",  # full-width digit one
    "since=-1",
    "since=1e9",
    "since=" + "9" * 12,
    "until=99999999999999999999",
    "before=0-0",
    "before=18446744073709551616-0",
    "before=99999999999999999999-99999999999999999999",
    "before=garbage",
    "before=%00",
    "project=%00",
    "project=..",
    "project=" + "a" * 600,
    "project=demo-pkg&project=other",
    "repository=%ff",
    "repository=%0a%0d",
    "%ff=%ff",
    "a" * 8000,
    "&&&&=&=",
]


@pytest.fixture(scope="module")
def clients_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-clients") / "clients.toml"


@pytest.fixture(scope="module")
def mgmt(clients_path: Path) -> ManagementClients:
    return ManagementClients(clients_path)


@pytest.fixture(scope="module")
def hostile_app(
    redis_server: RedisServer,
    oidc_issuer_server: OIDCIssuer,
    signing_key_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    mgmt: ManagementClients,
) -> Iterator[Flask]:
    unlimited = "1000000/minute"
    app = create_app(
        module_settings(
            tmp_path_factory,
            redis_server,
            oidc_issuer_server,
            signing_key_path,
            clients_file=mgmt.path,
            mint_rate_limit=unlimited,
            publisher_rate_limit=unlimited,
            introspect_rate_limit=unlimited,
            revoke_rate_limit=unlimited,
            registration_rate_limit=unlimited,
            read_rate_limit=unlimited,
        )
    )
    app.testing = False  # as in production: errors go through the handlers
    yield app
    stop_polling(app)


@pytest.fixture
def hostile(hostile_app: Flask, redis_url: str, oidc_issuer: OIDCIssuer) -> FlaskClient:
    return hostile_app.test_client()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def audit_text(redis_server: RedisServer) -> str:
    client = redis_server.client()
    try:
        entries = client.xrange("trustpub:audit")
    except redis.RedisError:
        return ""
    finally:
        client.close()
    return repr(entries)


def check(
    response: TestResponse,
    path: str,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    secrets: tuple[str, ...] = (SECRET,),
) -> None:
    status = response.status_code
    text = response.get_data(as_text=True)
    assert status < 500, (status, text[:500])
    for secret in secrets:
        assert secret not in text, text[:500]
        for name, value in response.headers.items():
            assert secret not in value, name
        assert secret not in logs.text
        for record in logs.records:
            assert secret not in repr(record.__dict__)
        assert secret not in audit_text(redis_server)
    assert CLIENT_SECRET_MARK not in logs.text
    if status < 400 or response.request.method == "HEAD":
        return
    body = response.get_json(silent=True)
    assert isinstance(body, dict), (status, text[:500])
    if path.startswith("/_/oidc/"):
        (error,) = body["errors"]
        code, description = error["code"], error["description"]
    elif path.startswith("/oauth/"):
        code, description = body["error"], body["error_description"]
    else:
        code, description = body["error"]["code"], body["error"]["description"]
    assert code, body
    assert description, body


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_method_on_every_route(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    route: tuple[str, str],
    method: str,
) -> None:
    _, path = route
    response = hostile.open(path, method=method)
    check(response, path, logs, redis_server)


def misspelled(path: str, spelling: str) -> str:
    head, _, tail = path.rpartition("/")
    return {"doubled-slash": f"{head}//{tail}", "trailing-slash": f"{path}/"}[spelling]


@pytest.mark.parametrize("spelling", ["doubled-slash", "trailing-slash"])
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_misspelled_paths_get_a_json_404_not_a_redirect(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    route: tuple[str, str],
    spelling: str,
) -> None:
    # Werkzeug would answer a doubled slash with an HTML 308 to the merged path: a redirect
    # a client may follow with its token in the body, and no error shape to read.
    method, path = route
    odd = misspelled(path, spelling)
    response = hostile.open(odd, method=method, json={"token": SECRET})
    assert response.status_code == 404, (odd, response.status_code)
    assert "Location" not in response.headers
    check(response, odd, logs, redis_server)


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=repr)
@pytest.mark.parametrize("body", [b for _, b in BODIES], ids=[n for n, _ in BODIES])
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_hostile_bodies_as_admin(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    mgmt: ManagementClients,
    route: tuple[str, str],
    body: bytes,
    content_type: str | None,
) -> None:
    method, path = route
    headers = mgmt.bearer("admin")
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = hostile.open(path, method=method, data=body, headers=headers)
    check(response, path, logs, redis_server, (SECRET, mgmt.secrets["admin"]))


@pytest.mark.parametrize("body", [b for _, b in BODIES], ids=[n for n, _ in BODIES])
@pytest.mark.parametrize("route", POST_ROUTES, ids=[p for _, p in POST_ROUTES])
def test_hostile_chunked_bodies(
    hostile_app: Flask,
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    route: tuple[str, str],
    body: bytes,
) -> None:
    _, path = route
    check(post_chunked(hostile_app, path, body), path, logs, redis_server)


@pytest.mark.parametrize("auth", [a for _, a in AUTHORIZATIONS], ids=[n for n, _ in AUTHORIZATIONS])
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_garbage_authorization(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    route: tuple[str, str],
    auth: str,
) -> None:
    method, path = route
    body = json.dumps({"token": SECRET}) if method == "POST" else None
    headers = {"Authorization": auth}
    response = hostile.open(path, method=method, data=body, headers=headers)
    check(response, path, logs, redis_server)
    # Form-encoded too (the OAuth endpoints' own format and the hot path's).
    if method == "POST":
        response = hostile.post(path, data={"token": SECRET}, headers=headers)
        check(response, path, logs, redis_server)


@pytest.mark.parametrize("param", PATH_PARAMS, ids=lambda p: repr(p[:30]))
@pytest.mark.parametrize(
    "template",
    [
        ("GET", "/api/v1/projects/{}/publishers"),
        ("POST", "/api/v1/projects/{}/publishers"),
        ("DELETE", "/api/v1/projects/{}/publishers/rp_x"),
        ("DELETE", "/api/v1/projects/demo-pkg/publishers/{}"),
        ("DELETE", "/api/v1/projects/{}/publishers/{}"),
        ("PUT", "/api/v1/projects/{}"),
        ("GET", "/_/oidc/{}"),
        ("POST", "/_/oidc/{}"),
        ("GET", "/{}"),
    ],
    ids=lambda t: f"{t[0]} {t[1]}",
)
def test_hostile_path_parameters(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    mgmt: ManagementClients,
    template: tuple[str, str],
    param: str,
) -> None:
    method, pattern = template
    path = pattern.replace("{}", param)
    body = {"provider": "github", "issuer": "https://x", "repository": "a/b", "workflow": "r.yml"}
    for who in ("admin", "demo-maintainer", "index"):
        response = hostile.open(
            path, method=method, json=body if method == "POST" else None, headers=mgmt.bearer(who)
        )
        check(response, path, logs, redis_server, (SECRET, mgmt.secrets[who]))


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q[:30]))
@pytest.mark.parametrize("who", ["admin", "demo-maintainer"])
def test_hostile_audit_queries(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    mgmt: ManagementClients,
    query: str,
    who: str,
) -> None:
    response = hostile.get("/api/v1/audit?" + query, headers=mgmt.bearer(who))
    check(response, "/api/v1/audit", logs, redis_server, (SECRET, mgmt.secrets[who]))


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q[:30]))
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_hostile_queries_everywhere(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    mgmt: ManagementClients,
    route: tuple[str, str],
    query: str,
) -> None:
    method, path = route
    response = hostile.open(path + "?" + query, method=method, headers=mgmt.bearer("admin"))
    check(response, path, logs, redis_server, (SECRET, mgmt.secrets["admin"]))


WRONG_VALUES: list[tuple[str, Any]] = [
    ("null", None),
    ("int", 1),
    ("float", 1.5),
    ("bool", True),
    ("list", ["x"]),
    ("object", {"a": "b"}),
    ("empty", ""),
    ("long", "x" * 20000),
    ("nul", "a\x00b"),
    ("dots", ".."),
    ("surrogate", "\ud800"),
    ("newline", "demo\nX: y"),
    ("negative", -1),
    ("huge-int", 2**70),
    ("url", "https://github.com/octo-org/demo/"),
    # Not a token in a field that names a token: echoed to its sender, who chose it.
    ("token-shaped", "pypi-eyJ.e30.c2ln"),
]

REVOCATION_FIELDS = ["token", "jti", "project", "repository"]


@pytest.mark.parametrize("value", [v for _, v in WRONG_VALUES], ids=[n for n, _ in WRONG_VALUES])
@pytest.mark.parametrize("field", [*REVOCATION_FIELDS, "before", "issuer", "workflow"])
def test_revocation_fields_of_wrong_type(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    mgmt: ManagementClients,
    oidc_issuer: OIDCIssuer,
    field: str,
    value: Any,
) -> None:
    if field in REVOCATION_FIELDS:
        body = {field: value}
    elif field == "before":
        body = {"project": "demo-pkg", "before": value}
    else:
        body = {"repository": "octo-org/demo", "issuer": oidc_issuer.url, field: value}
    raw = json.dumps(body).encode("utf-8", "surrogatepass")
    response = hostile.post(
        "/api/v1/revocations",
        data=raw,
        headers={**mgmt.bearer("admin"), "Content-Type": "application/json"},
    )
    check(response, "/api/v1/revocations", logs, redis_server, (SECRET, mgmt.secrets["admin"]))


REGISTRATION_FIELDS = [
    "provider",
    "issuer",
    "repository",
    "repository_owner_id",
    "repository_id",
    "workflow",
    "environment",
    "pending",
    "projects",
    "ref",
    "constraints",
    "unknown-field",
]


@pytest.mark.parametrize("value", [v for _, v in WRONG_VALUES], ids=[n for n, _ in WRONG_VALUES])
@pytest.mark.parametrize("field", REGISTRATION_FIELDS)
@pytest.mark.parametrize("who", ["admin", "index"])
def test_registration_fields_of_wrong_type(
    hostile: FlaskClient,
    logs: pytest.LogCaptureFixture,
    redis_server: RedisServer,
    mgmt: ManagementClients,
    oidc_issuer: OIDCIssuer,
    field: str,
    value: Any,
    who: str,
) -> None:
    body: dict[str, Any] = {
        "provider": "github",
        "issuer": oidc_issuer.url,
        "repository": "octo-org/other",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "environment": "pypi",
    }
    if who == "index":
        body["pending"] = True
    body[field] = value
    raw = json.dumps(body).encode("utf-8", "surrogatepass")
    response = hostile.post(
        "/api/v1/projects/new-pkg/publishers",
        data=raw,
        headers={**mgmt.bearer(who), "Content-Type": "application/json"},
    )
    check(response, "/api/v1/projects/", logs, redis_server, (SECRET, mgmt.secrets[who]))


def test_huge_header_everywhere(
    hostile: FlaskClient, logs: pytest.LogCaptureFixture, redis_server: RedisServer
) -> None:
    for method, path in ROUTES:
        response = hostile.open(
            path,
            method=method,
            headers={"X-Request-ID": "a" * 100_000, "X-Forwarded-For": "1," * 10000},
        )
        check(response, path, logs, redis_server)


def test_metric_labels_stay_bounded_whatever_the_requests(
    hostile_app: Flask, hostile: FlaskClient, mgmt: ManagementClients
) -> None:
    for index in range(50):
        for method in METHODS:
            hostile.open(f"/nope-{index}-{SECRET}", method=method)
            hostile.open(f"/api/v1/projects/p{index}/publishers", method=method)
        hostile.post("/_/oidc/mint-token", json={"token": f"{SECRET}{index}"})
        hostile.post("/oauth/introspect", data={"token": SECRET}, headers=mgmt.bearer("admin"))
    exposition = hostile.get("/metrics").get_data(as_text=True)
    assert SECRET not in exposition
    assert "nope" not in exposition
    assert "p17" not in exposition
    endpoints = set(re.findall(r'endpoint="([^"]*)"', exposition))
    assert endpoints <= set(hostile_app.view_functions) | {"unmatched"}, endpoints
    methods = set(re.findall(r'method="([^"]*)"', exposition))
    assert methods <= {"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "other"}
    outcomes = set(re.findall(r'outcome="([^"]*)"', exposition))
    assert all(re.fullmatch(r"[a-z-]+", outcome) for outcome in outcomes), outcomes
