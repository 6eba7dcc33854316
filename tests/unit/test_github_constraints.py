"""GitHub policy constraints: refs, protection, events, runners and reusable workflows."""

from __future__ import annotations

from typing import Any

import pytest
from support.claims import GITHUB_SHA, REMOVE, github_claims

from app.errors import ClaimMismatch, InvalidPublisher
from app.publishers.constraints import Glob, IsTrue, MatchesAny, OneOf
from app.publishers.github import (
    CONSTRAINTS,
    GitHubClaims,
    GitHubProvider,
    GitHubPublisher,
    ReusableWorkflowRule,
    split_workflow_ref,
)
from app.publishers.model import failed
from app.publishers.registry import PublisherRegistry
from app.settings import PUBLIC_GITHUB_ISSUER

ISSUER = PUBLIC_GITHUB_ISSUER
AUDIENCE = "pypi.example.com"
NOW = 1_700_000_000
CALLER = "octo-org/demo/.github/workflows/release.yml"
SHARED = "octo-org/shared/.github/workflows/publish.yml"
OTHER_SHA = "0123456789abcdef0123456789abcdef01234567"

PROVIDER = GitHubProvider()


def parse(ref: str = "refs/tags/v1.0.0", **overrides: Any) -> GitHubClaims:
    overrides.setdefault("workflow_ref", f"{CALLER}@{ref}")
    return PROVIDER.parse_claims(
        ISSUER, github_claims(ISSUER, AUDIENCE, now=NOW, ref=ref, **overrides)
    )


def constrained(**policy: Any) -> GitHubPublisher:
    entry = {
        "provider": "github",
        "repository": "octo-org/demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": ["demo-pkg"],
        **policy,
    }
    return PROVIDER.parse_publisher(entry, "policies/demo.toml: publisher[0]")


@pytest.mark.parametrize(
    ("policy", "ref", "claims", "failing"),
    [
        # Tag-only publishing.
        ({"refs": ["refs/tags/v*"]}, "refs/tags/v1.2.0", {}, []),
        ({"refs": ["refs/tags/v*"]}, "refs/tags/v1.2.0-rc.1", {}, []),
        ({"refs": ["refs/tags/v*"]}, "refs/heads/main", {}, ["ref"]),
        ({"refs": ["refs/tags/v*"]}, "refs/pull/1/merge", {}, ["ref"]),
        ({"refs": ["refs/tags/v1.2.0"]}, "refs/tags/v1.2.0-rc.1", {}, ["ref"]),
        ({"refs": ["refs/tags/v?.?.?"]}, "refs/tags/v1.2.0", {}, []),
        ({"refs": ["refs/tags/v?.?.?"]}, "refs/tags/v1.2.0-rc.1", {}, ["ref"]),
        ({"refs": ["refs/heads/main"]}, "refs/heads/main", {}, []),
        ({"refs": ["refs/heads/main"]}, "refs/heads/Main", {}, ["ref"]),
        # A deployment run has an empty ref: it cannot satisfy a ref constraint.
        ({"refs": ["refs/tags/v*"]}, "", {"workflow_ref": f"{CALLER}@{GITHUB_SHA}"}, ["ref"]),
        # Protected refs.
        ({"ref_protected": True}, "refs/tags/v1", {"ref_protected": "true"}, []),
        ({"ref_protected": True}, "refs/tags/v1", {"ref_protected": "false"}, ["ref_protected"]),
        ({"ref_protected": True}, "refs/tags/v1", {"ref_protected": REMOVE}, ["ref_protected"]),
        # Events.
        ({"event_names": ["push", "release"]}, "refs/tags/v1", {"event_name": "release"}, []),
        (
            {"event_names": ["release"]},
            "refs/tags/v1",
            {"event_name": "workflow_dispatch"},
            ["event_name"],
        ),
        # Hosted runners only.
        ({"runner_environment": "github-hosted"}, "refs/tags/v1", {}, []),
        (
            {"runner_environment": "github-hosted"},
            "refs/tags/v1",
            {"runner_environment": "self-hosted"},
            ["runner_environment"],
        ),
        (
            {"runner_environment": "github-hosted"},
            "refs/tags/v1",
            {"runner_environment": REMOVE},
            ["runner_environment"],
        ),
    ],
    ids=[
        "tag-pattern",
        "tag-pattern-takes-rc",
        "tag-pattern-refuses-branch",
        "tag-pattern-refuses-pull-request",
        "exact-tag-refuses-rc",
        "one-digit-parts",
        "one-digit-parts-refuse-rc",
        "branch",
        "branch-case",
        "deployment-without-ref",
        "protected",
        "unprotected",
        "protection-unknown",
        "event-allowed",
        "event-refused",
        "hosted",
        "self-hosted-refused",
        "runner-unknown",
    ],
)
def test_constraints(
    policy: dict[str, Any], ref: str, claims: dict[str, Any], failing: list[str]
) -> None:
    assert [m.claim for m in constrained(**policy).mismatches(parse(ref, **claims))] == failing


# -- reusable workflows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pinned", "job_workflow_ref", "matches"),
    [
        # The calling workflow's own file (no reusable workflow at all).
        (f"{CALLER}@refs/tags/v1.0.0", f"{CALLER}@refs/tags/v1.0.0", True),
        # A reusable workflow of another repository, at a branch, a tag pattern, a SHA.
        (f"{SHARED}@refs/heads/main", f"{SHARED}@refs/heads/main", True),
        (f"{SHARED}@refs/tags/v*", f"{SHARED}@refs/tags/v2.1.0", True),
        (f"{SHARED}@{GITHUB_SHA}", f"{SHARED}@{GITHUB_SHA}", True),
        # Owner and repository are GitHub names: any case.
        (
            "Octo-Org/Shared/.github/workflows/publish.yml@refs/heads/main",
            f"{SHARED}@refs/heads/main",
            True,
        ),
        # Everything else must be equal or match.
        (f"{SHARED}@refs/heads/main", f"{SHARED}@refs/heads/dev", False),
        (f"{SHARED}@refs/tags/v*", f"{SHARED}@refs/heads/v1", False),
        (
            f"{SHARED}@refs/heads/main",
            "octo-org/shared/.github/workflows/Publish.yml@refs/heads/main",
            False,
        ),
        (
            f"{SHARED}@refs/heads/main",
            "evil-org/shared/.github/workflows/publish.yml@refs/heads/main",
            False,
        ),
        (
            f"{SHARED}@refs/heads/main",
            "octo-org/shared-fork/.github/workflows/publish.yml@refs/heads/main",
            False,
        ),
        (f"{SHARED}@refs/heads/main", f"{CALLER}@refs/tags/v1.0.0", False),
        (f"{SHARED}@refs/heads/main", f"{SHARED}@refs/heads/main@refs/heads/x", False),
        (f"{SHARED}@refs/heads/main", "", False),
    ],
    ids=[
        "same-repository-caller",
        "other-repository-branch",
        "other-repository-tag-pattern",
        "other-repository-sha",
        "repository-case",
        "other-branch",
        "branch-not-tag",
        "file-case",
        "other-owner",
        "other-repository",
        "not-reusable",
        "second-at",
        "empty",
    ],
)
def test_job_workflow_ref(pinned: str, job_workflow_ref: str, matches: bool) -> None:
    publisher = constrained(job_workflow_ref=pinned)
    claims = parse(job_workflow_ref=job_workflow_ref)

    mismatches = publisher.mismatches(claims)

    if matches:
        assert mismatches == ()
    else:
        (mismatch,) = mismatches
        assert mismatch.claim == "job_workflow_ref"
        assert mismatch.received == job_workflow_ref
        assert repr(pinned) in mismatch.expected


MONOREPO_TAG = "refs/tags/demo-pkg@1.0.0"  # changesets and lerna tag releases so
OWN_WORKFLOWS = "octo-org/demo/.github/workflows"


@pytest.mark.parametrize(
    ("job_workflow_ref", "matches"),
    [
        # A same-repository reusable workflow runs at the run's own ref, "@" and all, as
        # the calling workflow's workflow_ref does.
        (f"{OWN_WORKFLOWS}/publish.yml@{MONOREPO_TAG}", True),
        # Any other ref holding an "@" could move where FILE ends: refused.
        (f"{OWN_WORKFLOWS}/publish.yml@x.yml@{MONOREPO_TAG}", False),
        (f"{OWN_WORKFLOWS}/publish.yml@refs/tags/other@1.0.0", False),
        (f"{OWN_WORKFLOWS}/publish.yml@{MONOREPO_TAG}@{MONOREPO_TAG}", False),
    ],
    ids=["run-at-its-own-tag", "file-moved", "another-tag", "own-tag-twice"],
)
def test_job_workflow_ref_of_a_run_at_a_tag_holding_an_at_sign(
    job_workflow_ref: str, matches: bool
) -> None:
    publisher = constrained(job_workflow_ref=f"{OWN_WORKFLOWS}/publish.yml@refs/tags/*")
    claims = parse(ref=MONOREPO_TAG, job_workflow_ref=job_workflow_ref)

    assert (publisher.mismatches(claims) == ()) is matches


def test_publisher_workflow_is_still_the_calling_workflow() -> None:
    # The caller's release.yml calls the organisation's shared publish workflow: the
    # publisher names release.yml and pins the shared one.
    publisher = constrained(
        job_workflow_ref=f"{SHARED}@refs/heads/main", job_workflow_sha=GITHUB_SHA
    )
    claims = parse(job_workflow_ref=f"{SHARED}@refs/heads/main", job_workflow_sha=GITHUB_SHA)

    assert PublisherRegistry([publisher]).match(claims).projects == {"demo-pkg"}
    assert claims.identity["workflow"] == "release.yml"
    assert claims.identity["job_workflow_ref"] == f"{SHARED}@refs/heads/main"


@pytest.mark.parametrize(
    ("claimed", "failing"),
    [(GITHUB_SHA, []), (OTHER_SHA, ["job_workflow_sha"]), (REMOVE, ["job_workflow_sha"])],
    ids=["pinned-commit", "other-commit", "missing"],
)
def test_job_workflow_sha(claimed: Any, failing: list[str]) -> None:
    publisher = constrained(
        job_workflow_ref=f"{SHARED}@refs/heads/main", job_workflow_sha=GITHUB_SHA
    )
    claims = parse(job_workflow_ref=f"{SHARED}@refs/heads/main", job_workflow_sha=claimed)

    assert [m.claim for m in publisher.mismatches(claims)] == failing


@pytest.mark.parametrize(
    ("value", "split"),
    [
        (f"{SHARED}@refs/heads/main", ("octo-org/shared", "publish.yml", "refs/heads/main")),
        (f"{SHARED}@{GITHUB_SHA}", ("octo-org/shared", "publish.yml", GITHUB_SHA)),
        (f"{SHARED}@refs/heads/main@x", None),
        (f"{SHARED}@", None),
        (SHARED, None),
        ("octo-org/shared/.github/workflows/sub/publish.yml@refs/heads/main", None),
        ("octo-org/.github/workflows/publish.yml@refs/heads/main", None),
        ("a/b/c/.github/workflows/publish.yml@refs/heads/main", None),
        ("octo-org/shared/.github/workflows/publish.txt@refs/heads/main", None),
    ],
    ids=[
        "branch",
        "sha",
        "second-at",
        "empty-ref",
        "no-ref",
        "subdirectory",
        "no-repository-name",
        "three-part-repository",
        "not-yaml",
    ],
)
def test_split_workflow_ref(value: str, split: tuple[str, str, str] | None) -> None:
    assert split_workflow_ref(value) == split


def test_constraints_table_and_rule_order() -> None:
    publisher = constrained(
        refs=["refs/tags/v*"],
        ref_protected=True,
        event_names=["push"],
        runner_environment="github-hosted",
        job_workflow_ref=f"{SHARED}@refs/tags/v*",
        job_workflow_sha=GITHUB_SHA,
    )

    assert list(CONSTRAINTS) == [
        "refs",
        "ref_protected",
        "event_names",
        "runner_environment",
        "job_workflow_ref",
        "job_workflow_sha",
    ]
    assert publisher.rules == (
        MatchesAny("ref", (Glob("refs/tags/v*"),)),
        IsTrue("ref_protected"),
        OneOf("event_name", ("push",)),
        OneOf("runner_environment", ("github-hosted",)),
        ReusableWorkflowRule("octo-org/shared", "publish.yml", Glob("refs/tags/v*")),
        OneOf("job_workflow_sha", (GITHUB_SHA,)),
    )
    assert publisher.specificity == 6


def test_checks_report_passes_too_and_mismatches_derive_from_them() -> None:
    publisher = constrained(environment="pypi", refs=["refs/tags/v*"], event_names=["release"])
    claims = parse("refs/tags/v1.0.0", event_name="push")

    checks = publisher.checks(claims)

    assert [(c.claim, c.ok) for c in checks] == [
        ("repository", True),
        ("repository_owner_id", True),
        ("workflow_ref", True),
        ("environment", True),
        ("ref", True),
        ("event_name", False),
    ]
    assert publisher.mismatches(claims) == failed(checks)
    assert publisher.mismatches(claims) == (ClaimMismatch("event_name", "'release'", "push"),)


def test_more_constrained_publisher_wins_and_the_other_serves_the_rest() -> None:
    tags = constrained(refs=["refs/tags/v*"], projects=["release-pkg"])
    anything = constrained(projects=["nightly-pkg"])
    registry = PublisherRegistry([anything, tags])

    assert registry.match(parse("refs/tags/v1.0.0")).projects == {"release-pkg"}
    assert registry.match(parse("refs/heads/main")).projects == {"nightly-pkg"}


def test_error_of_a_constrained_publisher_names_claim_expected_received() -> None:
    with pytest.raises(InvalidPublisher) as excinfo:
        PublisherRegistry([constrained(refs=["refs/tags/v*"])]).match(parse("refs/heads/main"))

    assert (
        "claim 'ref': expected matching 'refs/tags/v*', received 'refs/heads/main'"
        in excinfo.value.description
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"refs": ["refs/tags/v*"]}, {"refs": ["refs/tags/v*"]}, True),
        ({"event_names": ["push", "release"]}, {"event_names": ["release", "push"]}, True),
        (
            {"job_workflow_ref": f"{SHARED}@refs/heads/main"},
            {"job_workflow_ref": "Octo-Org/Shared/.github/workflows/publish.yml@refs/heads/main"},
            True,
        ),
        ({}, {"refs": ["refs/tags/v*"]}, False),
        ({"refs": ["refs/tags/v*"]}, {"refs": ["refs/tags/*"]}, False),
        ({"ref_protected": True}, {}, False),
    ],
    ids=[
        "same-refs",
        "event-order",
        "reusable-repository-case",
        "with-and-without-refs",
        "other-refs",
        "with-and-without-protection",
    ],
)
def test_identity_key_includes_constraints(
    a: dict[str, Any], b: dict[str, Any], same: bool
) -> None:
    assert (constrained(**a).identity_key == constrained(**b).identity_key) is same


def test_unconstrained_publisher_is_unchanged() -> None:
    plain = constrained()
    assert plain == GitHubPublisher(
        issuer=ISSUER,
        repository="octo-org/demo",
        repository_owner_id="65",
        workflow="release.yml",
        projects=frozenset({"demo-pkg"}),
        source="policies/demo.toml: publisher[0]",
    )
