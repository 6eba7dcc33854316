"""Item 2 of "Core": every required claim, and claims of the wrong JSON type.

Registered claims (`iss`, `aud`, `exp`, `iat`, `jti`) are checked while verifying, so a
missing or mistyped one is `invalid-token` (`iss`, which picks the issuer, is
`invalid-payload`); GitHub's own claims are checked after verification, so the token
verified and the caller learns which of its claims is wrong (`invalid-publisher`).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from support.claims import REMOVE
from support.oidc_issuer import OIDCIssuer

from .conftest import MakeApp, MakeClaims, MakeToken, SignRaw
from .exchange_api import AUDIENCE, assert_failure, mint, replay_keys
from .policies import github_publisher


@pytest.fixture
def client(shared_client: FlaskClient) -> FlaskClient:
    # One app for the module: these tests only send tokens (see `shared_client`).
    return shared_client


REGISTERED_CLAIMS = [
    ("iss", "invalid-payload"),
    ("aud", "invalid-token"),
    ("exp", "invalid-token"),
    ("iat", "invalid-token"),
    ("jti", "invalid-token"),
]
GITHUB_REQUIRED_CLAIMS = [
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
]
MISSING_CLAIMS = REGISTERED_CLAIMS + [
    (name, "invalid-publisher") for name in GITHUB_REQUIRED_CLAIMS
]


@pytest.mark.parametrize(
    ("claim", "code"), MISSING_CLAIMS, ids=[claim for claim, _ in MISSING_CLAIMS]
)
def test_missing_required_claim_is_refused_and_named(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis, claim: str, code: str
) -> None:
    description = assert_failure(mint(client, make_token(**{claim: REMOVE})), 422, code)
    assert claim in description
    assert replay_keys(store) == []


NULLABLE = ["repository", "repository_owner_id", "workflow_ref"]


@pytest.mark.parametrize("claim", NULLABLE, ids=NULLABLE)
def test_null_required_claim_counts_as_missing(
    client: FlaskClient, make_token: MakeToken, claim: str
) -> None:
    description = assert_failure(
        mint(client, make_token(**{claim: None})), 422, "invalid-publisher"
    )
    assert claim in description


WRONG_TYPES: list[tuple[str, str, Any, str]] = [
    # id, claim, value, expected code
    ("owner-id-int", "repository_owner_id", 65, "invalid-publisher"),
    ("repository-id-int", "repository_id", 74, "invalid-publisher"),
    ("repository-list", "repository", ["octo-org/demo"], "invalid-publisher"),
    ("workflow-ref-object", "workflow_ref", {"path": "release.yml"}, "invalid-publisher"),
    ("run-id-int", "run_id", 8105469023, "invalid-publisher"),
    ("environment-bool", "environment", True, "invalid-publisher"),
    ("ref-protected-bool", "ref_protected", True, "invalid-publisher"),
    ("repository-empty", "repository", "", "invalid-publisher"),
    ("repository-no-owner", "repository", "demo", "invalid-publisher"),
    ("exp-string", "exp", "4102444800", "invalid-token"),
    ("exp-nan", "exp", float("nan"), "invalid-token"),
    ("exp-infinity", "exp", float("inf"), "invalid-token"),
    ("exp-400-digits", "exp", 10**400, "invalid-token"),
    ("iat-400-digits", "iat", -(10**400), "invalid-token"),
    ("nbf-400-digits", "nbf", 10**400, "invalid-token"),
    ("iat-bool", "iat", True, "invalid-token"),
    ("nbf-string", "nbf", "now", "invalid-token"),
    ("aud-list-with-ours", "aud", [AUDIENCE], "invalid-token"),
    ("aud-other-case", "aud", AUDIENCE.upper(), "invalid-token"),
    ("aud-pypi", "aud", "pypi", "invalid-token"),
    ("jti-int", "jti", 12345, "invalid-token"),
    ("jti-empty", "jti", "", "invalid-token"),
    ("jti-oversized", "jti", "j" * 257, "invalid-token"),
    ("iss-int", "iss", 42, "invalid-payload"),
    ("iss-empty", "iss", "", "invalid-payload"),
]


@pytest.mark.parametrize(
    ("claim", "value", "code"),
    [case[1:] for case in WRONG_TYPES],
    ids=[case[0] for case in WRONG_TYPES],
)
def test_claim_of_wrong_type_is_refused_not_coerced(
    client: FlaskClient,
    make_claims: MakeClaims,
    sign_raw: SignRaw,
    store: redis.Redis,
    claim: str,
    value: Any,
    code: str,
) -> None:
    # Signed by hand: PyJWT refuses to encode some of these (a non-string iss).
    token = sign_raw(make_claims(**{claim: value}))
    description = assert_failure(mint(client, token), 422, code)
    assert claim in description
    assert replay_keys(store) == []


def test_pull_request_target_cannot_publish(client: FlaskClient, make_token: MakeToken) -> None:
    description = assert_failure(
        mint(client, make_token(event_name="pull_request_target")), 422, "invalid-publisher"
    )
    assert "pull_request_target" in description


def test_ref_and_sha_may_not_both_be_empty(client: FlaskClient, make_token: MakeToken) -> None:
    assert_failure(mint(client, make_token(ref="", sha="")), 422, "invalid-publisher")


@pytest.mark.parametrize(
    "overrides",
    [
        {"ref": ""},  # deployments carry an empty ref
        {"sub": "repo:octo-org/demo@65/demo@74:ref:refs/heads/main"},  # sub is never parsed
        {"sub": REMOVE},
        {"repo_property_team": "release", "enterprise": "octo"},  # unknown claims are ignored
        {"environment": REMOVE, "ref_type": REMOVE, "runner_environment": REMOVE},
    ],
    ids=["empty-ref-with-sha", "custom-sub", "no-sub", "unknown-claims", "no-optional-claims"],
)
def test_tolerated_claim_variations(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken, overrides: dict[str, Any]
) -> None:
    client = make_app([github_publisher(oidc_issuer.url, environment=None)]).test_client()
    assert mint(client, make_token(**overrides)).status_code == 200
