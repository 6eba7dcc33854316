"""How the integration tests act as an index server: clients, introspection, revocation."""

from __future__ import annotations

import base64
from pathlib import Path

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.auth.clients import add_client

INTROSPECT_PATH = "/oauth/introspect"
REVOKE_PATH = "/oauth/revoke"
REVOCATIONS_PATH = "/api/v1/revocations"


class Clients:
    """A clients file with one client per scope set, and their secrets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.secrets = {
            "index": add_client(path, "index", ["introspect"]),
            "operator": add_client(path, "operator", ["revoke"]),
            "admin": add_client(path, "admin", ["admin"]),
        }

    def basic(self, name: str) -> dict[str, str]:
        pair = f"{name}:{self.secrets[name]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}


def introspect(client: FlaskClient, token: str, headers: dict[str, str]) -> TestResponse:
    return client.post(INTROSPECT_PATH, data={"token": token}, headers=headers)


def is_active(client: FlaskClient, token: str, headers: dict[str, str]) -> bool:
    response = introspect(client, token, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    if body == {"active": False}:
        return False
    assert body["active"] is True, body
    return True
