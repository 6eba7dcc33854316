"""How the integration tests act as maintainers, the index and operators of the management API."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.auth.clients import add_client

AUDIT_PATH = "/api/v1/audit"


def publishers_path(project: str) -> str:
    return f"/api/v1/projects/{project}/publishers"


class ManagementClients:
    """A clients file: an operator, two project-scoped maintainers, the index (pending)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.secrets = {
            "admin": add_client(path, "admin", ["admin"]),
            "demo-maintainer": add_client(path, "demo-maintainer", ["manage"], ["Demo_Pkg"]),
            "other-maintainer": add_client(path, "other-maintainer", ["manage"], ["other-pkg"]),
            "index": add_client(path, "index", ["pending", "introspect"]),
            "introspector": add_client(path, "introspector", ["introspect"]),
        }

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}

    def basic(self, name: str) -> dict[str, str]:
        pair = f"{name}:{self.secrets[name]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def registration(issuer: str, /, **overrides: Any) -> dict[str, Any]:
    """A POST body matching support.claims.github_claims() (None drops a key)."""
    body: dict[str, Any] = {
        "provider": "github",
        "issuer": issuer,
        "repository": "octo-org/demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "environment": "pypi",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def add(
    client: FlaskClient, project: str, body: dict[str, Any], headers: dict[str, str]
) -> TestResponse:
    return client.post(publishers_path(project), json=body, headers=headers)


def listed(client: FlaskClient, project: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(publishers_path(project), headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    publishers: list[dict[str, Any]] = response.get_json()["publishers"]
    return publishers


def remove(
    client: FlaskClient, project: str, publisher_id: str, headers: dict[str, str]
) -> TestResponse:
    return client.delete(f"{publishers_path(project)}/{publisher_id}", headers=headers)


def api_error(response: TestResponse, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    description: str = error["description"]
    return description
