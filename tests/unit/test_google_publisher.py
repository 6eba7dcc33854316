"""Google Cloud service accounts: claims, publishers, and the short acceptance window."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from support.claims import (
    GOOGLE_ACCOUNT_ID,
    GOOGLE_EMAIL,
    GOOGLE_LIFETIME,
    REMOVE,
    github_claims,
    google_claims,
)

from app.errors import ClaimMismatch, InvalidPublisher, InvalidToken
from app.oidc.keysets import StaticKeySet
from app.oidc.verify import LEEWAY_SECONDS, TrustedIssuers, verify_identity_token
from app.publishers.github import GitHubProvider
from app.publishers.google import (
    IGNORED_CLAIMS,
    MAX_TOKEN_AGE,
    MAX_TOKEN_LIFETIME,
    OPTIONAL_CLAIMS,
    REQUIRED_CLAIMS,
    GoogleClaims,
    GoogleProvider,
    GooglePublisher,
)
from app.publishers.registry import PublisherRegistry
from app.settings import GOOGLE_ISSUER, PUBLIC_GITHUB_ISSUER

AUDIENCE = "pypi.example.com"
NOW = 1_700_000_000
KID = "google-key-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

PROVIDER = GoogleProvider()


def parse(**overrides: Any) -> GoogleClaims:
    return PROVIDER.parse_claims(
        GOOGLE_ISSUER, google_claims(GOOGLE_ISSUER, AUDIENCE, now=NOW, **overrides)
    )


def publisher(**changes: Any) -> GooglePublisher:
    fields: dict[str, Any] = {
        "issuer": GOOGLE_ISSUER,
        "email": GOOGLE_EMAIL,
        "projects": frozenset({"demo-pkg"}),
        "source": "policies/google.toml: publisher[0]",
    }
    fields.update(changes)
    return GooglePublisher(**fields)


def test_parse_claims_of_a_real_token() -> None:
    claims = parse()

    assert claims.issuer == GOOGLE_ISSUER
    assert claims.lookup_key == GOOGLE_EMAIL
    assert claims.email == GOOGLE_EMAIL
    assert claims.subject == GOOGLE_ACCOUNT_ID
    assert claims.identity == {
        "provider": "google",
        "issuer": GOOGLE_ISSUER,
        "repository": GOOGLE_EMAIL,
        "email": GOOGLE_EMAIL,
        "sub": GOOGLE_ACCOUNT_ID,
    }


@pytest.mark.parametrize(
    ("value", "received"),
    [
        ("true", '"true"'),
        (False, "false"),
        (1, "1"),
        (None, None),
        (REMOVE, None),
        (["true"], '["true"]'),
    ],
    ids=["string-true", "false", "one", "null", "missing", "list"],
)
def test_email_verified_must_be_the_json_boolean_true(value: Any, received: str | None) -> None:
    with pytest.raises(InvalidPublisher, match="not verified") as excinfo:
        parse(email_verified=value)

    assert excinfo.value.mismatches == (
        ClaimMismatch("email_verified", "true (a JSON boolean)", received),
    )


WRONG_TYPES = [(42, "int"), (["x"], "list"), (True, "bool"), ({"a": "b"}, "dict")]


@pytest.mark.parametrize(
    "claim", REQUIRED_CLAIMS + OPTIONAL_CLAIMS, ids=list(REQUIRED_CLAIMS + OPTIONAL_CLAIMS)
)
@pytest.mark.parametrize(("value", "type_name"), WRONG_TYPES, ids=[name for _, name in WRONG_TYPES])
def test_every_claim_of_the_wrong_type_is_rejected(claim: str, value: Any, type_name: str) -> None:
    with pytest.raises(InvalidPublisher, match="wrong type") as excinfo:
        parse(**{claim: value})

    assert excinfo.value.mismatches == (ClaimMismatch(claim, "a string", f"<{type_name}>"),)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS, ids=list(REQUIRED_CLAIMS))
def test_every_required_claim_is_required(claim: str) -> None:
    with pytest.raises(InvalidPublisher, match="missing a required claim"):
        parse(**{claim: REMOVE})


@pytest.mark.parametrize("claim", [*OPTIONAL_CLAIMS, *IGNORED_CLAIMS])
def test_optional_and_ignored_claims_may_be_missing(claim: str) -> None:
    assert parse(**{claim: REMOVE}).email == GOOGLE_EMAIL


@pytest.mark.parametrize("claim", IGNORED_CLAIMS)
def test_ignored_claims_are_not_type_checked(claim: str) -> None:
    assert parse(**{claim: [1, 2]}).email == GOOGLE_EMAIL


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "a@b@c", "sa @x.iam.gserviceaccount.com", "@example.com"]
)
def test_malformed_email_is_rejected(email: str) -> None:
    with pytest.raises(InvalidPublisher, match="'email' is malformed"):
        parse(email=email)


# -- matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "claimed", "registered_for_token"),
    [
        (GOOGLE_EMAIL, GOOGLE_EMAIL, True),
        (GOOGLE_EMAIL, GOOGLE_EMAIL.upper(), False),
        (GOOGLE_EMAIL, "other@octo-project.iam.gserviceaccount.com", False),
        (GOOGLE_EMAIL, GOOGLE_EMAIL.replace("octo-project", "evil-project"), False),
    ],
    ids=["equal", "other-case", "other-account", "same-name-other-project"],
)
def test_email_is_exact(registered: str, claimed: str, registered_for_token: bool) -> None:
    registry = PublisherRegistry([publisher(email=registered)])
    claims = parse(email=claimed)

    # The publisher's own check agrees with the exact lookup: no case folding either.
    assert (publisher(email=registered).mismatches(claims) == ()) is registered_for_token
    if registered_for_token:
        assert registry.match(claims).projects == {"demo-pkg"}
    else:
        with pytest.raises(InvalidPublisher, match="no trusted publisher is registered"):
            registry.match(claims)


@pytest.mark.parametrize(
    ("pinned", "claimed", "matches"),
    [
        (None, GOOGLE_ACCOUNT_ID, True),
        (None, "999", True),
        (GOOGLE_ACCOUNT_ID, GOOGLE_ACCOUNT_ID, True),
        (GOOGLE_ACCOUNT_ID, "100000000000000000001", False),
    ],
    ids=["unpinned", "unpinned-any", "pinned-equal", "re-created-account"],
)
def test_sub_pin(pinned: str | None, claimed: str, matches: bool) -> None:
    mismatches = publisher(subject=pinned).mismatches(parse(sub=claimed))

    expected = () if matches else (ClaimMismatch("sub", repr(pinned), claimed),)
    assert mismatches == expected


def test_a_publisher_judges_each_token_on_its_own_claims() -> None:
    # What a check expects is written once per publisher; what it received and whether
    # it passed must come from each token.
    pinned = publisher(subject=GOOGLE_ACCOUNT_ID)
    other_account = "100000000000000000001"
    tokens = [
        ({}, ()),
        ({"sub": other_account}, (ClaimMismatch("sub", repr(GOOGLE_ACCOUNT_ID), other_account),)),
        ({}, ()),
    ]

    for overrides, mismatches in tokens:
        assert pinned.mismatches(parse(**overrides)) == mismatches
    assert publisher(subject=other_account).mismatches(parse(sub=other_account)) == ()


def test_pinned_publisher_is_more_specific() -> None:
    plain = publisher(projects=frozenset({"plain"}))
    pinned = publisher(subject=GOOGLE_ACCOUNT_ID, projects=frozenset({"pinned"}))

    assert (plain.specificity, pinned.specificity) == (0, 1)
    assert PublisherRegistry([plain, pinned]).match(parse()).projects == {"pinned"}
    assert plain.identity_key != pinned.identity_key


def test_claims_of_another_provider_never_match() -> None:
    github = GitHubProvider().parse_claims(
        PUBLIC_GITHUB_ISSUER, github_claims(PUBLIC_GITHUB_ISSUER, AUDIENCE, now=NOW)
    )

    assert publisher().mismatches(github) == (
        ClaimMismatch("iss", "a Google service account token", PUBLIC_GITHUB_ISSUER),
    )


def test_parse_publisher_defaults_to_accounts_google_com() -> None:
    parsed = PROVIDER.parse_publisher(
        {"provider": "google", "email": GOOGLE_EMAIL, "projects": ["Demo_Pkg"]}, "src"
    )

    assert parsed.issuer == "https://accounts.google.com"
    assert parsed.subject is None
    assert parsed.projects == {"demo-pkg"}


# -- the issuer's token rules: no jti, an hour's lifetime, a few minutes' age ----------


def trusted() -> TrustedIssuers:
    issuers = TrustedIssuers()
    issuers.add(
        PROVIDER.issuer_config(GOOGLE_ISSUER, enabled=True), StaticKeySet({KID: KEY.public_key()})
    )
    return issuers


def sign(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": KID})


def test_issuer_config() -> None:
    config = PROVIDER.issuer_config(GOOGLE_ISSUER, enabled=False)

    assert config.provider == "google"
    assert config.requires_jti is False
    assert config.max_age == MAX_TOKEN_AGE == 300
    assert config.max_lifetime == MAX_TOKEN_LIFETIME == GOOGLE_LIFETIME + LEEWAY_SECONDS
    assert config.enabled is False


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (0, True),
        (MAX_TOKEN_AGE, True),
        (MAX_TOKEN_AGE + LEEWAY_SECONDS, True),
        (MAX_TOKEN_AGE + LEEWAY_SECONDS + 1, False),
        (GOOGLE_LIFETIME - 10, False),
    ],
    ids=["fresh", "at-max-age", "at-max-age-plus-leeway", "one-second-too-old", "near-expiry"],
)
def test_only_fresh_tokens_are_accepted(age: int, accepted: bool) -> None:
    token = sign(google_claims(GOOGLE_ISSUER, AUDIENCE, now=NOW))

    if accepted:
        identity = verify_identity_token(token, trusted(), AUDIENCE, NOW + age)
        assert identity.jti is None
        assert PROVIDER.parse_claims(GOOGLE_ISSUER, identity.claims).email == GOOGLE_EMAIL
        return
    with pytest.raises(InvalidToken, match="too old"):
        verify_identity_token(token, trusted(), AUDIENCE, NOW + age)


def test_a_token_claiming_more_than_an_hour_is_refused() -> None:
    token = sign(google_claims(GOOGLE_ISSUER, AUDIENCE, now=NOW, exp=NOW + 2 * GOOGLE_LIFETIME))

    with pytest.raises(InvalidToken, match="lifetime"):
        verify_identity_token(token, trusted(), AUDIENCE, NOW)


def test_a_jti_that_is_sent_must_still_be_valid() -> None:
    token = sign(google_claims(GOOGLE_ISSUER, AUDIENCE, now=NOW, jti=""))

    with pytest.raises(InvalidToken, match="'jti'"):
        verify_identity_token(token, trusted(), AUDIENCE, NOW)
