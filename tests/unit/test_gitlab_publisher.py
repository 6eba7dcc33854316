"""GitLab CI/CD: claim parsing (types, ci_config_ref_uri, refs) and publisher matching."""

from __future__ import annotations

from typing import Any

import pytest
from support.claims import GITLAB_SHA, REMOVE, github_claims, gitlab_claims

from app.errors import ClaimMismatch, InvalidPublisher
from app.oidc.verify import IssuerConfig
from app.publishers.constraints import Glob, IsTrue, MatchesAny, OneOf
from app.publishers.github import GitHubProvider
from app.publishers.gitlab import (
    CONSTRAINTS,
    IGNORED_CLAIMS,
    MAX_TOKEN_LIFETIME,
    OPTIONAL_CLAIMS,
    REQUIRED_CLAIMS,
    GitLabClaims,
    GitLabProvider,
    GitLabPublisher,
)
from app.publishers.model import failed
from app.publishers.registry import PublisherRegistry
from app.settings import PUBLIC_GITHUB_ISSUER, PUBLIC_GITLAB_ISSUER

ISSUER = PUBLIC_GITLAB_ISSUER
SELF_MANAGED = "https://gitlab.example.com"
AUDIENCE = "pypi.example.com"
NOW = 1_700_000_000
PROJECT = "group/sub/project"
URI = f"gitlab.com/{PROJECT}//.gitlab-ci.yml@refs/heads/main"

PROVIDER = GitLabProvider()


def parse(issuer: str = ISSUER, **overrides: Any) -> GitLabClaims:
    return PROVIDER.parse_claims(issuer, gitlab_claims(issuer, AUDIENCE, now=NOW, **overrides))


def publisher(**changes: Any) -> GitLabPublisher:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "project_path": PROJECT,
        "workflow_filepath": ".gitlab-ci.yml",
        "projects": frozenset({"demo-pkg"}),
        "source": "policies/gitlab.toml: publisher[0]",
    }
    fields.update(changes)
    return GitLabPublisher(**fields)


def test_parse_claims_of_a_real_token() -> None:
    claims = parse()

    assert claims.issuer == ISSUER
    assert claims.lookup_key == PROJECT
    assert claims.project_path == PROJECT
    assert claims.project_id == "58112"
    assert claims.namespace_id == "4231"
    assert claims.workflow_filepath == ".gitlab-ci.yml"
    assert claims.environment == "pypi"
    assert claims.identity == {
        "provider": "gitlab",
        "issuer": ISSUER,
        "repository": PROJECT,
        "namespace": "group/sub",
        "project_id": "58112",
        "namespace_id": "4231",
        "workflow": ".gitlab-ci.yml",
        "environment": "pypi",
        "ref": "refs/heads/main",
        "sha": GITLAB_SHA,
        "pipeline_source": "push",
        "run_id": "1283475561",
        "job_id": "6639250871",
    }
    assert claims.values["ref_protected"] == "true"
    assert claims.values["runner_environment"] == "gitlab-hosted"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (URI, ".gitlab-ci.yml"),
        (f"gitlab.com/{PROJECT}//ci/release.yml@refs/heads/main", "ci/release.yml"),
        (
            f"gitlab.com/{PROJECT}//ci/deep/er/release.yaml@refs/heads/main",
            "ci/deep/er/release.yaml",
        ),
        (f"gitlab.com/{PROJECT}//.gitlab-ci.yml@{GITLAB_SHA}", ".gitlab-ci.yml"),
        (f"gitlab.example.com/{PROJECT}//.gitlab-ci.yml@refs/heads/main", ".gitlab-ci.yml"),
        (f"gitlab.example.com:8443/{PROJECT}//.gitlab-ci.yml@refs/heads/main", ".gitlab-ci.yml"),
        (f"example.com/gitlab/{PROJECT}//.gitlab-ci.yml@refs/heads/main", ".gitlab-ci.yml"),
        ("gitlab.com/Group/Sub/Project//.gitlab-ci.yml@refs/heads/main", ".gitlab-ci.yml"),
        (f"gitlab.com/{PROJECT}//CI/Release.yml@refs/heads/main", "CI/Release.yml"),
        # The CI file of another project (or one whose name merely ends the same way).
        ("gitlab.com/group/sub/other//.gitlab-ci.yml@refs/heads/main", None),
        ("gitlab.com/group/sub/project2//.gitlab-ci.yml@refs/heads/main", None),
        ("gitlab.com/evilgroup/sub/project//.gitlab-ci.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}/sub//.gitlab-ci.yml@refs/heads/main", None),
        # No host, no `//`, or a ref that is neither ref_path nor sha.
        (f"{PROJECT}//.gitlab-ci.yml@refs/heads/main", None),
        (f"/{PROJECT}//.gitlab-ci.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}/.gitlab-ci.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//.gitlab-ci.yml@refs/heads/other", None),
        (f"gitlab.com/{PROJECT}//.gitlab-ci.yml@", None),
        (f"gitlab.com/{PROJECT}//.gitlab-ci.yml", None),
        # Odd file paths.
        (f"gitlab.com/{PROJECT}//.gitlab-ci.yml@x.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}///ci.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//ci//release.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//../release.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//ci/./release.yml@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//ci/release.txt@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//ci/release.YML@refs/heads/main", None),
        (f"gitlab.com/{PROJECT}//ci/rel ease.yml@refs/heads/main", None),
        (f"gitlab com/{PROJECT}//.gitlab-ci.yml@refs/heads/main", None),
        ("", None),
    ],
    ids=[
        "root-file",
        "subdirectory",
        "nested-yaml",
        "at-sha",
        "self-managed-host",
        "host-with-port",
        "relative-url-root",
        "project-other-case",
        "file-case-kept",
        "other-project",
        "project-name-prefix",
        "group-name-suffix",
        "deeper-project",
        "no-host",
        "empty-host",
        "single-slash",
        "other-ref",
        "empty-ref",
        "no-ref",
        "second-at",
        "empty-file",
        "extension-only",
        "absolute-path",
        "empty-segment",
        "parent-directory",
        "current-directory",
        "not-yaml",
        "upper-case-extension",
        "space-in-path",
        "space-in-host",
        "empty",
    ],
)
def test_ci_config_ref_uri_shapes(uri: str, expected: str | None) -> None:
    if expected is not None:
        assert parse(ci_config_ref_uri=uri).workflow_filepath == expected
        return
    with pytest.raises(InvalidPublisher) as excinfo:
        parse(ci_config_ref_uri=uri)

    assert excinfo.value.code == "invalid-publisher"
    assert [m.claim for m in excinfo.value.mismatches] == ["ci_config_ref_uri"]
    assert excinfo.value.mismatches[0].received == uri
    assert f"HOST/{PROJECT}//<path>.yml@refs/heads/main" in excinfo.value.description


def test_config_outside_the_project_has_no_uri_and_is_refused() -> None:
    # GitLab sends ci_config_ref_uri = null when the CI file lives in another project.
    with pytest.raises(InvalidPublisher, match="missing a required claim") as excinfo:
        parse(ci_config_ref_uri=None)

    assert excinfo.value.mismatches == (ClaimMismatch("ci_config_ref_uri", "a string", None),)


@pytest.mark.parametrize("claim", ["ref_path", "sha"])
def test_ref_path_and_sha_must_not_be_empty(claim: str) -> None:
    with pytest.raises(InvalidPublisher, match=f"'{claim}' is malformed") as excinfo:
        parse(**{claim: ""})

    assert excinfo.value.mismatches == (ClaimMismatch(claim, "a non-empty string", ""),)


WRONG_TYPES = [(58112, "int"), (["group"], "list"), (True, "bool"), ({"a": "b"}, "dict")]


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
    with pytest.raises(InvalidPublisher, match="missing a required claim") as excinfo:
        parse(**{claim: REMOVE})

    assert excinfo.value.mismatches == (ClaimMismatch(claim, "a string", None),)


@pytest.mark.parametrize("claim", OPTIONAL_CLAIMS, ids=list(OPTIONAL_CLAIMS))
def test_optional_claims_may_be_missing(claim: str) -> None:
    assert parse(**{claim: REMOVE}).project_path == PROJECT


@pytest.mark.parametrize("claim", [*IGNORED_CLAIMS, "brand_new"], ids=[*IGNORED_CLAIMS, "new"])
def test_ignored_and_unknown_claims_are_not_type_checked(claim: str) -> None:
    # The real token sends runner_id as a number; none of these may break parsing.
    assert parse(**{claim: [1, {"x": None}]}).workflow_filepath == ".gitlab-ci.yml"


@pytest.mark.parametrize(
    "project_path",
    ["project", "group/", "/project", "group//project", "group/pro ject", "group/-x/project"],
    ids=["no-namespace", "no-name", "no-group", "empty-segment", "space", "leading-dash"],
)
def test_malformed_project_path_is_rejected(project_path: str) -> None:
    with pytest.raises(InvalidPublisher) as excinfo:
        parse(project_path=project_path)

    assert excinfo.value.mismatches[0].claim == "project_path"


# -- publisher matching ------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "claimed"),
    [
        (PROJECT, PROJECT),
        ("Group/Sub/Project", PROJECT),
        (PROJECT, "GROUP/SUB/PROJECT"),
    ],
    ids=["same", "publisher-mixed-case", "claim-upper-case"],
)
def test_project_path_is_case_insensitive_in_lookup_and_check(
    registered: str, claimed: str
) -> None:
    claims = parse(
        project_path=claimed,
        ci_config_ref_uri=f"gitlab.com/{claimed}//.gitlab-ci.yml@refs/heads/main",
    )
    candidate = publisher(project_path=registered)

    assert candidate.lookup_key == claims.lookup_key
    assert candidate.mismatches(claims) == ()
    assert PublisherRegistry([candidate]).match(claims).projects == {"demo-pkg"}


def test_namespace_is_everything_before_the_last_slash() -> None:
    assert publisher(project_path="Group/Sub/Project").namespace == "Group/Sub"
    assert publisher(project_path="user/project").namespace == "user"


@pytest.mark.parametrize(
    ("claimed", "matches"),
    [
        (PROJECT, True),
        ("Group/SUB/project", True),
        ("group/sub/project2", False),
        ("group/project", False),
    ],
    ids=["same", "other-case", "other-name", "other-namespace"],
)
def test_a_publisher_checks_the_project_path_itself(claimed: str, matches: bool) -> None:
    # The registry's lookup is not the only guard: a publisher asked about another
    # project's token (by explain, or a registry keyed otherwise) refuses it too.
    claims = parse(
        project_path=claimed,
        ci_config_ref_uri=f"gitlab.com/{claimed}//.gitlab-ci.yml@refs/heads/main",
    )

    mismatches = publisher().mismatches(claims)

    refused = (ClaimMismatch("project_path", f"{PROJECT!r} (any case)", claimed),)
    assert mismatches == (() if matches else refused)


def test_project_in_another_namespace_is_another_publisher() -> None:
    claims = parse(
        project_path="group/project",
        ci_config_ref_uri="gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main",
    )

    with pytest.raises(InvalidPublisher, match="no trusted publisher is registered"):
        PublisherRegistry([publisher()]).match(claims)


@pytest.mark.parametrize(
    ("registered", "uri_path", "matches"),
    [
        (".gitlab-ci.yml", ".gitlab-ci.yml", True),
        ("ci/release.yml", "ci/release.yml", True),
        (".gitlab-ci.yml", "ci/.gitlab-ci.yml", False),
        ("ci/release.yml", "release.yml", False),
        ("ci/release.yml", "CI/release.yml", False),
        (".gitlab-ci.yml", ".gitlab-ci.yaml", False),
    ],
    ids=["root", "subdirectory", "other-directory", "missing-directory", "case", "extension"],
)
def test_workflow_filepath_is_exact(registered: str, uri_path: str, matches: bool) -> None:
    claims = parse(ci_config_ref_uri=f"gitlab.com/{PROJECT}//{uri_path}@refs/heads/main")

    mismatches = publisher(workflow_filepath=registered).mismatches(claims)

    if matches:
        assert mismatches == ()
    else:
        assert mismatches == (
            ClaimMismatch("ci_config_ref_uri", f"CI file {registered!r}", uri_path),
        )


@pytest.mark.parametrize(
    ("required", "claimed", "matches"),
    [
        (None, "pypi", True),
        (None, REMOVE, True),
        ("pypi", "pypi", True),
        ("PyPI", "pypi", False),
        ("pypi", "PYPI", False),
        ("pypi", "pypi-staging", False),
        ("pypi", REMOVE, False),
        ("pypi", "", False),
    ],
    ids=[
        "any-environment",
        "any-environment-none-sent",
        "equal",
        "publisher-other-case",
        "claim-other-case",
        "other-environment",
        "environment-missing",
        "environment-empty",
    ],
)
def test_environment_is_case_sensitive(required: str | None, claimed: Any, matches: bool) -> None:
    mismatches = publisher(environment=required).mismatches(parse(environment=claimed))

    if matches:
        assert mismatches == ()
    else:
        assert [m.claim for m in mismatches] == ["environment"]
        assert mismatches[0].expected == f"{required!r} (exact case)"


@pytest.mark.parametrize(
    ("pin", "claim", "value", "matches"),
    [
        ("namespace_id", "namespace_id", "4231", True),
        ("namespace_id", "namespace_id", "4232", False),
        ("project_id", "project_id", "58112", True),
        ("project_id", "project_id", "99", False),
    ],
    ids=["namespace-equal", "namespace-resurrected", "project-equal", "project-resurrected"],
)
def test_id_pins(pin: str, claim: str, value: str, matches: bool) -> None:
    registered = {"namespace_id": "4231", "project_id": "58112"}[pin]
    mismatches = publisher(**{pin: registered}).mismatches(parse(**{claim: value}))

    expected = () if matches else (ClaimMismatch(claim, repr(registered), value),)
    assert mismatches == expected


def test_unpinned_ids_accept_any_id() -> None:
    assert publisher().mismatches(parse(namespace_id="1", project_id="2")) == ()


# -- constraints ---------------------------------------------------------------------


def constrained(**policy: Any) -> GitLabPublisher:
    entry = {
        "provider": "gitlab",
        "project_path": PROJECT,
        "workflow_filepath": ".gitlab-ci.yml",
        "projects": ["demo-pkg"],
        **policy,
    }
    return PROVIDER.parse_publisher(entry, "policies/gitlab.toml: publisher[0]")


TAG = "refs/tags/v1.2.0"


def on_ref(ref_path: str, **overrides: Any) -> GitLabClaims:
    return parse(
        ref_path=ref_path,
        ci_config_ref_uri=f"gitlab.com/{PROJECT}//.gitlab-ci.yml@{ref_path}",
        **overrides,
    )


@pytest.mark.parametrize(
    ("policy", "claims", "failing"),
    [
        ({"refs": ["refs/tags/v*"]}, {"ref_path": TAG}, []),
        ({"refs": ["refs/tags/v*"]}, {"ref_path": "refs/tags/v1.2.0-rc.1"}, []),
        ({"refs": ["refs/tags/v*"]}, {"ref_path": "refs/heads/main"}, ["ref_path"]),
        ({"refs": ["refs/tags/v1.2.0"]}, {"ref_path": "refs/tags/v1.2.0-rc.1"}, ["ref_path"]),
        ({"refs": ["refs/tags/v?.?.?"]}, {"ref_path": "refs/tags/v1.2.0-rc.1"}, ["ref_path"]),
        ({"refs": ["refs/heads/main", "refs/tags/v*"]}, {"ref_path": "refs/heads/main"}, []),
        ({"ref_protected": True}, {"ref_protected": "true"}, []),
        ({"ref_protected": True}, {"ref_protected": "false"}, ["ref_protected"]),
        ({"ref_protected": True}, {"ref_protected": REMOVE}, ["ref_protected"]),
        ({"pipeline_sources": ["push", "web"]}, {"pipeline_source": "web"}, []),
        (
            {"pipeline_sources": ["push"]},
            {"pipeline_source": "merge_request_event"},
            ["pipeline_source"],
        ),
        ({"runner_environment": "gitlab-hosted"}, {}, []),
        (
            {"runner_environment": "gitlab-hosted"},
            {"runner_environment": "self-hosted"},
            ["runner_environment"],
        ),
        (
            {"runner_environment": "gitlab-hosted"},
            {"runner_environment": REMOVE},
            ["runner_environment"],
        ),
        (
            {"refs": ["refs/tags/v*"], "ref_protected": True, "pipeline_sources": ["push"]},
            {"ref_path": "refs/heads/main", "ref_protected": "false", "pipeline_source": "web"},
            ["ref_path", "ref_protected", "pipeline_source"],
        ),
    ],
    ids=[
        "tag-pattern",
        "tag-pattern-takes-rc",
        "tag-pattern-refuses-branch",
        "exact-tag-refuses-rc",
        "one-digit-parts-refuse-rc",
        "list",
        "protected",
        "unprotected",
        "protection-unknown",
        "pipeline-source-allowed",
        "merge-request-refused",
        "hosted",
        "self-hosted-refused",
        "runner-unknown",
        "every-failure-reported",
    ],
)
def test_constraints(policy: dict[str, Any], claims: dict[str, Any], failing: list[str]) -> None:
    ref_path = claims.pop("ref_path", "refs/heads/main")
    token = on_ref(ref_path, **claims)

    mismatches = constrained(**policy).mismatches(token)

    assert [m.claim for m in mismatches] == failing


def test_constraint_mismatch_names_claim_expected_and_received() -> None:
    with pytest.raises(InvalidPublisher) as excinfo:
        PublisherRegistry([constrained(refs=["refs/tags/v*"])]).match(on_ref("refs/heads/main"))

    assert excinfo.value.mismatches == (
        ClaimMismatch("ref_path", "matching 'refs/tags/v*'", "refs/heads/main"),
    )
    assert (
        "claim 'ref_path': expected matching 'refs/tags/v*', received 'refs/heads/main'"
        in excinfo.value.description
    )


def test_constraints_table() -> None:
    publisher_ = constrained(
        refs=["refs/tags/v*"],
        ref_protected=True,
        pipeline_sources=["push"],
        runner_environment="gitlab-hosted",
    )

    assert set(CONSTRAINTS) == {"refs", "ref_protected", "pipeline_sources", "runner_environment"}
    assert publisher_.rules == (
        MatchesAny("ref_path", (Glob("refs/tags/v*"),)),
        IsTrue("ref_protected"),
        OneOf("pipeline_source", ("push",)),
        OneOf("runner_environment", ("gitlab-hosted",)),
    )


def test_checks_list_passes_and_failures_and_mismatches_derive_from_them() -> None:
    candidate = publisher(
        environment="pypi", project_id="58112", rules=constrained(refs=["refs/tags/v*"]).rules
    )

    checks = candidate.checks(parse(environment="prod"))

    assert [(c.claim, c.ok) for c in checks] == [
        ("project_path", True),
        ("ci_config_ref_uri", True),
        ("environment", False),
        ("project_id", True),
        ("ref_path", False),
    ]
    assert candidate.mismatches(parse(environment="prod")) == failed(checks)


def test_a_publisher_judges_each_token_on_its_own_claims() -> None:
    # What a check expects is written once per publisher; what it received and whether
    # it passed must come from each token, in any order of passing and failing tokens.
    pinned = publisher(environment="pypi", namespace_id="4231", project_id="58112")
    tokens = [
        ({}, ()),
        ({"environment": "PyPI"}, (ClaimMismatch("environment", "'pypi' (exact case)", "PyPI"),)),
        ({}, ()),
        ({"project_id": "99"}, (ClaimMismatch("project_id", "'58112'", "99"),)),
        ({"namespace_id": "1"}, (ClaimMismatch("namespace_id", "'4231'", "1"),)),
        ({}, ()),
    ]

    for overrides, mismatches in tokens:
        assert pinned.mismatches(parse(**overrides)) == mismatches
    assert publisher(environment="prod").mismatches(parse(environment="prod")) == ()


# -- isolation -----------------------------------------------------------------------


def test_token_of_one_instance_never_matches_a_publisher_of_another() -> None:
    registry = PublisherRegistry([publisher(issuer=ISSUER)])
    claims = parse(
        SELF_MANAGED,
        ci_config_ref_uri=f"gitlab.example.com/{PROJECT}//.gitlab-ci.yml@refs/heads/main",
    )

    with pytest.raises(InvalidPublisher, match="no trusted publisher is registered"):
        registry.match(claims)
    assert registry.explain(claims) == ()
    assert PublisherRegistry([publisher(issuer=SELF_MANAGED)]).match(claims).projects == {
        "demo-pkg"
    }


def test_claims_of_another_provider_never_match() -> None:
    github = GitHubProvider().parse_claims(
        PUBLIC_GITHUB_ISSUER, github_claims(PUBLIC_GITHUB_ISSUER, AUDIENCE, now=NOW)
    )

    assert publisher().mismatches(github) == (
        ClaimMismatch("iss", "a GitLab CI/CD token", PUBLIC_GITHUB_ISSUER),
    )


def test_github_publisher_never_matches_gitlab_claims() -> None:
    from app.publishers.github import GitHubPublisher

    github = GitHubPublisher(
        issuer=ISSUER,
        repository="group/project",
        repository_owner_id="4231",
        workflow="release.yml",
        projects=frozenset({"x"}),
        source="s",
    )

    assert github.mismatches(parse()) == (ClaimMismatch("iss", "a GitHub Actions token", ISSUER),)


# -- identity, specificity, issuer rules ---------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({}, {"project_path": "GROUP/Sub/project"}, True),
        ({}, {"projects": frozenset({"other"})}, True),
        ({"environment": "pypi"}, {"environment": "PyPI"}, False),
        ({}, {"workflow_filepath": "ci/.gitlab-ci.yml"}, False),
        ({}, {"project_id": "58112"}, False),
        ({}, {"namespace_id": "4231"}, False),
        ({}, {"issuer": SELF_MANAGED}, False),
        ({}, {"rules": (IsTrue("ref_protected"),)}, False),
    ],
    ids=[
        "project-case",
        "projects-do-not-count",
        "environment-case-counts",
        "workflow-counts",
        "project-id-counts",
        "namespace-id-counts",
        "issuer-counts",
        "constraints-count",
    ],
)
def test_identity_key(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert (publisher(**a).identity_key == publisher(**b).identity_key) is same


@pytest.mark.parametrize(
    ("changes", "specificity"),
    [
        ({}, 0),
        ({"environment": "pypi"}, 1),
        ({"project_id": "1", "namespace_id": "2"}, 2),
        ({"environment": "pypi", "rules": (IsTrue("ref_protected"),)}, 2),
    ],
    ids=["none", "environment", "id-pins", "environment-and-constraint"],
)
def test_specificity(changes: dict[str, Any], specificity: int) -> None:
    assert publisher(**changes).specificity == specificity


def test_parse_publisher_defaults_to_gitlab_com() -> None:
    parsed = PROVIDER.parse_publisher(
        {
            "provider": "gitlab",
            "project_path": "Group/Project",
            "workflow_filepath": ".gitlab-ci.yml",
            "projects": ["Demo_Pkg"],
        },
        "policies/g.toml: publisher[0]",
    )

    assert parsed.issuer == "https://gitlab.com"
    assert parsed.provider == "gitlab"
    assert parsed.projects == {"demo-pkg"}
    assert (parsed.environment, parsed.namespace_id, parsed.project_id, parsed.rules) == (
        None,
        None,
        None,
        (),
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_issuer_config(enabled: bool) -> None:
    assert PROVIDER.issuer_config(SELF_MANAGED, enabled=enabled) == IssuerConfig(
        url=SELF_MANAGED,
        provider="gitlab",
        max_lifetime=MAX_TOKEN_LIFETIME,
        enabled=enabled,
    )
    assert PROVIDER.issuer_config(SELF_MANAGED, enabled=True).requires_jti


@pytest.mark.parametrize(
    ("changes", "pins"),
    [
        ({}, ("namespace_id", "project_id")),
        ({"environment": "pypi"}, ("namespace_id", "project_id")),
        ({"project_id": "58112"}, ()),
        ({"namespace_id": "4231"}, ()),
        ({"first_use_pins": (("namespace_id", "4231"), ("project_id", "58112"))}, ()),
    ],
    ids=["no-ids", "environment-is-no-id", "project-id", "namespace-id", "pinned-already"],
)
def test_a_publisher_naming_no_id_pins_both_on_first_use(
    changes: dict[str, Any], pins: tuple[str, ...]
) -> None:
    assert publisher(**changes).pins_on_first_use == pins


@pytest.mark.parametrize(
    ("pins", "overrides", "mismatched"),
    [
        ({"namespace_id": "4231", "project_id": "58112"}, {}, ()),
        ({"namespace_id": "4231", "project_id": "58112"}, {"project_id": "99"}, ("project_id",)),
        ({"namespace_id": "4231", "project_id": "58112"}, {"namespace_id": "7"}, ("namespace_id",)),
        # A pin the store lost a part of lets no token through.
        ({"namespace_id": "4231"}, {}, ("project_id",)),
    ],
    ids=["same-ids", "recreated-project", "recreated-group", "partial-pin"],
)
def test_pinned_ids_are_checked_like_named_ones(
    pins: dict[str, str], overrides: dict[str, Any], mismatched: tuple[str, ...]
) -> None:
    pinned = publisher().with_pins(pins)

    assert tuple(m.claim for m in pinned.mismatches(parse(**overrides))) == mismatched
    assert pinned.pins_on_first_use == ()


def test_pins_are_no_constraint() -> None:
    # Pinning must not change which of one author's publishers wins, nor what counts
    # as a duplicate registration.
    plain = publisher(environment="pypi")
    pinned = plain.with_pins({"namespace_id": "4231", "project_id": "58112"})

    assert (pinned.specificity, pinned.identity_key) == (plain.specificity, plain.identity_key)
    check = pinned.checks(parse(project_id="99"))[-1]
    assert check.expected == "'58112' (pinned by the first token it matched)"
    assert (check.received, check.ok) == ("99", False)
