"""GitHub Actions: claim parsing (types, shapes, refused contexts) and publisher matching."""

from __future__ import annotations

from typing import Any

import pytest
from support.claims import GITHUB_SHA, REMOVE, github_claims

from app.errors import ClaimMismatch, InvalidPublisher
from app.publishers.github import (
    OPTIONAL_CLAIMS,
    REQUIRED_CLAIMS,
    GitHubClaims,
    GitHubProvider,
    GitHubPublisher,
)
from app.publishers.model import ProviderClaims, normalize_project_name
from app.publishers.registry import PublisherRegistry
from app.settings import PUBLIC_GITHUB_ISSUER

ISSUER = PUBLIC_GITHUB_ISSUER
AUDIENCE = "pypi.example.com"
NOW = 1_700_000_000
WORKFLOWS = "octo-org/demo/.github/workflows"

PROVIDER = GitHubProvider()


def parse(**overrides: Any) -> GitHubClaims:
    return PROVIDER.parse_claims(ISSUER, github_claims(ISSUER, AUDIENCE, now=NOW, **overrides))


def publisher(**changes: Any) -> GitHubPublisher:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "repository": "octo-org/demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": frozenset({"demo-pkg"}),
        "source": "policies/demo.toml: publisher[0]",
    }
    fields.update(changes)
    return GitHubPublisher(**fields)


def test_parse_claims_of_a_real_token() -> None:
    claims = parse()

    assert claims.issuer == ISSUER
    assert claims.lookup_key == "octo-org/demo"
    assert claims.repository == "octo-org/demo"
    assert claims.repository_id == "74"
    assert claims.repository_owner_id == "65"
    assert claims.workflow == "release.yml"
    assert claims.environment == "pypi"
    assert claims.identity == {
        "provider": "github",
        "issuer": ISSUER,
        "repository": "octo-org/demo",
        "repository_id": "74",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "job_workflow_ref": f"{WORKFLOWS}/release.yml@refs/tags/v1.0.0",
        "environment": "pypi",
        "ref": "refs/tags/v1.0.0",
        "sha": GITHUB_SHA,
        "event_name": "push",
        "run_id": "8105469023",
        "run_attempt": "1",
    }


@pytest.mark.parametrize(
    ("workflow_ref", "expected"),
    [
        (f"{WORKFLOWS}/release.yml@refs/tags/v1.0.0", "release.yml"),
        (f"{WORKFLOWS}/release.yaml@refs/heads/main", "release.yaml"),
        (f"{WORKFLOWS}/publish_to-pypi.2.yml@refs/heads/main", "publish_to-pypi.2.yml"),
        (f"{WORKFLOWS}/Release.YML.yml@refs/pull/1/merge", "Release.YML.yml"),
        (f"{WORKFLOWS}/release.yml@{GITHUB_SHA}", "release.yml"),
        (f"{WORKFLOWS}/release.yml@fake.yml@refs/heads/main", None),
        (f"{WORKFLOWS}/release.yml@", None),
        (f"{WORKFLOWS}/release.yml@@refs/heads/main", None),
        (f"{WORKFLOWS}/release.yml", None),
        (f"{WORKFLOWS}/sub/release.yml@refs/heads/main", None),
        (f"{WORKFLOWS}/../release.yml@refs/heads/main", None),
        ("octo-org/other/.github/workflows/release.yml@refs/heads/main", None),
        ("octo-org/demo-fork/.github/workflows/release.yml@refs/heads/main", None),
        ("evil/octo-org/demo/.github/workflows/release.yml@refs/heads/main", None),
        (f"{WORKFLOWS}/release.txt@refs/heads/main", None),
        (f"{WORKFLOWS}/release.yml.txt@refs/heads/main", None),
        (f"{WORKFLOWS}/release.YML@refs/heads/main", None),
        (f"{WORKFLOWS}/.yml@refs/heads/main", None),
        (f"{WORKFLOWS}/rel ease.yml@refs/heads/main", None),
        (f"{WORKFLOWS}/@refs/heads/main", None),
        ("octo-org/demo/release.yml@refs/heads/main", None),
        ("octo-org/demo/.github/release.yml@refs/heads/main", None),
        ("octo-org/demo/.github/workflow/release.yml@refs/heads/main", None),
        ("", None),
    ],
    ids=[
        "yml",
        "yaml",
        "dots-dashes-underscores",
        "mixed-case-yml",
        "at-sha",
        "second-at-fake-yml",
        "empty-ref",
        "double-at",
        "no-ref",
        "subdirectory",
        "parent-directory",
        "other-repository",
        "repository-name-prefix",
        "repository-as-suffix",
        "not-yaml",
        "yml-then-txt",
        "upper-case-extension",
        "extension-only",
        "space-in-name",
        "empty-file-name",
        "missing-github-workflows",
        "missing-workflows",
        "workflow-singular",
        "empty",
    ],
)
def test_workflow_ref_shapes(workflow_ref: str, expected: str | None) -> None:
    if expected is not None:
        assert parse(workflow_ref=workflow_ref).workflow == expected
        return
    with pytest.raises(InvalidPublisher) as excinfo:
        parse(workflow_ref=workflow_ref)

    error = excinfo.value
    assert error.code == "invalid-publisher"
    assert [m.claim for m in error.mismatches] == ["workflow_ref"]
    assert error.mismatches[0].received == workflow_ref
    assert "octo-org/demo/.github/workflows/<file>.yml@<ref>" in error.description


@pytest.mark.parametrize(
    ("event_name", "allowed"),
    [
        ("push", True),
        ("release", True),
        ("workflow_dispatch", True),
        ("schedule", True),
        ("pull_request_target", False),
    ],
    ids=["push", "release", "workflow_dispatch", "schedule", "pull_request_target"],
)
def test_event_name(event_name: str, allowed: bool) -> None:
    if allowed:
        assert parse(event_name=event_name).identity["event_name"] == event_name
        return
    with pytest.raises(InvalidPublisher, match="pull_request_target cannot publish") as excinfo:
        parse(event_name=event_name)

    assert excinfo.value.mismatches[0].claim == "event_name"


@pytest.mark.parametrize(
    ("ref", "sha", "allowed"),
    [
        ("refs/tags/v1.0.0", GITHUB_SHA, True),
        ("", GITHUB_SHA, True),
        ("refs/heads/main", "", True),
        ("", "", False),
    ],
    ids=["both", "deployment-without-ref", "ref-without-sha", "neither"],
)
def test_ref_and_sha(ref: str, sha: str, allowed: bool) -> None:
    if allowed:
        claims = parse(ref=ref, sha=sha)
        assert (claims.identity["ref"], claims.identity["sha"]) == (ref, sha)
        return
    with pytest.raises(InvalidPublisher, match="neither a ref nor a sha") as excinfo:
        parse(ref=ref, sha=sha)

    assert excinfo.value.mismatches[0].claim == "ref"


WRONG_TYPES = [
    (65, "int"),
    (["octo"], "list"),
    (True, "bool"),
    ({"a": "b"}, "dict"),
    (1.5, "float"),
]


@pytest.mark.parametrize(
    "claim", REQUIRED_CLAIMS + OPTIONAL_CLAIMS, ids=list(REQUIRED_CLAIMS + OPTIONAL_CLAIMS)
)
@pytest.mark.parametrize(("value", "type_name"), WRONG_TYPES, ids=[name for _, name in WRONG_TYPES])
def test_every_claim_of_the_wrong_type_is_rejected(claim: str, value: Any, type_name: str) -> None:
    with pytest.raises(InvalidPublisher, match="wrong type") as excinfo:
        parse(**{claim: value})

    assert excinfo.value.mismatches == (ClaimMismatch(claim, "a string", f"<{type_name}>"),)
    assert repr(claim) in excinfo.value.description


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS, ids=list(REQUIRED_CLAIMS))
def test_every_required_claim_is_required(claim: str) -> None:
    with pytest.raises(InvalidPublisher, match="missing a required claim") as excinfo:
        parse(**{claim: REMOVE})

    assert excinfo.value.mismatches == (ClaimMismatch(claim, "a string", None),)
    assert f"claim {claim!r}: expected a string, received missing" in excinfo.value.description


@pytest.mark.parametrize("claim", OPTIONAL_CLAIMS, ids=list(OPTIONAL_CLAIMS))
def test_optional_claims_may_be_missing(claim: str) -> None:
    assert parse(**{claim: REMOVE}).repository == "octo-org/demo"


UNCHECKED_CLAIMS = ["sub", "repository_visibility", "enterprise", "repo_property_team", "new"]


@pytest.mark.parametrize("claim", UNCHECKED_CLAIMS, ids=UNCHECKED_CLAIMS)
def test_ignored_and_unknown_claims_are_not_type_checked(claim: str) -> None:
    assert parse(**{claim: ["anything", 1]}).workflow == "release.yml"


@pytest.mark.parametrize(
    "repository",
    ["octo-org", "octo org/demo", "octo-org/demo/extra", "/demo", "octo-org/", "a" * 40 + "/demo"],
    ids=["no-slash", "space", "three-parts", "no-owner", "no-name", "owner-too-long"],
)
def test_malformed_repository_is_rejected(repository: str) -> None:
    with pytest.raises(InvalidPublisher) as excinfo:
        parse(repository=repository)

    assert excinfo.value.mismatches[0].claim == "repository"


# -- publisher matching ------------------------------------------------------------


@pytest.mark.parametrize(
    ("publisher_repository", "claim_repository"),
    [
        ("octo-org/demo", "octo-org/demo"),
        ("Octo-Org/Demo", "octo-org/demo"),
        ("octo-org/demo", "OCTO-ORG/DEMO"),
    ],
    ids=["same", "publisher-mixed-case", "claim-upper-case"],
)
def test_repository_lookup_is_case_insensitive(
    publisher_repository: str, claim_repository: str
) -> None:
    claims = parse(
        repository=claim_repository,
        workflow_ref=f"{claim_repository}/.github/workflows/release.yml@refs/heads/main",
    )
    registered = publisher(repository=publisher_repository)

    assert registered.lookup_key == claims.lookup_key
    assert registered.mismatches(claims) == ()
    assert PublisherRegistry([registered]).match(claims).projects == {"demo-pkg"}


@pytest.mark.parametrize(
    ("claimed", "matches"),
    [
        ("octo-org/demo", True),
        ("OCTO-ORG/Demo", True),
        ("octo-org/demo2", False),
        ("evil-org/demo", False),
    ],
    ids=["same", "other-case", "other-name", "other-owner-name"],
)
def test_a_publisher_checks_the_repository_itself(claimed: str, matches: bool) -> None:
    # The registry's lookup is not the only guard: a publisher asked about another
    # repository's token (by explain, or a registry keyed otherwise) refuses it too.
    claims = parse(
        repository=claimed,
        workflow_ref=f"{claimed}/.github/workflows/release.yml@refs/heads/main",
    )

    mismatches = publisher().mismatches(claims)

    refused = (ClaimMismatch("repository", "'octo-org/demo' (any case)", claimed),)
    assert mismatches == (() if matches else refused)


@pytest.mark.parametrize(
    ("required", "claimed", "matches"),
    [
        (None, "pypi", True),
        (None, REMOVE, True),
        ("pypi", "pypi", True),
        ("PyPI", "pypi", True),
        ("pypi", "PYPI", True),
        ("pypi", "testpypi", False),
        ("pypi", "pypi ", False),
        ("pypi", REMOVE, False),
        ("pypi", "", False),
    ],
    ids=[
        "any-environment",
        "any-environment-none-sent",
        "equal",
        "publisher-mixed-case",
        "claim-upper-case",
        "other-environment",
        "trailing-space",
        "environment-missing",
        "environment-empty",
    ],
)
def test_environment(required: str | None, claimed: Any, matches: bool) -> None:
    mismatches = publisher(environment=required).mismatches(parse(environment=claimed))

    if matches:
        assert mismatches == ()
    else:
        assert [m.claim for m in mismatches] == ["environment"]
        assert mismatches[0].expected == f"{required!r} (any case)"


@pytest.mark.parametrize(
    ("claimed", "environment"),
    [("pypi", "pypi"), ("PyPI", "PyPI"), ("", None), (REMOVE, None), (None, None)],
    ids=["set", "case-kept", "empty-is-none", "missing", "null"],
)
def test_environment_claim(claimed: Any, environment: str | None) -> None:
    claims = parse(environment=claimed)

    assert claims.environment == environment
    assert claims.identity["environment"] == (environment or "")


@pytest.mark.parametrize(
    ("pinned", "claimed", "matches"),
    [(None, "74", True), (None, "999", True), ("74", "74", True), ("74", "75", False)],
    ids=["unpinned", "unpinned-any-id", "pinned-equal", "pinned-other-id"],
)
def test_repository_id_pin(pinned: str | None, claimed: str, matches: bool) -> None:
    mismatches = publisher(repository_id=pinned).mismatches(parse(repository_id=claimed))

    expected = () if matches else (ClaimMismatch("repository_id", "'74'", claimed),)
    assert mismatches == expected


@pytest.mark.parametrize(
    ("claims", "claim", "expected", "received"),
    [
        ({"repository_owner_id": "66"}, "repository_owner_id", "'65'", "66"),
        ({"repository_owner_id": ""}, "repository_owner_id", "'65'", ""),
        (
            {"workflow_ref": f"{WORKFLOWS}/Release.yml@refs/heads/main"},
            "workflow_ref",
            "workflow file 'release.yml'",
            "Release.yml",
        ),
        (
            {"workflow_ref": f"{WORKFLOWS}/release.yaml@refs/heads/main"},
            "workflow_ref",
            "workflow file 'release.yml'",
            "release.yaml",
        ),
    ],
    ids=["owner-id-resurrected", "owner-id-empty", "workflow-other-case", "workflow-yaml"],
)
def test_mismatch_is_reported_with_claim_expected_received(
    claims: dict[str, Any], claim: str, expected: str, received: str
) -> None:
    with pytest.raises(InvalidPublisher) as excinfo:
        PublisherRegistry([publisher()]).match(parse(**claims))

    error = excinfo.value
    assert error.code == "invalid-publisher"
    assert error.mismatches == (ClaimMismatch(claim, expected, received),)
    for fragment in (repr(claim), expected, repr(received)):
        assert fragment in error.description


def test_every_failing_check_is_reported() -> None:
    claims = parse(
        repository_owner_id="66",
        repository_id="75",
        environment="staging",
        workflow_ref=f"{WORKFLOWS}/ci.yml@refs/heads/main",
    )

    mismatches = publisher(repository_id="74", environment="pypi").mismatches(claims)

    assert {m.claim for m in mismatches} == {
        "repository_owner_id",
        "workflow_ref",
        "repository_id",
        "environment",
    }


def test_a_publisher_judges_each_token_on_its_own_claims() -> None:
    # What a check expects is written once per publisher; what it received and whether
    # it passed must come from each token, in any order of passing and failing tokens.
    pinned = publisher(repository_id="74", environment="pypi")
    tokens = [
        ({}, ()),
        (
            {"environment": "staging"},
            (ClaimMismatch("environment", "'pypi' (any case)", "staging"),),
        ),
        ({}, ()),
        ({"repository_id": "75"}, (ClaimMismatch("repository_id", "'74'", "75"),)),
        ({"environment": "PyPI"}, ()),
    ]

    for overrides, mismatches in tokens:
        assert pinned.mismatches(parse(**overrides)) == mismatches
    assert publisher(environment="prod").mismatches(parse(environment="prod")) == ()


def test_claims_of_another_provider_never_match() -> None:
    foreign = ProviderClaims(issuer="https://gitlab.com", lookup_key="octo-org/demo", identity={})

    assert publisher().mismatches(foreign) == (
        ClaimMismatch("iss", "a GitHub Actions token", "https://gitlab.com"),
    )


@pytest.mark.parametrize(
    ("changes", "specificity"),
    [
        ({}, 0),
        ({"environment": "pypi"}, 1),
        ({"repository_id": "74"}, 1),
        ({"environment": "pypi", "repository_id": "74"}, 2),
    ],
    ids=["none", "environment", "repository-id", "both"],
)
def test_specificity(changes: dict[str, Any], specificity: int) -> None:
    assert publisher(**changes).specificity == specificity


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Demo_Pkg.x", "demo-pkg-x"),
        ("demo-pkg", "demo-pkg"),
        ("DEMO", "demo"),
        ("demo__pkg", "demo-pkg"),
        ("a._-b", "a-b"),
        ("demo.pkg", "demo-pkg"),
    ],
    ids=["mixed", "already-normal", "upper", "double-underscore", "run-of-separators", "dot"],
)
def test_project_name_normalisation(name: str, normalized: str) -> None:
    assert normalize_project_name(name) == normalized
    entry = {
        "provider": "github",
        "repository": "octo-org/demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": [name],
    }
    assert PROVIDER.parse_publisher(entry, "test").projects == {normalized}


def test_parse_publisher_defaults_and_fields() -> None:
    entry = {
        "provider": "github",
        "repository": "Octo-Org/Demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": ["Demo_Pkg", "demo-pkg", "other"],
    }

    parsed = PROVIDER.parse_publisher(entry, "policies/demo.toml: publisher[0]")

    assert parsed.issuer == PUBLIC_GITHUB_ISSUER
    assert parsed.provider == "github"
    assert parsed.environment is None
    assert parsed.repository_id is None
    assert parsed.projects == {"demo-pkg", "other"}
    assert parsed.source == "policies/demo.toml: publisher[0]"
    assert parsed.lookup_key == "octo-org/demo"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({}, {"repository": "OCTO-ORG/Demo"}, True),
        ({"environment": "pypi"}, {"environment": "PyPI"}, True),
        # Folded as matching folds it: ASCII only (the KELVIN SIGN is no k).
        ({"environment": "pypi-k8s"}, {"environment": "pypi-\u212a8s"}, False),
        ({}, {"projects": frozenset({"other"})}, True),
        ({}, {"workflow": "Release.yml"}, False),
        ({}, {"environment": "pypi"}, False),
        ({}, {"repository_id": "74"}, False),
        ({}, {"repository_owner_id": "66"}, False),
        ({}, {"issuer": "https://token.actions.githubusercontent.com/acme"}, False),
    ],
    ids=[
        "repository-case",
        "environment-case",
        "environment-unicode-case",
        "projects-do-not-count",
        "workflow-case-counts",
        "environment-counts",
        "repository-id-counts",
        "owner-id-counts",
        "issuer-counts",
    ],
)
def test_identity_key(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert (publisher(**a).identity_key == publisher(**b).identity_key) is same


@pytest.mark.parametrize(
    ("registered", "received", "matches"),
    [
        ("pypi-k8s", "PYPI-K8S", True),
        ("pypi-k8s", "pypi-\u212a8s", False),
        ("déploiement", "déploiement", True),
        ("déploiement", "DÉPLOIEMENT", False),
    ],
    ids=["ascii-any-case", "kelvin-sign-is-not-k", "unicode-exact", "unicode-case-differs"],
)
def test_environment_case_folding_is_ascii_only(
    registered: str, received: str, matches: bool
) -> None:
    from app.publishers.github import _same_environment

    assert _same_environment(received, registered) is matches


@pytest.mark.parametrize(
    ("ref", "workflow_ref", "expected"),
    [
        (
            "refs/tags/demo-pkg@1.0.0",
            f"{WORKFLOWS}/release.yml@refs/tags/demo-pkg@1.0.0",
            "release.yml",
        ),
        ("refs/heads/user@fix", f"{WORKFLOWS}/release.yml@refs/heads/user@fix", "release.yml"),
        # A second "@" is refused unless it is the run's own ref.
        ("refs/tags/v1.0.0", f"{WORKFLOWS}/release.yml@fake.yml@refs/tags/v1.0.0", None),
        ("refs/tags/demo-pkg@1.0.0", f"{WORKFLOWS}/release.yml@refs/tags/other@1.0.0", None),
        ("refs/tags/demo-pkg@1.0.0", f"{WORKFLOWS}/release.yml@@refs/tags/demo-pkg@1.0.0", None),
    ],
    ids=[
        "monorepo-tag",
        "branch-with-at",
        "fake-file",
        "other-ref-with-at",
        "double-at-before-own-ref",
    ],
)
def test_workflow_ref_of_a_ref_holding_an_at_sign(
    ref: str, workflow_ref: str, expected: str | None
) -> None:
    # Git refs may hold "@" (changesets/lerna tag `pkg@1.0.0`); PyPI accepts such runs,
    # since it compares job_workflow_ref with FILE@ref. The file is always the part
    # before the first "@", so accepting the run's own ref cannot change which file it is.
    if expected is not None:
        assert parse(ref=ref, workflow_ref=workflow_ref).workflow == expected
        return
    with pytest.raises(InvalidPublisher) as excinfo:
        parse(ref=ref, workflow_ref=workflow_ref)
    assert [m.claim for m in excinfo.value.mismatches] == ["workflow_ref"]
