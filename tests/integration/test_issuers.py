"""Item 9 of "Core": only configured issuers, byte for byte, and never a fetch for others.

The unverified `iss` only selects a configured issuer: an issuer that is not configured
exactly is `invalid-payload`, and no request goes to it or to any configured one (a
token must not be able to make the service fetch from a URL it names).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from flask.testing import FlaskClient
from support.oidc_issuer import OIDCIssuer

from .conftest import MakeApp, MakeClaims, SignRaw
from .exchange_api import assert_failure, assert_minted, mint, replay_keys
from .policies import github_publisher

ISSUER_VARIANTS: list[tuple[str, Callable[[str], str]]] = [
    ("trailing-slash", lambda url: url + "/"),
    ("upper-case-scheme", lambda url: url.replace("https://", "HTTPS://")),
    ("plain-http", lambda url: url.replace("https://", "http://")),
    ("localhost-for-127.0.0.1", lambda url: url.replace("127.0.0.1", "localhost")),
    ("extra-path", lambda url: url + "/enterprise"),
    ("query", lambda url: url + "?x=1"),
    ("trailing-space", lambda url: url + " "),
    ("public-github", lambda _: "https://token.actions.githubusercontent.com"),
]


@pytest.mark.parametrize(
    "variant",
    [variant for _, variant in ISSUER_VARIANTS],
    ids=[name for name, _ in ISSUER_VARIANTS],
)
def test_issuer_not_configured_byte_for_byte_is_unknown_and_never_fetched(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_claims: MakeClaims,
    store: redis.Redis,
    variant: Callable[[str], str],
) -> None:
    before = oidc_issuer.requests()
    token = oidc_issuer.sign(make_claims(iss=variant(oidc_issuer.url)))
    assert_failure(mint(client, token), 422, "invalid-payload")
    assert oidc_issuer.requests() == before
    assert replay_keys(store) == []


def test_other_case_of_a_configured_path_issuer_is_unknown(
    make_app: MakeApp,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
) -> None:
    enterprise = make_oidc_issuer("/Octo-Enterprise")
    client = make_app([github_publisher(enterprise.url)], issuers=[enterprise.url]).test_client()
    lowered = enterprise.url.replace("/Octo-Enterprise", "/octo-enterprise")
    token = enterprise.sign(make_claims(iss=lowered))
    assert_failure(mint(client, token), 422, "invalid-payload")
    assert enterprise.requests() == 0
    assert_minted(mint(client, enterprise.sign(make_claims(iss=enterprise.url))))


def test_token_from_an_unconfigured_issuer_causes_no_request_anywhere(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
) -> None:
    # A real, reachable issuer with a valid discovery document and JWKS: still unknown.
    stranger = make_oidc_issuer()
    before = oidc_issuer.requests()
    token = stranger.sign(make_claims(iss=stranger.url))
    assert_failure(mint(client, token), 422, "invalid-payload")
    assert stranger.requests() == 0
    assert oidc_issuer.requests() == before


def test_publisher_of_one_issuer_never_matches_a_token_of_another(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
) -> None:
    # Both issuers are trusted (say github.com and a GitHub Enterprise Server); the
    # publisher is registered for the first only. Identical claims from the second
    # must not publish: that server's admin could mint any claims.
    enterprise = make_oidc_issuer("/_services/token")
    client = make_app(
        [github_publisher(oidc_issuer.url)], issuers=[oidc_issuer.url, enterprise.url]
    ).test_client()
    from_enterprise = enterprise.sign(make_claims(iss=enterprise.url))
    assert_failure(mint(client, from_enterprise), 422, "invalid-publisher")
    assert enterprise.requests() > 0  # it verified: the refusal is about the publisher
    assert_minted(mint(client, oidc_issuer.sign(make_claims())))


def test_iss_in_the_header_does_not_select_the_issuer(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
    sign_raw: SignRaw,
) -> None:
    stranger = make_oidc_issuer()
    header = {"alg": "RS256", "typ": "JWT", "kid": "key-1", "iss": oidc_issuer.url}
    # RFC 7519 §5.3 lets a header replicate iss; only the claim is ever read.
    token = sign_raw(make_claims(iss=stranger.url), header, key=stranger.private_key("key-1"))
    assert_failure(mint(client, token), 422, "invalid-payload")
    assert stranger.requests() == 0
