"""The API description, loaded once, and an app to hold it against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from integration.conftest import (  # noqa: F401 - fixtures shared with the integration tests
    make_app,
    make_claims,
    make_settings,
    make_token,
    signing_key_path,
)
from integration.oauth_api import Clients

MakeApp = Any

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@pytest.fixture(scope="session")
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    return document


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients.toml")


@pytest.fixture
def api_app(make_app: MakeApp, clients: Clients) -> Flask:  # noqa: F811
    # Generated load from one address: limits are tested elsewhere.
    generous = "1000000/minute"
    return make_app(  # type: ignore[no-any-return]
        clients_file=clients.path,
        mint_rate_limit=generous,
        publisher_rate_limit=generous,
        introspect_rate_limit=generous,
        revoke_rate_limit=generous,
        registration_rate_limit=generous,
        read_rate_limit=generous,
    )
