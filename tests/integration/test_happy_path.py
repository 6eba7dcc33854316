"""Item 1 of "Core": a GitHub token in, a verifiable upload token out, at the contract's paths."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from app.publishers.registry import PublisherRegistry
from app.registrations import LivePublishers
from app.tokens.mint import UPLOAD_TOKEN_TYPE

from .conftest import MakeToken
from .exchange_api import (
    AUDIENCE,
    AUDIENCE_PATH,
    LEGACY_MINT_PATH,
    MINT_PATH,
    assert_failure,
    assert_minted,
    mint,
)

UPLOAD_ISSUER = f"urn:trustpub:{AUDIENCE}"
UPLOAD_AUDIENCE = f"urn:trustpub:upload:{AUDIENCE}"


def _verify_upload_token(client: FlaskClient, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify like an index would offline: with the key published at /.well-known/jwks.json."""
    assert token.startswith("pypi-")
    raw = token.removeprefix("pypi-")
    header = jwt.get_unverified_header(raw)
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    (entry,) = [key for key in jwks.get_json()["keys"] if key["kid"] == header["kid"]]
    assert entry["alg"] == "EdDSA"
    claims = jwt.decode(
        raw,
        jwt.PyJWK(entry),
        algorithms=["EdDSA"],
        audience=UPLOAD_AUDIENCE,
        issuer=UPLOAD_ISSUER,
        options={"require": ["exp", "iat", "jti", "iss", "aud"]},
    )
    return claims, header


@pytest.mark.parametrize("path", [MINT_PATH, LEGACY_MINT_PATH], ids=["mint-token", "github-alias"])
def test_exchange_mints_a_verifiable_upload_token(
    client: FlaskClient, make_token: MakeToken, path: str
) -> None:
    before = int(time.time())
    body = assert_minted(mint(client, make_token(), path))
    after = int(time.time())

    claims, header = _verify_upload_token(client, body["token"])
    assert header["typ"] == UPLOAD_TOKEN_TYPE == "trustpub-upload+jwt"
    assert header["alg"] == "EdDSA"
    # The policy lists "Demo_Pkg": projects are PEP 503-normalised.
    assert claims["projects"] == ["demo-pkg"]
    assert claims["exp"] == body["expires"]
    assert before + 900 <= body["expires"] <= after + 900
    # Never confusable with an OIDC token (RFC 8725 §3.11-3.12).
    assert claims["iss"] != AUDIENCE
    assert claims["aud"] != AUDIENCE


def test_each_exchange_mints_a_distinct_token(client: FlaskClient, make_token: MakeToken) -> None:
    first = assert_minted(mint(client, make_token()))
    second = assert_minted(mint(client, make_token()))
    first_claims, _ = _verify_upload_token(client, first["token"])
    second_claims, _ = _verify_upload_token(client, second["token"])
    assert first_claims["jti"] != second_claims["jti"]


def test_audience_endpoint_names_the_configured_audience(client: FlaskClient) -> None:
    response = client.get(AUDIENCE_PATH)
    assert response.status_code == 200
    assert response.get_json() == {"audience": AUDIENCE}


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", None],
    ids=["form-encoded-gitlab-recipe", "text-plain", "no-content-type"],
)
def test_body_is_json_whatever_the_content_type(
    client: FlaskClient, make_token: MakeToken, content_type: str | None
) -> None:
    body = json.dumps({"token": make_token()})
    response = client.post(MINT_PATH, data=body, content_type=content_type)
    assert_minted(response)


def test_upload_token_is_not_accepted_as_an_oidc_token(
    client: FlaskClient, make_token: MakeToken
) -> None:
    minted = assert_minted(mint(client, make_token()))
    for candidate in (minted["token"], minted["token"].removeprefix("pypi-")):
        assert_failure(
            mint(client, candidate), 422, frozenset({"invalid-payload", "invalid-token"})
        )


def test_a_mint_never_sizes_the_publisher_registry(
    client: FlaskClient, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sizing a registry is a scan for some implementations; a truthiness test on one
    # once made every mint walk 100,000 publishers (found by `make bench`).
    def refuse(self: object) -> int:
        raise AssertionError("the mint path asked a publisher registry for its size")

    monkeypatch.setattr(PublisherRegistry, "__len__", refuse)
    monkeypatch.setattr(LivePublishers, "__len__", refuse)
    assert_minted(mint(client, make_token()))
