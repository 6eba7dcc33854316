"""Items 3-5 of "Core": immutable-ID pins, workflow refs and environments.

A verified token that matches no publisher is `invalid-publisher`, and the description
tells the caller which of its own claims differ (claim, expected, received), without
revealing anything about other projects.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from support.claims import REMOVE
from support.oidc_issuer import OIDCIssuer

from .conftest import MakeApp, MakeToken
from .exchange_api import (
    assert_failure,
    assert_minted,
    mint,
    replay_keys,
    upload_token_projects,
)
from .policies import OWNER_ID, REPOSITORY_ID, github_publisher


@pytest.fixture
def client(shared_client: FlaskClient) -> FlaskClient:
    # One app for the module: these tests only send tokens (see `shared_client`).
    return shared_client


REF = "refs/tags/v1.0.0"
WORKFLOWS = "octo-org/demo/.github/workflows"

# -- immutable IDs (item 3) ------------------------------------------------------


def test_resurrected_owner_with_the_same_repository_name_is_refused(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis
) -> None:
    # Someone re-registered "octo-org" after it was deleted: same names, new owner ID.
    description = assert_failure(
        mint(client, make_token(repository_owner_id="4242")), 422, "invalid-publisher"
    )
    assert "repository_owner_id" in description
    assert repr(OWNER_ID) in description  # expected
    assert "'4242'" in description  # received
    assert replay_keys(store) == []


def test_repository_id_pin_mismatch_is_refused(client: FlaskClient, make_token: MakeToken) -> None:
    description = assert_failure(
        mint(client, make_token(repository_id="75")), 422, "invalid-publisher"
    )
    assert "repository_id" in description
    assert repr(REPOSITORY_ID) in description
    assert "'75'" in description


def test_repository_id_is_free_when_the_publisher_does_not_pin_it(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = make_app([github_publisher(oidc_issuer.url, repository_id=None)]).test_client()
    assert_minted(mint(client, make_token(repository_id="75")))


def test_every_differing_claim_is_named(client: FlaskClient, make_token: MakeToken) -> None:
    # The owner's own token (its IDs match): a stranger's learns only its IDs differ
    # (test_review_resurrection_leak.py).
    token = make_token(
        workflow_ref=f"{WORKFLOWS}/nightly.yml@{REF}",
        environment="staging",
    )
    description = assert_failure(mint(client, token), 422, "invalid-publisher")
    for claim in ("workflow_ref", "environment"):
        assert claim in description
    assert "nightly.yml" in description
    assert "'staging'" in description


def test_refusal_reveals_nothing_about_projects(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = make_app(
        [
            github_publisher(oidc_issuer.url, projects=["demo-secret-pkg"]),
            github_publisher(
                oidc_issuer.url, repository="octo-org/other", projects=["other-secret-pkg"]
            ),
        ]
    ).test_client()
    description = assert_failure(
        mint(client, make_token(repository_owner_id="4242")), 422, "invalid-publisher"
    )
    assert "secret" not in description
    assert "octo-org/other" not in description


def test_unregistered_repository_is_refused(client: FlaskClient, make_token: MakeToken) -> None:
    token = make_token(
        repository="octo-org/unknown",
        workflow_ref=f"octo-org/unknown/.github/workflows/release.yml@{REF}",
        job_workflow_ref=f"octo-org/unknown/.github/workflows/release.yml@{REF}",
    )
    description = assert_failure(mint(client, token), 422, "invalid-publisher")
    assert "octo-org/unknown" in description


def test_repository_and_owner_names_are_case_insensitive(
    client: FlaskClient, make_token: MakeToken
) -> None:
    workflow_ref = f"Octo-Org/Demo/.github/workflows/release.yml@{REF}"
    token = make_token(
        repository="Octo-Org/Demo",
        repository_owner="Octo-Org",
        workflow_ref=workflow_ref,
        job_workflow_ref=workflow_ref,
    )
    assert upload_token_projects(assert_minted(mint(client, token))) == ["demo-pkg"]


# -- workflow refs (item 4) ------------------------------------------------------

REFUSED_WORKFLOW_REFS = [
    ("second-at-with-fake-file", f"{WORKFLOWS}/release.yml@fake.yml@{REF}"),
    ("empty-ref", f"{WORKFLOWS}/release.yml@"),
    ("double-at", f"{WORKFLOWS}/release.yml@@{REF}"),
    ("no-ref", f"{WORKFLOWS}/release.yml"),
    ("another-file", f"{WORKFLOWS}/nightly.yml@{REF}"),
    ("another-extension", f"{WORKFLOWS}/release.yaml@{REF}"),
    ("file-name-case", f"{WORKFLOWS}/Release.yml@{REF}"),
    ("subdirectory", f"{WORKFLOWS}/sub/release.yml@{REF}"),
    ("dot-dot", f"{WORKFLOWS}/../workflows/release.yml@{REF}"),
    ("not-yaml", f"{WORKFLOWS}/release.yml.txt@{REF}"),
    ("outside-workflows", f"octo-org/demo/.github/release.yml@{REF}"),
    ("another-repository", f"evil-org/demo/.github/workflows/release.yml@{REF}"),
    ("repository-prefix", f"octo-org/demo-fork/.github/workflows/release.yml@{REF}"),
    ("empty", ""),
]


@pytest.mark.parametrize(
    "workflow_ref",
    [ref for _, ref in REFUSED_WORKFLOW_REFS],
    ids=[name for name, _ in REFUSED_WORKFLOW_REFS],
)
def test_odd_workflow_ref_is_refused(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis, workflow_ref: str
) -> None:
    description = assert_failure(
        mint(client, make_token(workflow_ref=workflow_ref, job_workflow_ref=workflow_ref)),
        422,
        "invalid-publisher",
    )
    assert "workflow_ref" in description
    assert replay_keys(store) == []


@pytest.mark.parametrize(
    "job_workflow_ref",
    [
        "other-org/shared/.github/workflows/publish.yml@refs/heads/main",
        f"{WORKFLOWS}/publish-steps.yml@{REF}",
    ],
    ids=["reusable-from-another-repository", "reusable-from-the-same-repository"],
)
def test_publisher_matches_the_calling_workflow_of_a_reusable_one(
    client: FlaskClient, make_token: MakeToken, job_workflow_ref: str
) -> None:
    token = make_token(
        workflow_ref=f"{WORKFLOWS}/release.yml@{REF}", job_workflow_ref=job_workflow_ref
    )
    assert upload_token_projects(assert_minted(mint(client, token))) == ["demo-pkg"]


def test_called_workflow_alone_does_not_match(client: FlaskClient, make_token: MakeToken) -> None:
    # release.yml is only the reusable workflow here; the caller is ci.yml, which the
    # publisher does not name (PyPI matches job_workflow_ref and would accept this).
    token = make_token(
        workflow_ref=f"{WORKFLOWS}/ci.yml@{REF}",
        job_workflow_ref=f"{WORKFLOWS}/release.yml@{REF}",
    )
    assert_failure(mint(client, token), 422, "invalid-publisher")


@pytest.mark.parametrize(
    "token_workflow",
    ["publish-pypi.yml", "publishXpypi.yml", "publish_pypi.yaml", "publish_pypi.ym"],
    ids=["dash-for-underscore", "any-char-for-underscore", "yaml-suffix", "prefix"],
)
def test_workflow_name_is_looked_up_exactly_never_as_a_pattern(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, make_token: MakeToken, token_workflow: str
) -> None:
    # PyPI once matched with SQL LIKE, where "_" matches any character.
    publisher = github_publisher(oidc_issuer.url, workflow="publish_pypi.yml")
    client = make_app([publisher]).test_client()
    workflow_ref = f"{WORKFLOWS}/{token_workflow}@{REF}"
    token = make_token(workflow_ref=workflow_ref, job_workflow_ref=workflow_ref)
    assert_failure(mint(client, token), 422, "invalid-publisher")
    exact = f"{WORKFLOWS}/publish_pypi.yml@{REF}"
    assert_minted(mint(client, make_token(workflow_ref=exact, job_workflow_ref=exact)))


# -- environments (item 5) -------------------------------------------------------


@pytest.mark.parametrize(
    ("publisher_environment", "token_environment"),
    [("PyPI", "pypi"), ("pypi", "PYPI"), ("pypi", "pypi"), (None, "anything"), (None, REMOVE)],
    ids=["publisher-mixed-case", "claim-upper-case", "same", "publisher-any", "publisher-any-none"],
)
def test_environment_accepted(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    publisher_environment: str | None,
    token_environment: Any,
) -> None:
    publisher = github_publisher(oidc_issuer.url, environment=publisher_environment)
    client = make_app([publisher]).test_client()
    assert_minted(mint(client, make_token(environment=token_environment)))


@pytest.mark.parametrize(
    "token_environment",
    [REMOVE, "", "staging", "pypi-staging", "pyp"],
    ids=["missing", "empty", "other", "longer", "prefix"],
)
def test_publisher_environment_requires_the_claim(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis, token_environment: Any
) -> None:
    description = assert_failure(
        mint(client, make_token(environment=token_environment)), 422, "invalid-publisher"
    )
    assert "environment" in description
    assert replay_keys(store) == []


@pytest.mark.parametrize(
    ("token_environment", "projects"),
    [
        ("pypi", ["project-a"]),
        ("PyPI", ["project-a"]),
        ("staging", ["project-b"]),
        (REMOVE, ["project-b"]),
    ],
    ids=[
        "environment-pypi",
        "environment-pypi-other-case",
        "environment-staging",
        "no-environment",
    ],
)
def test_most_specific_publisher_wins(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    token_environment: Any,
    projects: list[str],
) -> None:
    client = make_app(
        [
            github_publisher(oidc_issuer.url, environment="pypi", projects=["project-a"]),
            github_publisher(oidc_issuer.url, environment=None, projects=["project-b"]),
        ]
    ).test_client()
    minted = assert_minted(mint(client, make_token(environment=token_environment)))
    assert upload_token_projects(minted) == projects
