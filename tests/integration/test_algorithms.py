"""Item 7 of "Core": the algorithm comes from configuration (RS256), never from the token,
and no header may point the service at keys of the token's choosing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient
from support.oidc_issuer import OIDCIssuer

from .conftest import MakeApp, MakeClaims, MakeToken, SignRaw
from .exchange_api import assert_failure, assert_minted, mint, replay_keys
from .handmade import b64url, json_bytes, signing_input
from .policies import github_publisher


@pytest.fixture
def client(shared_client: FlaskClient) -> FlaskClient:
    # One app for the module: these tests only send tokens (see `shared_client`).
    return shared_client


def _public_pem(issuer: OIDCIssuer) -> bytes:
    return (
        issuer.private_key(issuer.current_kid)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _with_header(token: str, **header: Any) -> str:
    """The same payload and signature under another header (the signature then covers
    a different signing input, which must not matter: the header is refused first)."""
    _, payload, signature = token.split(".")
    return f"{b64url(json_bytes(header))}.{payload}.{signature}"


def test_unsecured_token_alg_none_is_refused(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_claims: MakeClaims, store: redis.Redis
) -> None:
    # An unsecured JWT (RFC 7519 §6): alg "none" and an empty signature. The parser
    # refuses the empty signature segment before the algorithm is looked at, so this
    # is invalid-payload today; the variants with a signature below are invalid-token.
    header = {"alg": "none", "typ": "JWT", "kid": oidc_issuer.current_kid}
    token = signing_input(header, make_claims()) + "."
    assert_failure(mint(client, token), 422, frozenset({"invalid-token", "invalid-payload"}))
    assert replay_keys(store) == []


@pytest.mark.parametrize("alg", ["none", "None", "NONE"], ids=["none", "None", "NONE"])
def test_alg_none_with_a_signature_is_refused(
    client: FlaskClient, make_token: MakeToken, alg: str
) -> None:
    token = _with_header(make_token(), alg=alg, typ="JWT", kid="key-1")
    assert_failure(mint(client, token), 422, "invalid-token")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"], ids=["HS256", "HS384", "HS512"])
def test_hmac_with_the_public_key_as_secret_is_refused(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, alg: str
) -> None:
    # The classic key-confusion attack: the JWKS public key, PEM-encoded, as HMAC secret.
    token = make_token(alg=alg, key=_public_pem(oidc_issuer))
    assert_failure(mint(client, token), 422, "invalid-token")


@pytest.mark.parametrize(
    "alg", ["RS384", "RS512", "PS256"], ids=["RS384-right-key", "RS512-right-key", "PS256"]
)
def test_other_rsa_algorithm_with_the_right_key_is_refused(
    client: FlaskClient, make_token: MakeToken, alg: str
) -> None:
    assert_failure(mint(client, make_token(alg=alg)), 422, "invalid-token")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"], ids=["ES256", "EdDSA"])
def test_header_algorithm_that_does_not_fit_the_rsa_key_is_refused(
    client: FlaskClient, make_token: MakeToken, alg: str
) -> None:
    token = _with_header(make_token(), alg=alg, typ="JWT", kid="key-1")
    assert_failure(mint(client, token), 422, "invalid-token")


def test_signature_by_a_key_not_in_the_jwks_under_an_existing_kid_is_refused(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    # A pooled key the issuer never publishes (removed before any key set fetch).
    spare = oidc_issuer.add_key("spare")
    stranger = oidc_issuer.private_key(spare)
    oidc_issuer.remove_key(spare)
    assert_failure(mint(client, make_token(kid="key-1", key=stranger)), 422, "invalid-token")


def test_signature_by_another_trusted_issuers_key_is_refused(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
) -> None:
    # Both issuers are trusted and both have a "key-1": keys are looked up per issuer.
    other = make_oidc_issuer("/enterprise")
    client = make_app(
        [github_publisher(oidc_issuer.url)], issuers=[oidc_issuer.url, other.url]
    ).test_client()
    forged = other.sign(make_claims(), kid="key-1")  # iss names oidc_issuer
    assert_failure(mint(client, forged), 422, "invalid-token")
    assert_minted(mint(client, oidc_issuer.sign(make_claims(), kid="key-1")))


def test_tampered_payload_is_refused(
    client: FlaskClient, make_token: MakeToken, make_claims: MakeClaims
) -> None:
    header, _, signature = make_token(repository_owner_id="4242").split(".")
    genuine_payload = signing_input({}, make_claims()).split(".")[1]
    assert_failure(mint(client, f"{header}.{genuine_payload}.{signature}"), 422, "invalid-token")


def test_empty_signature_on_rs256_is_refused(client: FlaskClient, make_token: MakeToken) -> None:
    header, payload, _ = make_token().split(".")
    assert_failure(
        mint(client, f"{header}.{payload}."), 422, frozenset({"invalid-token", "invalid-payload"})
    )


@pytest.mark.parametrize(
    "kid",
    [None, "no-such-key", 1, "", "k" * 300],
    ids=["no-kid", "unknown-kid", "kid-not-a-string", "empty-kid", "oversized-kid"],
)
def test_kid_is_required_and_must_be_known(
    client: FlaskClient, sign_raw: SignRaw, make_claims: MakeClaims, kid: object
) -> None:
    header: dict[str, object] = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    assert_failure(mint(client, sign_raw(make_claims(), header)), 422, "invalid-token")


@pytest.mark.parametrize(
    "header_name",
    ["jku", "x5u", "x5c", "jwk", "crit", "cty", "zip", "b64"],
    ids=["jku", "x5u", "x5c", "jwk", "crit", "cty-nested-jwt", "zip", "b64"],
)
def test_headers_that_name_keys_or_extensions_are_refused_without_fetching(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    sign_raw: SignRaw,
    make_claims: MakeClaims,
    header_name: str,
) -> None:
    attacker = make_oidc_issuer("/attacker")
    values: dict[str, Any] = {
        "jku": attacker.jwks_url,
        "x5u": attacker.url + "/cert.pem",
        "x5c": ["MIIB"],
        "jwk": attacker.jwks()["keys"][0],
        "crit": ["exp"],
        "cty": "JWT",
        "zip": "DEF",
        "b64": False,
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": oidc_issuer.current_kid}
    header[header_name] = values[header_name]
    response = mint(client, sign_raw(make_claims(), header))
    assert_failure(response, 422, "invalid-token")
    assert attacker.requests() == 0


@pytest.mark.parametrize(
    "typ", ["at+jwt", "trustpub-upload+jwt", "JOSE", 1], ids=["at+jwt", "upload", "JOSE", "int"]
)
def test_token_of_another_type_is_refused(
    client: FlaskClient, make_token: MakeToken, typ: object
) -> None:
    assert_failure(mint(client, make_token(headers={"typ": typ})), 422, "invalid-token")


@pytest.mark.parametrize("typ", ["JWT", "jwt"], ids=["JWT", "jwt-lower-case"])
def test_typ_jwt_or_none_is_accepted(
    client: FlaskClient, make_token: MakeToken, sign_raw: SignRaw, make_claims: MakeClaims, typ: str
) -> None:
    assert_minted(mint(client, make_token(headers={"typ": typ})))
    assert_minted(mint(client, sign_raw(make_claims(), {"alg": "RS256", "kid": "key-1"})))
