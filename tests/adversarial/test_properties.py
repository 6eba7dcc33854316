"""Property-based tests: whatever the input, the service refuses cleanly or decides correctly.

(a) the compact-JWS parser and the one unverified read raise only `TrustpubError`s;
(b) the verifier, fed correctly signed tokens with arbitrary claims, either raises a
    `TrustpubError` or returns claims that meet every documented registered-claim rule;
(c) GitHub claim matching accepts a token only for a publisher whose every checked claim
    equals the token's under the documented case rules (decided here independently);
(d) the mint endpoint answers any body with the contract envelope, never a 500;
(e) introspection answers any string that is not an active token with exactly
    {"active": false}.

Hypothesis runs derandomized (a fixed seed per test) with no example database, so CI
sees the same examples every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from integration.exchange_api import AUDIENCE, MINT_PATH, assert_minted, mint
from integration.handmade import b64url, rs256_jws
from integration.oauth_api import INTROSPECT_PATH, Clients
from support.claims import GITHUB_SHA, REMOVE, github_claims

from app.errors import InvalidPublisher, TrustpubError
from app.oidc.jws import check_header, parse_compact_jws, read_unverified_routing
from app.oidc.keysets import StaticKeySet
from app.oidc.verify import (
    LEEWAY_SECONDS,
    IssuerConfig,
    TrustedIssuers,
    verify_identity_token,
)
from app.publishers.github import GitHubProvider, GitHubPublisher
from app.publishers.registry import PublisherRegistry
from app.settings import Settings

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# The HTTP properties (d, e) cost a request per example: fewer, to keep the folder fast.
HTTP_PROPERTY_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=120)

ISSUER = "https://token.actions.githubusercontent.com"
KID = "property-key"
NOW = 1_800_000_000
CONFIG = IssuerConfig(url=ISSUER, provider="github")
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUERS = TrustedIssuers()
ISSUERS.add(CONFIG, StaticKeySet({KID: KEY.public_key()}))
HEADER = {"alg": "RS256", "typ": "JWT", "kid": KID}

# -- strategies -----------------------------------------------------------------------

HUGE_NUMBERS = st.sampled_from([10**400, -(10**400), 2**63, 2**64 + 1, 1e308, -1e308, 1e-300])
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_NUMBERS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _claims(**overrides: Any) -> dict[str, Any]:
    return github_claims(ISSUER, AUDIENCE, now=NOW, **{"jti": "fixed-jti", **overrides})


def _sign(claims: Mapping[str, Any] | bytes, header: Mapping[str, Any] | bytes = HEADER) -> str:
    return rs256_jws(header, claims, KEY)


VALID_TOKEN = _sign(_claims())


def _edit_text(text: str, name: str, position: int, char: str) -> str:
    if name == "insert":
        index = position % (len(text) + 1)
        return text[:index] + char + text[index:]
    if name == "truncate":
        return text[: position % (len(text) + 1)]
    if not text:
        return text
    index = position % len(text)
    replacement = char if name == "replace" else ""
    return text[:index] + replacement + text[index + 1 :]


def _mutations_of(token: str) -> st.SearchStrategy[str]:
    """Small edits of a token: characters, segments, dots and lengths."""
    alphabet = "AZaz09-_.=+/ \n\x00é"
    operation = st.one_of(
        st.tuples(st.just("replace"), st.integers(0, 10_000), st.sampled_from(alphabet)),
        st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(alphabet)),
        st.tuples(st.just("delete"), st.integers(0, 10_000), st.just("")),
        st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just("")),
        st.tuples(st.just("swap-segments"), st.integers(0, 2), st.just("")),
        st.tuples(st.just("drop-segment"), st.integers(0, 2), st.just("")),
        st.tuples(st.just("duplicate-segment"), st.integers(0, 2), st.just("")),
    )

    def apply(operations: list[tuple[str, int, str]]) -> str:
        text = token
        for name, position, char in operations:
            if name in ("replace", "insert", "delete", "truncate"):
                text = _edit_text(text, name, position, char)
                continue
            parts = text.split(".")
            which = position % len(parts)
            if name == "swap-segments":
                other = (which + 1) % len(parts)
                parts[which], parts[other] = parts[other], parts[which]
            elif name == "drop-segment":
                del parts[which]
            else:
                parts.insert(which, parts[which])
            text = ".".join(parts)
        return text

    return st.lists(operation, min_size=1, max_size=4).map(apply)


HEADER_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "EdDSA"]) | JSON_VALUES,
        "kid": st.sampled_from([KID, "", "../x", "k" * 300]) | JSON_VALUES,
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt", "trustpub-upload+jwt"]) | JSON_VALUES,
        "crit": JSON_VALUES,
        "jku": st.text(max_size=20),
        "cty": st.sampled_from(["JWT", "json"]),
        "x5c": JSON_VALUES,
    },
)
CLAIM_OBJECTS = st.fixed_dictionaries(
    {}, optional={"iss": st.sampled_from([ISSUER, ISSUER + "/"]) | JSON_VALUES}
).flatmap(
    lambda base: st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5).map(
        lambda extra: {**extra, **base}
    )
)
SEGMENTS = st.one_of(
    st.binary(max_size=64).map(b64url),
    JSON_VALUES.map(lambda value: b64url(json.dumps(value).encode())),
    HEADER_OBJECTS.map(lambda value: b64url(json.dumps(value).encode())),
    st.text(alphabet="ABCxyz019-_=+/. \t", max_size=12),
)
TOKEN_TEXTS = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")),
    st.lists(SEGMENTS, min_size=1, max_size=5).map(".".join),
    st.tuples(HEADER_OBJECTS, CLAIM_OBJECTS, st.binary(max_size=300)).map(
        lambda parts: ".".join(
            [
                b64url(json.dumps(parts[0]).encode()),
                b64url(json.dumps(parts[1]).encode()),
                b64url(parts[2]),
            ]
        )
    ),
    st.tuples(HEADER_OBJECTS, CLAIM_OBJECTS).map(lambda parts: _sign(parts[1], parts[0])),
    _mutations_of(VALID_TOKEN),
)


# -- (a) parsing and the unverified read --------------------------------------------------


@PROPERTY_SETTINGS
@given(token=TOKEN_TEXTS)
@example(token=VALID_TOKEN)
@example(token="." * 2)
@example(token="A" * (16 * 1024 + 1))
def test_parsing_and_routing_raise_only_trustpub_errors(token: str) -> None:
    try:
        parsed = parse_compact_jws(token)
        routing = read_unverified_routing(parsed)
        check_header(parsed)
    except TrustpubError:
        return
    # Whatever got through is what the verifier may rely on before the signature.
    assert isinstance(parsed.header, dict)
    assert isinstance(parsed.claims, dict)
    assert isinstance(routing.issuer, str)
    assert routing.issuer
    assert routing.kid is None or (isinstance(routing.kid, str) and 0 < len(routing.kid) <= 256)
    assert isinstance(routing.alg, str)
    assert not {"jku", "x5u", "x5c", "jwk", "crit", "cty", "zip", "b64"} & set(parsed.header)


# -- (b) the verifier on correctly signed tokens ------------------------------------------

NUMERIC_NEAR_MISSES = st.one_of(
    st.integers(NOW - 2_000, NOW + 2_000),
    st.floats(NOW - 2_000, NOW + 2_000),
    st.sampled_from(
        [NOW - LEEWAY_SECONDS - 1, NOW - LEEWAY_SECONDS, NOW + LEEWAY_SECONDS, NOW + 61, 0, -1]
    ),
    HUGE_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
)
REGISTERED_NEAR_MISSES: dict[str, st.SearchStrategy[Any]] = {
    "iss": st.sampled_from([ISSUER, ISSUER + "/", ISSUER.upper(), "http://x"]),
    "aud": st.sampled_from([AUDIENCE, [AUDIENCE], AUDIENCE.upper(), AUDIENCE + " ", "", None]),
    "exp": NUMERIC_NEAR_MISSES,
    "iat": NUMERIC_NEAR_MISSES,
    "nbf": NUMERIC_NEAR_MISSES,
    "jti": st.sampled_from(["", "j", "j" * 256, "j" * 257, 1, None]) | st.text(max_size=300),
}


def _registered_mutation(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(REGISTERED_NEAR_MISSES[name], st.just(REMOVE), JSON_VALUES)


REGISTERED_MUTATIONS = st.lists(
    st.sampled_from(sorted(REGISTERED_NEAR_MISSES)), unique=True, min_size=1, max_size=4
).flatmap(lambda names: st.fixed_dictionaries({n: _registered_mutation(n) for n in names}))

CLAIM_SETS = st.one_of(
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=8),
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=8).map(
        lambda extra: {**extra, **_claims()}
    ),
    REGISTERED_MUTATIONS.map(lambda overrides: _claims(**overrides)),
)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value == value and value not in (float("inf"), float("-inf"))


@PROPERTY_SETTINGS
@given(claims=CLAIM_SETS)
@example(claims=_claims())
@example(claims=_claims(exp=10**400))
@example(claims=_claims(iat=-(10**400)))
@example(claims=_claims(nbf=10**400))
def test_verifier_accepts_only_tokens_meeting_every_registered_claim_rule(
    claims: dict[str, Any],
) -> None:
    token = _sign(json.dumps(claims).encode())
    try:
        identity = verify_identity_token(token, ISSUERS, AUDIENCE, NOW)
    except TrustpubError:
        return
    verified = identity.claims
    assert verified.get("iss") == ISSUER
    # One audience, as one string, equal to ours character for character.
    assert isinstance(verified.get("aud"), str)
    assert verified["aud"] == AUDIENCE
    assert _is_number(verified.get("exp"))
    assert _is_number(verified.get("iat"))
    expires_at, issued_at = int(verified["exp"]), int(verified["iat"])
    assert (identity.expires_at, identity.issued_at) == (expires_at, issued_at)
    assert expires_at + LEEWAY_SECONDS >= NOW, "expired token accepted"
    assert issued_at <= NOW + LEEWAY_SECONDS, "token from the future accepted"
    assert 0 < expires_at - issued_at <= CONFIG.max_lifetime, "lifetime cap not applied"
    if "nbf" in verified:
        assert _is_number(verified["nbf"])
        assert int(verified["nbf"]) <= NOW + LEEWAY_SECONDS
    jti = verified.get("jti")
    assert isinstance(jti, str)
    assert 0 < len(jti) <= 256
    assert identity.jti == jti


# -- (c) GitHub claim matching ------------------------------------------------------------

RELEASE = GitHubPublisher(
    issuer=ISSUER,
    repository="octo-org/demo",
    repository_owner_id="65",
    repository_id="74",
    workflow="release.yml",
    environment="pypi",
    projects=frozenset({"demo-pkg"}),
    source="property: release",
)
# Same repository registered in another case, no environment and no repository pin.
PUBLISH = GitHubPublisher(
    issuer=ISSUER,
    repository="Octo-Org/Demo",
    repository_owner_id="65",
    workflow="publish.yml",
    projects=frozenset({"other-pkg"}),
    source="property: publish",
)
REGISTRY = PublisherRegistry([RELEASE, PUBLISH])

GITHUB_REQUIRED = (
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "sha",
    "event_name",
    "run_id",
)
GITHUB_OPTIONAL = (
    "environment",
    "ref_type",
    "ref_protected",
    "runner_environment",
    "run_attempt",
    "workflow_sha",
    "job_workflow_sha",
    "actor",
    "actor_id",
)


def _case_variants(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda uppers: "".join(c.upper() if up else c for c, up in zip(text, uppers, strict=True))
    )


class WorkflowRef:
    """A workflow_ref to build once the (mutated) repository claim is known."""

    def __init__(self, repository: str | None, file: str, separator: str, ref: str) -> None:
        self.repository, self.file, self.separator, self.ref = repository, file, separator, ref

    def build(self, repository: Any) -> str:
        owner_repo = self.repository if self.repository is not None else str(repository)
        return f"{owner_repo}/.github/workflows/{self.file}{self.separator}{self.ref}"

    def __repr__(self) -> str:
        return f"WorkflowRef({self.repository!r}, {self.file!r}, {self.separator!r}, {self.ref!r})"


WORKFLOW_REFS = st.builds(
    WorkflowRef,
    repository=st.none() | st.sampled_from(["octo-org/demo", "OCTO-ORG/demo", "evil/demo"]),
    file=st.sampled_from(
        [
            "release.yml",
            "publish.yml",
            "Release.yml",
            "release.yaml",
            "sub/release.yml",
            "release.yml@x.yml",
            "release_yml",
            "release.yml ",
            "",
        ]
    )
    | st.text(max_size=12),
    separator=st.sampled_from(["@", "", "@@"]),
    ref=st.sampled_from(["refs/heads/main", "refs/tags/v1", "", "a@b"]) | st.text(max_size=8),
)

GITHUB_NEAR_MISSES: dict[str, st.SearchStrategy[Any]] = {
    "repository": _case_variants("octo-org/demo")
    | st.sampled_from(["octo-org/demo2", "octo-org/demo ", "octo-org/dem", "octo-org/demo/x", ""]),
    "repository_owner_id": st.sampled_from(["65", "065", " 65", "66", "65 ", "", "6\uff15"]),
    "repository_id": st.sampled_from(["74", "074", "75", ""]),
    "workflow_ref": WORKFLOW_REFS,
    "job_workflow_ref": WORKFLOW_REFS,
    "environment": _case_variants("pypi")
    | st.sampled_from(["pypi ", "", "PYP\u0130", "pyp\u0131", "\uff50\uff59\uff50\uff49", "pyp"]),
    "event_name": st.sampled_from(["push", "pull_request_target", "workflow_dispatch"]),
    "ref": st.sampled_from(["", "refs/heads/main"]),
    "sha": st.sampled_from(["", GITHUB_SHA]),
}
MUTABLE_CLAIMS = sorted({*GITHUB_REQUIRED, *GITHUB_OPTIONAL, "sub", "unknown_claim"})


def _claim_mutation(name: str) -> st.SearchStrategy[Any]:
    near_miss = GITHUB_NEAR_MISSES.get(name, st.text(max_size=10))
    return st.one_of(near_miss, near_miss, st.just(REMOVE), JSON_VALUES)


GITHUB_MUTATIONS = st.lists(st.sampled_from(MUTABLE_CLAIMS), unique=True, max_size=5).flatmap(
    lambda names: st.fixed_dictionaries({n: _claim_mutation(n) for n in names})
)


def _apply(overrides: dict[str, Any]) -> dict[str, Any]:
    plain = {k: v for k, v in overrides.items() if not isinstance(v, WorkflowRef)}
    claims = _claims(**plain)
    for name, value in overrides.items():
        if isinstance(value, WorkflowRef):
            claims[name] = value.build(claims.get("repository"))
    return claims


def _expected_projects(issuer: str, claims: Mapping[str, Any]) -> frozenset[str] | None:
    """The documented decision, computed without the implementation's helpers."""
    if issuer != ISSUER:
        return None
    if any(not isinstance(claims.get(name), str) for name in GITHUB_REQUIRED):
        return None  # missing, null or not a string
    if any(not isinstance(claims.get(name), str | None) for name in GITHUB_OPTIONAL):
        return None
    if claims["event_name"] == "pull_request_target":
        return None
    if claims["ref"] == "" and claims["sha"] == "":
        return None
    repository = claims["repository"]
    # Owner/name compare case-insensitively; both publishers are octo-org/demo.
    if not (repository.isascii() and repository.lower() == "octo-org/demo"):
        return None
    if claims["repository_owner_id"] != "65":
        return None

    def calls(workflow_file: str) -> bool:
        # The calling workflow is <repository>/.github/workflows/<file>@<one non-empty ref>;
        # file names are case-sensitive.
        prefix = f"{repository}/.github/workflows/{workflow_file}@"
        ref = claims["workflow_ref"][len(prefix) :]
        return claims["workflow_ref"].startswith(prefix) and ref != "" and "@" not in ref

    environment = claims.get("environment")
    # GitHub environment names are case-insensitive: any ASCII casing of "pypi".
    in_pypi = isinstance(environment, str) and environment.isascii()
    in_pypi = in_pypi and environment.lower() == "pypi"
    if calls("release.yml") and claims["repository_id"] == "74" and in_pypi:
        return RELEASE.projects
    if calls("publish.yml"):
        return PUBLISH.projects
    return None


@PROPERTY_SETTINGS
@given(
    workflow=st.sampled_from(["release.yml", "publish.yml"]),
    overrides=GITHUB_MUTATIONS,
    issuer=st.sampled_from([ISSUER, ISSUER, ISSUER + "/enterprise", "https://gitlab.com"]),
)
@example(workflow="release.yml", overrides={}, issuer=ISSUER)
@example(workflow="release.yml", overrides={"environment": "PyPI"}, issuer=ISSUER)
@example(workflow="publish.yml", overrides={"repository": "OCTO-ORG/DEMO"}, issuer=ISSUER)
def test_github_matching_accepts_exactly_the_documented_matches(
    workflow: str, overrides: dict[str, Any], issuer: str
) -> None:
    # Start from a token of one of the two publishers' workflows, then mutate it.
    claims = _apply({"workflow_ref": WorkflowRef(None, workflow, "@", "refs/heads/main")})
    claims = _apply({**claims, **overrides})
    expected = _expected_projects(issuer, claims)
    try:
        projects: frozenset[str] | None = REGISTRY.match(
            GitHubProvider().parse_claims(issuer, claims)
        ).projects
    except InvalidPublisher:
        projects = None
    if projects is not None:
        assert projects == expected, f"accepted a token it should not: {claims}"
    assert projects == expected, f"refused a token that matches a publisher: {claims}"


# -- (d) the mint endpoint with arbitrary bodies ------------------------------------------


def _no_rate_limits() -> dict[str, Any]:
    # Hundreds of requests from one address in a second are the point here, not abuse.
    return {"mint_rate_limit": "100000/minute"} if hasattr(Settings, "mint_rate_limit") else {}


@pytest.fixture
def unlimited_client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(**_no_rate_limits()).test_client()


@pytest.fixture
def valid_oidc_token(make_token: Callable[..., str]) -> str:
    return make_token()


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-16",
        None,
    ]
)


def _assert_mint_envelope(status: int, body: Any) -> None:
    assert status in (200, 413, 422), (status, body)
    assert isinstance(body, dict), body
    if status == 200:
        assert body["success"] is True, body
        assert isinstance(body["token"], str), body
        return
    assert set(body) == {"message", "errors"}
    assert body["message"] == "Token request failed"
    assert isinstance(body["errors"], list), body
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"code", "description"}, body
        assert isinstance(error["code"], str), body
        assert isinstance(error["description"], str), body


@HTTP_PROPERTY_SETTINGS
@given(data=st.data(), content_type=CONTENT_TYPES)
def test_mint_endpoint_answers_any_body_with_the_envelope(
    unlimited_client: FlaskClient, valid_oidc_token: str, data: st.DataObject, content_type: Any
) -> None:
    body = data.draw(
        st.one_of(
            st.binary(max_size=2_000),
            JSON_VALUES.map(lambda value: json.dumps(value).encode()),
            TOKEN_TEXTS.map(lambda token: json.dumps({"token": token}).encode()),
            _mutations_of(valid_oidc_token).map(
                lambda token: json.dumps({"token": token}).encode()
            ),
            st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3).map(
                lambda extra: json.dumps({**extra, "token": valid_oidc_token[:-2]}).encode()
            ),
        ),
        label="body",
    )
    kwargs: dict[str, Any] = {"data": body}
    if content_type is not None:
        kwargs["content_type"] = content_type
    response = unlimited_client.post(MINT_PATH, **kwargs)
    _assert_mint_envelope(response.status_code, response.get_json(silent=True))


# -- (e) introspection of arbitrary strings -----------------------------------------------


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients.toml")


@pytest.fixture
def introspection_client(make_app: Callable[..., Flask], clients: Clients) -> FlaskClient:
    return make_app(clients_file=clients.path).test_client()


@pytest.fixture
def upload_token(introspection_client: FlaskClient, make_token: Callable[..., str]) -> str:
    token: str = assert_minted(mint(introspection_client, make_token()))["token"]
    return token


B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respellings_of(token: str) -> st.SearchStrategy[str]:
    """The same bytes with non-zero spare bits in the last character of the signature."""
    spare_bits = {2: 0b1111, 3: 0b11}.get(len(token.rsplit(".", 1)[1]) % 4, 0)
    if not spare_bits:
        return st.nothing()
    last = B64URL_ALPHABET.index(token[-1])
    return st.integers(1, spare_bits).map(lambda bits: token[:-1] + B64URL_ALPHABET[last ^ bits])


def _form_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no client can send it
        return False
    return True


FORM_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300)


@HTTP_PROPERTY_SETTINGS
@given(data=st.data())
def test_introspection_of_anything_but_an_active_token_is_exactly_inactive(
    introspection_client: FlaskClient,
    clients: Clients,
    upload_token: str,
    valid_oidc_token: str,
    data: st.DataObject,
) -> None:
    token = data.draw(
        st.one_of(
            # A CI identity token is never an upload token, with or without the prefix.
            st.sampled_from([valid_oidc_token, "pypi-" + valid_oidc_token]),
            FORM_TEXT,
            FORM_TEXT.map(lambda text: "pypi-" + text),
            TOKEN_TEXTS.filter(bool).map(lambda text: "pypi-" + text),
            _mutations_of(upload_token).filter(bool),
            _mutations_of(upload_token.removeprefix("pypi-")).filter(bool),
            _respellings_of(upload_token),
            st.just(upload_token.removeprefix("pypi-")),
            st.just(upload_token.upper()),
        ).filter(_form_encodable),
        label="token",
    )
    response = introspection_client.post(
        INTROSPECT_PATH, data={"token": token}, headers=clients.basic("index")
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    if token == upload_token:
        assert body["active"] is True, body
    else:
        # Not even another spelling of the same bytes: base64url's spare bits in the last
        # character of a segment must be zero (canonical), or one token had 16 spellings.
        assert body == {"active": False}, token
