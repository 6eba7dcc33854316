"""`verify_identity_token` at a fixed `now`: routing, algorithm, key and registered claims."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.claims import REMOVE, TOKEN_LIFETIME, github_claims

from app.errors import InvalidPayload, InvalidToken, NotEnabled, TrustpubError
from app.oidc.keysets import StaticKeySet
from app.oidc.verify import (
    LEEWAY_SECONDS,
    MAX_JTI_LENGTH,
    IssuerConfig,
    TrustedIssuers,
    VerifiedIdentity,
    replay_record_ttl,
    verify_identity_token,
)

ISSUER = "https://token.actions.githubusercontent.com"
GHES_ISSUER = "https://git.acme.example/_services/token"
AUDIENCE = "pypi.example.com"
NOW = 1_700_000_000
KID = "github-key-1"

# RSA key generation is slow: two 2048-bit keys for the whole module.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
GHES_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())

GITHUB = IssuerConfig(url=ISSUER, provider="github")


def trusted(config: IssuerConfig = GITHUB, keys: dict[str, Any] | None = None) -> TrustedIssuers:
    issuers = TrustedIssuers()
    issuers.add(config, StaticKeySet(keys or {KID: RSA_KEY.public_key()}))
    return issuers


def make_token(
    *,
    alg: str = "RS256",
    key: Any = RSA_KEY,
    headers: dict[str, Any] | None = None,
    issuer: str = ISSUER,
    **overrides: Any,
) -> str:
    """A GitHub-shaped token issued at NOW, signed with PyJWT's algorithms.

    Header and payload are serialised here (not by jwt.encode) so that values PyJWT
    would refuse or convert (NaN, booleans as dates, a numeric kid) reach the verifier
    exactly as a hostile issuer would send them.
    """
    claims = github_claims(issuer, AUDIENCE, now=NOW, **overrides)
    header = {"alg": alg, "typ": "JWT", "kid": KID, **(headers or {})}
    header = {name: value for name, value in header.items() if value is not REMOVE}
    signing_input = b".".join(
        jwt.utils.base64url_encode(json.dumps(part).encode("utf-8")) for part in (header, claims)
    )
    algorithm = jwt.algorithms.get_default_algorithms()[alg]
    signature = algorithm.sign(signing_input, algorithm.prepare_key(key))
    return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode("ascii")


def test_valid_token_verifies() -> None:
    identity = verify_identity_token(make_token(jti="jti-1"), trusted(), AUDIENCE, NOW)

    assert identity.issuer == GITHUB
    assert identity.jti == "jti-1"
    assert identity.issued_at == NOW
    assert identity.expires_at == NOW + TOKEN_LIFETIME
    assert identity.claims["repository"] == "octo-org/demo"
    assert identity.claims["iss"] == ISSUER


# -- routing, algorithm and key ----------------------------------------------------


@pytest.mark.parametrize(
    ("token_kwargs", "issuers", "error", "fragment"),
    [
        ({"issuer": "https://attacker.example"}, None, InvalidPayload, "not a trusted CI issuer"),
        ({"issuer": ISSUER + "/"}, None, InvalidPayload, "not a trusted CI issuer"),
        ({"issuer": ISSUER.upper()}, None, InvalidPayload, "not a trusted CI issuer"),
        ({"issuer": ISSUER + "/acme"}, None, InvalidPayload, "not a trusted CI issuer"),
        ({"iss": REMOVE}, None, InvalidPayload, "'iss'"),
        ({"iss": [ISSUER]}, None, InvalidPayload, "'iss'"),
        ({"alg": "ES256", "key": EC_KEY}, None, InvalidToken, "algorithm 'ES256' is not accepted"),
        ({"alg": "HS256", "key": b"k" * 32}, None, InvalidToken, "'HS256' is not accepted"),
        ({"headers": {"kid": REMOVE}}, None, InvalidToken, "no 'kid'"),
        ({"headers": {"kid": "rotated-away"}}, None, InvalidToken, "'kid' is not in"),
        ({"headers": {"kid": 7}}, None, InvalidToken, "'kid'"),
        ({"headers": {"jku": "https://attacker.example/jwks"}}, None, InvalidToken, "jku"),
        ({"headers": {"x5c": ["MIIB"]}}, None, InvalidToken, "x5c"),
        ({"headers": {"crit": ["exp"]}}, None, InvalidToken, "crit"),
        ({"headers": {"typ": "trustpub-upload+jwt"}}, None, InvalidToken, "'typ'"),
        # Signed by another key under the configured kid.
        ({"key": GHES_RSA_KEY}, None, InvalidToken, "did not verify"),
        # The configuration allows ES256, but the key under that kid is RSA.
        (
            {"alg": "ES256", "key": EC_KEY},
            trusted(replace(GITHUB, algorithms=frozenset({"RS256", "ES256"}))),
            InvalidToken,
            "did not verify",
        ),
        # Even a misconfigured issuer never gets HMAC verification.
        (
            {"alg": "HS256", "key": b"k" * 32},
            trusted(replace(GITHUB, algorithms=frozenset({"HS256"}))),
            InvalidToken,
            "not supported",
        ),
    ],
    ids=[
        "unknown-issuer",
        "issuer-trailing-slash",
        "issuer-other-case",
        "issuer-enterprise-path",
        "iss-missing",
        "iss-list",
        "alg-not-configured",
        "alg-hmac",
        "kid-missing",
        "kid-unknown",
        "kid-not-string",
        "header-jku",
        "header-x5c",
        "header-crit",
        "header-typ-upload",
        "wrong-key",
        "key-type-mismatch",
        "hmac-configured",
    ],
)
def test_routing_and_signature_failures(
    token_kwargs: dict[str, Any],
    issuers: TrustedIssuers | None,
    error: type[TrustpubError],
    fragment: str,
) -> None:
    token = make_token(**token_kwargs)

    with pytest.raises(error) as excinfo:
        verify_identity_token(token, issuers or trusted(), AUDIENCE, NOW)

    assert type(excinfo.value) is error
    assert fragment in excinfo.value.description


def test_unsigned_token_is_rejected() -> None:
    header, payload, _ = make_token().split(".")
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "kid": KID}).encode()).decode()
    token = f"{header}.{payload}.AAAA"  # a placeholder: an empty signature fails parsing

    with pytest.raises(InvalidToken, match="'none' is not accepted"):
        verify_identity_token(token, trusted(), AUDIENCE, NOW)


def test_configured_es256_issuer_verifies() -> None:
    config = IssuerConfig(url=ISSUER, provider="github", algorithms=frozenset({"ES256"}))

    identity = verify_identity_token(
        make_token(alg="ES256", key=EC_KEY),
        trusted(config, {KID: EC_KEY.public_key()}),
        AUDIENCE,
        NOW,
    )

    assert identity.issuer.algorithms == frozenset({"ES256"})


def test_each_issuer_verifies_only_with_its_own_keys() -> None:
    issuers = trusted()
    issuers.add(
        IssuerConfig(url=GHES_ISSUER, provider="github"),
        StaticKeySet({KID: GHES_RSA_KEY.public_key()}),
    )

    # Same kid at both issuers: the unverified iss selects whose key verifies.
    ghes = verify_identity_token(
        make_token(issuer=GHES_ISSUER, key=GHES_RSA_KEY), issuers, AUDIENCE, NOW
    )
    assert ghes.issuer.url == GHES_ISSUER
    with pytest.raises(InvalidToken, match="did not verify"):
        verify_identity_token(make_token(issuer=ISSUER, key=GHES_RSA_KEY), issuers, AUDIENCE, NOW)
    with pytest.raises(InvalidToken, match="did not verify"):
        verify_identity_token(make_token(issuer=GHES_ISSUER, key=RSA_KEY), issuers, AUDIENCE, NOW)


# -- audience ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "fragment"),
    [
        ([AUDIENCE], "single string, not a list"),
        ([AUDIENCE, "other.example.com"], "single string, not a list"),
        ([], "single string, not a list"),
        ("other.example.com", "not this service's audience"),
        ("pypi", "not this service's audience"),
        (AUDIENCE.upper(), "not this service's audience"),
        (AUDIENCE + " ", "not this service's audience"),
        ("", "not this service's audience"),
        (None, "not this service's audience"),
        (REMOVE, "not this service's audience"),
        ({"aud": AUDIENCE}, "not this service's audience"),
    ],
    ids=[
        "list-of-ours",
        "list-with-ours",
        "empty-list",
        "other",
        "pypi",
        "other-case",
        "trailing-space",
        "empty",
        "null",
        "missing",
        "object",
    ],
)
def test_audience_rejected(aud: Any, fragment: str) -> None:
    with pytest.raises(InvalidToken) as excinfo:
        verify_identity_token(make_token(aud=aud), trusted(), AUDIENCE, NOW)

    assert excinfo.value.code == "invalid-token"
    assert fragment in excinfo.value.description


# -- timing ------------------------------------------------------------------------

L = LEEWAY_SECONDS


@pytest.mark.parametrize(
    ("claims", "now", "config", "fragment"),
    [
        # exp: accepted up to and including exp + leeway.
        ({}, NOW + TOKEN_LIFETIME + L, {}, None),
        ({}, NOW + TOKEN_LIFETIME + L + 1, {}, "expired"),
        ({"exp": NOW - L, "iat": NOW - 100, "nbf": REMOVE}, NOW, {}, None),
        ({"exp": NOW - L - 1, "iat": NOW - 100, "nbf": REMOVE}, NOW, {}, "expired"),
        # iat: up to leeway in the future.
        ({"iat": NOW + L, "nbf": REMOVE, "exp": NOW + L + 300}, NOW, {}, None),
        (
            {"iat": NOW + L + 1, "nbf": REMOVE, "exp": NOW + L + 301},
            NOW,
            {},
            "'iat' is in the future",
        ),
        # nbf: optional, up to leeway in the future.
        ({"nbf": REMOVE}, NOW, {}, None),
        ({"nbf": NOW + L}, NOW, {}, None),
        ({"nbf": NOW + L + 1}, NOW, {}, "not valid yet"),
        # exp must be after iat.
        ({"exp": NOW}, NOW, {}, "'exp' is not after 'iat'"),
        ({"exp": NOW - 1}, NOW, {}, "'exp' is not after 'iat'"),
        ({"exp": NOW + 1}, NOW, {}, None),
        # Lifetime cap (exp - iat), inclusive.
        ({"exp": NOW + 900}, NOW, {"max_lifetime": 900}, None),
        ({"exp": NOW + 901}, NOW, {"max_lifetime": 900}, "lifetime is longer"),
        ({"exp": NOW + 86_400}, NOW, {}, "lifetime is longer"),
        ({"exp": NOW + 300}, NOW, {"max_lifetime": 299}, "lifetime is longer"),
        # Maximum age of iat, with the same leeway.
        ({"iat": NOW - 360, "exp": NOW + 100, "nbf": REMOVE}, NOW, {"max_age": 300}, None),
        (
            {"iat": NOW - 361, "exp": NOW + 100, "nbf": REMOVE},
            NOW,
            {"max_age": 300},
            "too old",
        ),
        ({"iat": NOW - 361, "exp": NOW + 100, "nbf": REMOVE}, NOW, {}, None),
    ],
    ids=[
        "exp-at-leeway",
        "exp-past-leeway",
        "exp-at-leeway-before-now",
        "exp-past-leeway-before-now",
        "iat-at-leeway",
        "iat-past-leeway",
        "nbf-absent",
        "nbf-at-leeway",
        "nbf-past-leeway",
        "exp-equals-iat",
        "exp-before-iat",
        "exp-one-after-iat",
        "lifetime-at-max",
        "lifetime-over-max",
        "lifetime-a-day",
        "lifetime-over-custom-max",
        "age-at-max",
        "age-over-max",
        "age-unbounded-without-max-age",
    ],
)
def test_timing(
    claims: dict[str, Any], now: int, config: dict[str, Any], fragment: str | None
) -> None:
    issuers = trusted(replace(GITHUB, **config))
    token = make_token(**claims)

    if fragment is None:
        identity = verify_identity_token(token, issuers, AUDIENCE, now)
        assert identity.expires_at == github_claims(ISSUER, AUDIENCE, now=NOW, **claims)["exp"]
        return
    with pytest.raises(InvalidToken) as excinfo:
        verify_identity_token(token, issuers, AUDIENCE, now)
    assert fragment in excinfo.value.description


@pytest.mark.parametrize(
    ("claim", "value", "fragment"),
    [
        ("exp", True, "'exp' is not a number"),
        ("exp", str(NOW + 300), "'exp' is not a number"),
        ("exp", float("nan"), "'exp' is not a number"),
        ("exp", float("inf"), "'exp' is not a number"),
        ("exp", [NOW + 300], "'exp' is not a number"),
        ("exp", None, "no 'exp' claim"),
        ("exp", REMOVE, "no 'exp' claim"),
        ("iat", False, "'iat' is not a number"),
        ("iat", str(NOW), "'iat' is not a number"),
        ("iat", float("nan"), "'iat' is not a number"),
        ("iat", float("-inf"), "'iat' is not a number"),
        ("iat", REMOVE, "no 'iat' claim"),
        ("nbf", True, "'nbf' is not a number"),
        ("nbf", str(NOW), "'nbf' is not a number"),
        ("nbf", float("nan"), "'nbf' is not a number"),
        ("nbf", {"t": NOW}, "'nbf' is not a number"),
        ("nbf", None, "'nbf'"),
    ],
    ids=[
        "exp-bool",
        "exp-string",
        "exp-nan",
        "exp-infinity",
        "exp-list",
        "exp-null",
        "exp-missing",
        "iat-bool",
        "iat-string",
        "iat-nan",
        "iat-minus-infinity",
        "iat-missing",
        "nbf-bool",
        "nbf-string",
        "nbf-nan",
        "nbf-object",
        "nbf-null",
    ],
)
def test_numeric_dates_must_be_finite_numbers(claim: str, value: Any, fragment: str) -> None:
    token = make_token(**{claim: value})

    with pytest.raises(InvalidToken) as excinfo:
        verify_identity_token(token, trusted(), AUDIENCE, NOW)

    assert fragment in excinfo.value.description


def test_nan_reaches_the_verifier_as_json_nan() -> None:
    """Guard for the table above: the token really carries the NaN literal."""
    token = make_token(exp=float("nan"))
    payload = jwt.utils.base64url_decode(token.split(".")[1])

    assert b'"exp": NaN' in payload


@pytest.mark.parametrize(
    ("claims", "expires_at", "issued_at"),
    [
        ({"exp": NOW + 300.9, "iat": NOW + 0.5, "nbf": NOW - 4.5}, NOW + 300, NOW),
        ({"exp": float(NOW + 300), "iat": float(NOW), "nbf": float(NOW)}, NOW + 300, NOW),
    ],
    ids=["fractional", "integral-floats"],
)
def test_float_dates_are_accepted(claims: dict[str, Any], expires_at: int, issued_at: int) -> None:
    identity = verify_identity_token(make_token(**claims), trusted(), AUDIENCE, NOW)

    assert (identity.expires_at, identity.issued_at) == (expires_at, issued_at)
    assert isinstance(identity.expires_at, int)


# -- jti ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jti", "requires_jti", "expected"),
    [
        ("a", True, "a"),
        ("j" * MAX_JTI_LENGTH, True, "j" * MAX_JTI_LENGTH),
        ("j" * (MAX_JTI_LENGTH + 1), True, None),
        (REMOVE, True, None),
        (None, True, None),
        ("", True, None),
        (12345, True, None),
        (["a"], True, None),
        (True, True, None),
        (REMOVE, False, "no-jti"),
        ("b", False, "b"),
        # A provider without jti may send none, but a jti that is sent must be valid.
        (12345, False, None),
        ("", False, None),
        ("j" * (MAX_JTI_LENGTH + 1), False, None),
    ],
    ids=[
        "short",
        "max-length",
        "too-long-257",
        "missing",
        "null",
        "empty",
        "number",
        "list",
        "bool",
        "missing-not-required",
        "present-not-required",
        "number-not-required",
        "empty-not-required",
        "too-long-not-required",
    ],
)
def test_jti(jti: Any, requires_jti: bool, expected: str | None) -> None:
    issuers = trusted(replace(GITHUB, requires_jti=requires_jti))
    token = make_token(jti=jti)

    if expected is None:
        with pytest.raises(InvalidToken, match="'jti' is missing or not a short string"):
            verify_identity_token(token, issuers, AUDIENCE, NOW)
        return
    identity = verify_identity_token(token, issuers, AUDIENCE, NOW)
    assert identity.jti == (None if expected == "no-jti" else expected)


# -- replay record -----------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [NOW - L, NOW, NOW + 100, NOW + TOKEN_LIFETIME, NOW + TOKEN_LIFETIME + L],
    ids=["iat-minus-leeway", "at-iat", "mid-life", "at-exp", "last-accepted-second"],
)
def test_replay_record_outlives_the_acceptance_window(now: int) -> None:
    identity = verify_identity_token(make_token(), trusted(), AUDIENCE, now)

    ttl = replay_record_ttl(identity, now)

    # The record must exist for as long as verify_identity_token would accept the token.
    assert isinstance(ttl, int)
    assert ttl >= 1
    assert ttl >= identity.expires_at + LEEWAY_SECONDS - now
    with pytest.raises(InvalidToken, match="expired"):
        verify_identity_token(make_token(), trusted(), AUDIENCE, now + ttl)


def test_replay_record_ttl_is_positive_for_any_identity() -> None:
    identity = VerifiedIdentity(
        issuer=GITHUB,
        claims={},
        expires_at=NOW,
        issued_at=NOW - 300,
        jti="x",
        signed=b"header.payload",
    )

    assert replay_record_ttl(identity, NOW + 10_000) >= 1


def test_the_signed_digest_keeps_its_derivation() -> None:
    # Replay keys of tokens without a jti are made from it: a new derivation would let a
    # token exchanged before an upgrade be exchanged again after it.
    token = make_token()
    identity = verify_identity_token(token, trusted(), AUDIENCE, NOW)
    fixed = replace(identity, signed=b"header.payload")

    assert identity.signed == token.rsplit(".", 1)[0].encode("ascii")
    assert fixed.signed_digest == "a2ac19676f081b1e5770abbe8d9d90c0"  # BLAKE2b, 16 bytes


def test_a_verified_identity_keeps_the_token_out_of_its_repr() -> None:
    token = make_token()
    identity = verify_identity_token(token, trusted(), AUDIENCE, NOW)

    assert token.split(".")[0] not in repr(identity)
    assert "signed=" not in repr(identity)


# -- provider kill switch ------------------------------------------------------------


class _CountingKeySet:
    def __init__(self) -> None:
        self.calls = 0

    def key_for(self, kid: str, alg: str) -> Any:
        self.calls += 1
        return RSA_KEY.public_key()


def test_a_disabled_issuer_is_refused_before_any_key_is_looked_up() -> None:
    keys = _CountingKeySet()
    issuers = TrustedIssuers()
    issuers.add(replace(GITHUB, enabled=False), keys)

    with pytest.raises(NotEnabled, match="github tokens is disabled") as excinfo:
        verify_identity_token(make_token(), issuers, AUDIENCE, NOW)

    assert (excinfo.value.code, excinfo.value.status) == ("not-enabled", 422)
    assert keys.calls == 0


def test_other_issuers_stay_enabled() -> None:
    issuers = trusted()
    issuers.add(
        replace(GITHUB, url=GHES_ISSUER, enabled=False),
        StaticKeySet({KID: GHES_RSA_KEY.public_key()}),
    )

    assert verify_identity_token(make_token(), issuers, AUDIENCE, NOW).jti is not None
    with pytest.raises(NotEnabled):
        verify_identity_token(
            make_token(issuer=GHES_ISSUER, key=GHES_RSA_KEY), issuers, AUDIENCE, NOW
        )


# -- signed digest: identifies a token without a jti -----------------------------------


def test_signed_digest_is_the_same_for_the_same_token_and_differs_for_another() -> None:
    token = make_token(jti=REMOVE)
    issuers = trusted(replace(GITHUB, requires_jti=False))

    first = verify_identity_token(token, issuers, AUDIENCE, NOW)
    again = verify_identity_token(token, issuers, AUDIENCE, NOW + 10)
    other = verify_identity_token(make_token(jti=REMOVE, run_id="2"), issuers, AUDIENCE, NOW)

    assert first.signed_digest == again.signed_digest
    assert first.signed_digest != other.signed_digest
    assert len(first.signed_digest) == 32


def test_signed_digest_ignores_the_encoding_of_the_signature() -> None:
    # base64url of a 256-byte signature leaves 2 spare bits in its last character; a
    # decoder that ignores them accepts several spellings of one token. The digest is
    # over what the issuer signed, so every spelling is the same token.
    token = make_token(jti=REMOVE)
    head, _, signature = token.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    respelled = f"{head}.{signature[:-1]}{alphabet[last ^ 1]}"
    issuers = trusted(replace(GITHUB, requires_jti=False))

    try:
        other = verify_identity_token(respelled, issuers, AUDIENCE, NOW)
    except (InvalidToken, InvalidPayload):
        return  # refused outright: just as good
    assert other.signed_digest == verify_identity_token(token, issuers, AUDIENCE, NOW).signed_digest
