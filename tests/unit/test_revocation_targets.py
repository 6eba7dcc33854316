"""A publisher revocation names what tokens of its issuer carry, or it is refused.

An acknowledged revocation that covers no token is worse than an error: the operator
believes the compromised publisher's tokens are dead. Each accepted target here is shown
to revoke a token minted for it; each refused one is one no token of its provider carries.
"""

from __future__ import annotations

import pytest

from app.audit import AuditTrail
from app.errors import InvalidRequest
from app.private_files import write_private_file
from app.stores.memory import MemoryStore
from app.tokens.keys import KeyRing, generate_signing_key_pem, load_key_ring
from app.tokens.mint import UploadTokenMinter
from app.tokens.revocation import TokenIntrospector, TokenRevoker
from app.tokens.verify import UploadTokenVerifier

ISSUER, AUDIENCE, NOW = "urn:trustpub:t", "urn:trustpub:upload:t", 1_800_000_000
GITHUB, GITLAB, GOOGLE = (
    "https://token.actions.githubusercontent.com",
    "https://gitlab.com",
    "https://accounts.google.com",
)
# What each provider's tokens carry (app.publishers.*.parse_claims): Google names no workflow.
PUBLISHERS = {
    GITHUB: {"repository": "octo-org/demo", "workflow": "release.yml"},
    GITLAB: {"repository": "group/sub/project", "workflow": "ci/release.yml"},
    GOOGLE: {"repository": "publisher@demo.iam.gserviceaccount.com"},
}
PROVIDERS = {GITHUB: "github", GITLAB: "gitlab", GOOGLE: "google"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    directory = tmp_path_factory.mktemp("keys")
    write_private_file(directory / "key.pem", generate_signing_key_pem())
    return load_key_ring(directory)


def services(
    keys: KeyRing,
) -> tuple[MemoryStore, UploadTokenMinter, TokenRevoker, TokenIntrospector]:
    store = MemoryStore(clock=lambda: NOW)
    verifier = UploadTokenVerifier(keys, ISSUER, AUDIENCE, "pypi-")
    return (
        store,
        UploadTokenMinter(keys, ISSUER, AUDIENCE, 900, "pypi-"),
        TokenRevoker(verifier, store, lambda: NOW, 3600, AuditTrail(store, lambda: NOW), PROVIDERS),
        TokenIntrospector(verifier, store, lambda: NOW),
    )


@pytest.mark.parametrize(
    ("issuer", "workflow"),
    [
        (GITHUB, None),
        (GITHUB, "release.yml"),
        (GITLAB, None),
        (GITLAB, "ci/release.yml"),
        (GOOGLE, None),
    ],
    ids=["github-repository", "github-workflow", "gitlab-project", "gitlab-ci-file", "google"],
)
def test_an_accepted_target_revokes_the_token_minted_for_it(
    keys: KeyRing, issuer: str, workflow: str | None
) -> None:
    store, minter, revoker, introspector = services(keys)
    publisher = {"provider": PROVIDERS[issuer], "issuer": issuer, **PUBLISHERS[issuer]}
    token = minter.mint(frozenset({"demo-pkg"}), publisher, store.current_epoch().id, NOW).token
    assert introspector.introspect(token) is not None

    revoker.revoke_publisher(issuer, PUBLISHERS[issuer]["repository"], workflow, actor="t")

    assert introspector.introspect(token) is None


@pytest.mark.parametrize(
    ("issuer", "repository", "workflow"),
    [
        (GITHUB, "octo-org/demo", "release"),  # not a YAML file: no workflow is named so
        (GITHUB, "octo-org/demo", "release.yml@refs/tags/v1"),  # a ref, as in workflow_ref
        (GITHUB, "octo-org/demo", "release.yml@v1"),
        (GITHUB, "octo-org/demo", " release.yml"),
        (GITHUB, "octo-org/demo", "*"),  # the whole repository's scope, by another name
        (GITLAB, "group/sub/project", "ci/"),
        (GITLAB, "group/sub/project", "/ci/release.yml"),
        (GITLAB, "group/sub/project", "ci/release.yml@main"),
        (GOOGLE, "publisher@demo.iam.gserviceaccount.com", "release.yml"),  # Google names none
        (GOOGLE, "octo-org/demo", None),  # not a service account
    ],
    ids=[
        "github-workflow-without-extension",
        "github-workflow-with-ref-path",
        "github-workflow-with-ref",
        "github-workflow-with-space",
        "github-workflow-wildcard",
        "gitlab-ci-directory",
        "gitlab-ci-absolute-path",
        "gitlab-ci-with-ref",
        "google-workflow",
        "google-repository",
    ],
)
def test_a_target_no_token_carries_is_refused_not_acknowledged(
    keys: KeyRing, issuer: str, repository: str, workflow: str | None
) -> None:
    store, _, revoker, _ = services(keys)

    with pytest.raises(InvalidRequest):
        revoker.revoke_publisher(issuer, repository, workflow, actor="t")

    assert len(store) == 0  # nothing stored


def test_a_jti_is_revoked_by_itself(keys: KeyRing) -> None:
    store, minter, revoker, introspector = services(keys)
    publisher = {"provider": "github", "issuer": GITHUB, **PUBLISHERS[GITHUB]}
    minted = minter.mint(frozenset({"demo-pkg"}), publisher, store.current_epoch().id, NOW)

    revoker.revoke_jti(minted.jti, actor="t")

    assert introspector.introspect(minted.token) is None


@pytest.mark.parametrize(
    "jti",
    [
        "pypi-eyJhbGciOiJFZERTQSIsImtpZCI6ImlqNFNu.eyJpc3MiOiJ1cm4.N_uBw",
        "Zs-mNEJJJvyVGBLA8rbFi3Q",
        "Zs-mNEJJJvyVGBLA8rbFi3QWx",
        " Zs-mNEJJJvyVGBLA8rbFi3QW",
        "Zs+mNEJJJvyVGBLA8rbFi3QW",
    ],
    ids=["the-whole-token", "too-short", "too-long", "leading-space", "not-base64url"],
)
def test_a_jti_no_token_carries_is_refused_not_acknowledged(keys: KeyRing, jti: str) -> None:
    store, _, revoker, _ = services(keys)

    with pytest.raises(InvalidRequest):
        revoker.revoke_jti(jti, actor="t")

    assert len(store) == 0  # nothing stored


def test_an_issuer_this_service_does_not_trust_is_refused_without_being_quoted(
    keys: KeyRing,
) -> None:
    store, minter, revoker, _ = services(keys)
    publisher = {"provider": "github", "issuer": GITHUB, **PUBLISHERS[GITHUB]}
    pasted = minter.mint(frozenset({"demo-pkg"}), publisher, store.current_epoch().id, NOW).token

    with pytest.raises(InvalidRequest) as refused:
        revoker.revoke_publisher(pasted, "octo-org/demo", None, actor="t")

    assert pasted not in refused.value.description
    assert pasted.split(".")[-1] not in refused.value.description  # nor its signature
    assert refused.value.description == (
        f"'issuer' is not a CI issuer this service trusts: {GOOGLE}, {GITLAB}, {GITHUB}"
    )
    assert len(store) == 0
