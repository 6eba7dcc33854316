"""Every endpoint that touches Redis, with Redis killed or stopped: a 503 with a code
and Retry-After in its family's shape, never a 500, never a token or "active"."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.oidc_issuer import OIDCIssuer
from support.redis_server import RedisServer
from werkzeug.test import TestResponse

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_minted, mint, post_chunked
from .registrations_api import ManagementClients


@pytest.fixture
def mgmt(tmp_path: Path) -> ManagementClients:
    return ManagementClients(tmp_path / "clients.toml")


@pytest.fixture
def outage_app(make_app: MakeApp, mgmt: ManagementClients) -> Flask:
    return make_app(clients_file=mgmt.path)


Request = Callable[[FlaskClient, Flask, dict[str, Any]], TestResponse]


def _requests(mgmt: ManagementClients, oidc_url: str) -> list[tuple[str, Request]]:
    admin = mgmt.bearer("admin")
    index = mgmt.basic("index")
    reg = {
        "provider": "github",
        "issuer": oidc_url,
        "repository": "octo-org/other",
        "repository_owner_id": "65",
        "workflow": "release.yml",
    }
    return [
        ("mint", lambda c, a, s: c.post("/_/oidc/mint-token", json={"token": s["fresh"]})),
        (
            "mint-chunked",
            lambda c, a, s: post_chunked(
                a, "/_/oidc/mint-token", json.dumps({"token": s["fresh"]}).encode()
            ),
        ),
        (
            "introspect",
            lambda c, a, s: c.post("/oauth/introspect", data={"token": s["upload"]}, headers=index),
        ),
        (
            "introspect-multipart",
            lambda c, a, s: c.post(
                "/oauth/introspect",
                data={"token": s["upload"]},
                headers=index,
                content_type="multipart/form-data",
            ),
        ),
        ("revoke", lambda c, a, s: c.post("/oauth/revoke", data={"token": s["upload"]})),
        (
            "revocations-token",
            lambda c, a, s: c.post(
                "/api/v1/revocations", json={"token": s["upload"]}, headers=admin
            ),
        ),
        (
            "revocations-jti",
            lambda c, a, s: c.post("/api/v1/revocations", json={"jti": "A" * 24}, headers=admin),
        ),
        (
            "revocations-project",
            lambda c, a, s: c.post(
                "/api/v1/revocations", json={"project": "demo-pkg"}, headers=admin
            ),
        ),
        (
            "list-publishers",
            lambda c, a, s: c.get("/api/v1/projects/demo-pkg/publishers", headers=admin),
        ),
        (
            "add-publisher",
            lambda c, a, s: c.post("/api/v1/projects/demo-pkg/publishers", json=reg, headers=admin),
        ),
        (
            "add-pending-publisher",
            lambda c, a, s: c.post(
                "/api/v1/projects/new-pkg/publishers",
                json={**reg, "pending": True},
                headers=mgmt.bearer("index"),
            ),
        ),
        (
            "remove-publisher",
            lambda c, a, s: c.delete("/api/v1/projects/demo-pkg/publishers/rp_abc", headers=admin),
        ),
        ("declare-project", lambda c, a, s: c.put("/api/v1/projects/some-pkg", headers=admin)),
        (
            "declare-projects",
            lambda c, a, s: c.post("/api/v1/projects", json={"projects": ["a"]}, headers=admin),
        ),
        (
            "confirm-projects",
            lambda c, a, s: c.put("/api/v1/projects", json={"epoch": "e:1"}, headers=admin),
        ),
        ("projects-status", lambda c, a, s: c.get("/api/v1/projects", headers=admin)),
        ("audit", lambda c, a, s: c.get("/api/v1/audit", headers=admin)),
        ("readyz", lambda c, a, s: c.get("/readyz")),
    ]


REQUEST_NAMES = [
    "mint",
    "mint-chunked",
    "introspect",
    "introspect-multipart",
    "revoke",
    "revocations-token",
    "revocations-jti",
    "revocations-project",
    "list-publishers",
    "add-publisher",
    "add-pending-publisher",
    "remove-publisher",
    "declare-project",
    "declare-projects",
    "confirm-projects",
    "projects-status",
    "audit",
    "readyz",
]


@pytest.fixture(params=["killed", "stopped"])
def outage(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[Callable[[], None]]:
    stopped: list[int] = []

    def start() -> None:
        if request.param == "killed":
            redis_server.kill()
        else:
            pid = redis_server.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)

    yield start
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)


def assert_unavailable(response: TestResponse, path_family: str) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 503, (response.status_code, text)
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    if path_family == "oidc":
        assert body["errors"][0]["code"] == "store-unavailable", body
    elif path_family == "oauth":
        assert body["error"] == "temporarily_unavailable", body
        assert "active" not in body
    else:
        assert body["error"]["code"] == "store-unavailable", body


FAMILIES = {
    "mint": "oidc",
    "mint-chunked": "oidc",
    "introspect": "oauth",
    "introspect-multipart": "oauth",
    "revoke": "oauth",
}


@pytest.mark.parametrize("name", REQUEST_NAMES)
def test_redis_outage_is_a_503_everywhere(
    outage_app: Flask,
    mgmt: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    outage: Callable[[], None],
    name: str,
) -> None:
    client = outage_app.test_client()
    upload = assert_minted(mint(client, make_token()))["token"]
    state = {"upload": upload, "fresh": make_token()}
    request = dict(_requests(mgmt, oidc_issuer.url))[name]
    outage()
    response = request(client, outage_app, state)
    assert_unavailable(response, FAMILIES.get(name, "api"))
