"""The policy JSON Schema and the loader agree: what one admits the other loads, and the reverse.

Each example is checked twice: against the schema alone (what editors and CI use) and by
`load_policy_dir` (what start-up and `trustpub check-policies` use), which must name the
file and the key of every problem.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from app.publishers.github import ReusableWorkflowRule
from app.publishers.gitlab import _ci_file
from app.publishers.policy_files import PolicyError, load_policy_dir, policy_schema
from app.publishers.providers import PROVIDERS
from app.settings import (
    GOOGLE_ISSUER,
    PROVIDER_ISSUERS,
    PUBLIC_GITHUB_ISSUER,
    PUBLIC_GITLAB_ISSUER,
)

SELF_MANAGED = "https://gitlab.example.com"
GHES = "https://github.example.com/_services/token"
TRUSTED = {
    "github": frozenset({PUBLIC_GITHUB_ISSUER, GHES}),
    "gitlab": frozenset({PUBLIC_GITLAB_ISSUER, SELF_MANAGED}),
    "google": frozenset({GOOGLE_ISSUER}),
}
SHA = "8d1c1f3c2b7f4a9e0d6b5a4c3e2f1a0b9c8d7e6f"

GITHUB_MINIMAL = {
    "provider": "github",
    "repository": "octo-org/demo",
    "repository_owner_id": "65",
    "workflow": "release.yml",
    "projects": ["demo-pkg"],
}
GITHUB_FULL = {
    **GITHUB_MINIMAL,
    "issuer": GHES,
    "repository_id": "74",
    "environment": "pypi",
    "refs": ["refs/tags/v*", "refs/heads/main"],
    "ref_protected": True,
    "event_names": ["push", "release"],
    "runner_environment": "github-hosted",
    "job_workflow_ref": "octo-org/shared/.github/workflows/publish.yml@refs/tags/v*",
    "job_workflow_sha": SHA,
}
GITLAB_MINIMAL = {
    "provider": "gitlab",
    "project_path": "group/sub/project",
    "workflow_filepath": ".gitlab-ci.yml",
    "projects": ["demo-pkg"],
}
GITLAB_FULL = {
    **GITLAB_MINIMAL,
    "issuer": SELF_MANAGED,
    "workflow_filepath": "ci/release.yml",
    "environment": "PyPI",
    "namespace_id": "4231",
    "project_id": "58112",
    "refs": ["refs/tags/v?.?.?"],
    "ref_protected": True,
    "pipeline_sources": ["push", "web"],
    "runner_environment": "gitlab-hosted",
}
GOOGLE_MINIMAL = {
    "provider": "google",
    "email": "pypi-publisher@octo-project.iam.gserviceaccount.com",
    "projects": ["demo-pkg"],
}
GOOGLE_FULL = {**GOOGLE_MINIMAL, "issuer": GOOGLE_ISSUER, "sub": "117923427451383423156"}

VALID = [GITHUB_MINIMAL, GITHUB_FULL, GITLAB_MINIMAL, GITLAB_FULL, GOOGLE_MINIMAL, GOOGLE_FULL]
VALID_IDS = [
    "github-minimal",
    "github-full",
    "gitlab-minimal",
    "gitlab-full",
    "google-minimal",
    "google-full",
]


def toml_of(*entries: dict[str, Any]) -> str:
    lines: list[str] = []
    for entry in entries:
        lines.append("[[publisher]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
        lines.append("")
    return "\n".join(lines)


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.toml").write_text(text, encoding="utf-8")
    return directory


def schema_errors(entry: dict[str, Any]) -> list[str]:
    document = tomllib.loads(toml_of(entry))
    validator = Draft202012Validator(policy_schema())
    return [error.message for error in validator.iter_errors(document)]


@pytest.mark.parametrize("entry", VALID, ids=VALID_IDS)
def test_every_valid_example_passes_the_schema_and_loads(
    tmp_path: Path, entry: dict[str, Any]
) -> None:
    assert schema_errors(entry) == []

    (publisher,) = load_policy_dir(write(tmp_path, toml_of(entry)), TRUSTED)

    assert publisher.provider == entry["provider"]
    assert publisher.projects == {"demo-pkg"}


def test_all_valid_examples_load_together(tmp_path: Path) -> None:
    publishers = load_policy_dir(write(tmp_path, toml_of(*VALID)), TRUSTED)

    assert [p.provider for p in publishers] == [e["provider"] for e in VALID]


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    entry = {**base, **changes}
    return {key: value for key, value in entry.items() if value is not None}


# (id, entry, key path the error must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    # GitHub constraints.
    ("github-refs-empty", _with(GITHUB_MINIMAL, refs=[]), "publisher[0].refs"),
    ("github-refs-string", _with(GITHUB_MINIMAL, refs="refs/tags/v*"), "publisher[0].refs"),
    ("github-ref-not-full", _with(GITHUB_MINIMAL, refs=["v*"]), "publisher[0].refs[0]"),
    ("github-ref-regex", _with(GITHUB_MINIMAL, refs=["refs/tags/v[0-9]+"]), "publisher[0].refs[0]"),
    ("github-ref-double-star", _with(GITHUB_MINIMAL, refs=["refs/**"]), "publisher[0].refs[0]"),
    (
        "github-ref-trailing-newline",
        _with(GITHUB_MINIMAL, refs=["refs/tags/v*\n"]),
        "publisher[0].refs[0]",
    ),
    (
        "github-ref-duplicate",
        _with(GITHUB_MINIMAL, refs=["refs/tags/v*", "refs/tags/v*"]),
        "publisher[0].refs",
    ),
    ("github-ref-protected-false", _with(GITHUB_MINIMAL, ref_protected=False), "ref_protected"),
    ("github-ref-protected-string", _with(GITHUB_MINIMAL, ref_protected="true"), "ref_protected"),
    (
        "github-pull-request-target",
        _with(GITHUB_MINIMAL, event_names=["push", "pull_request_target"]),
        "publisher[0].event_names[1]",
    ),
    ("github-event-upper", _with(GITHUB_MINIMAL, event_names=["Push"]), "event_names[0]"),
    ("github-runner", _with(GITHUB_MINIMAL, runner_environment="hosted"), "runner_environment"),
    (
        "github-runner-gitlab-value",
        _with(GITHUB_MINIMAL, runner_environment="gitlab-hosted"),
        "runner_environment",
    ),
    (
        "github-job-workflow-no-ref",
        _with(GITHUB_MINIMAL, job_workflow_ref="octo-org/shared/.github/workflows/p.yml"),
        "job_workflow_ref",
    ),
    (
        "github-job-workflow-subdirectory",
        _with(GITHUB_MINIMAL, job_workflow_ref="o/r/.github/workflows/x/p.yml@refs/heads/main"),
        "job_workflow_ref",
    ),
    (
        "github-job-workflow-wildcard-file",
        _with(GITHUB_MINIMAL, job_workflow_ref="o/r/.github/workflows/*.yml@refs/heads/main"),
        "job_workflow_ref",
    ),
    (
        "github-job-workflow-wildcard-repository",
        _with(GITHUB_MINIMAL, job_workflow_ref="o/*/.github/workflows/p.yml@refs/heads/main"),
        "job_workflow_ref",
    ),
    (
        "github-job-workflow-second-at",
        _with(GITHUB_MINIMAL, job_workflow_ref="o/r/.github/workflows/p.yml@refs/heads/a@b"),
        "job_workflow_ref",
    ),
    (
        "github-job-workflow-trailing-newline",
        _with(GITHUB_MINIMAL, job_workflow_ref="o/r/.github/workflows/p.yml@refs/heads/main\n"),
        "job_workflow_ref",
    ),
    (
        "github-job-workflow-sha-alone",
        _with(GITHUB_MINIMAL, job_workflow_sha=SHA),
        "publisher[0]",
    ),
    (
        "github-job-workflow-sha-short",
        _with(
            GITHUB_MINIMAL,
            job_workflow_ref="o/r/.github/workflows/p.yml@refs/heads/main",
            job_workflow_sha="8d1c1f3",
        ),
        "job_workflow_sha",
    ),
    # GitLab.
    ("gitlab-no-project", _with(GITLAB_MINIMAL, project_path=None), "'project_path'"),
    ("gitlab-no-namespace", _with(GITLAB_MINIMAL, project_path="project"), "project_path"),
    ("gitlab-trailing-slash", _with(GITLAB_MINIMAL, project_path="group/"), "project_path"),
    ("gitlab-no-workflow", _with(GITLAB_MINIMAL, workflow_filepath=None), "'workflow_filepath'"),
    (
        "gitlab-workflow-absolute",
        _with(GITLAB_MINIMAL, workflow_filepath="/ci.yml"),
        "workflow_filepath",
    ),
    (
        "gitlab-workflow-parent",
        _with(GITLAB_MINIMAL, workflow_filepath="../ci.yml"),
        "workflow_filepath",
    ),
    (
        "gitlab-workflow-dot",
        _with(GITLAB_MINIMAL, workflow_filepath="ci/./x.yml"),
        "workflow_filepath",
    ),
    (
        "gitlab-workflow-empty-segment",
        _with(GITLAB_MINIMAL, workflow_filepath="ci//x.yml"),
        "workflow_filepath",
    ),
    (
        "gitlab-workflow-not-yaml",
        _with(GITLAB_MINIMAL, workflow_filepath="ci.txt"),
        "workflow_filepath",
    ),
    (
        "gitlab-workflow-at",
        _with(GITLAB_MINIMAL, workflow_filepath="ci@x.yml"),
        "workflow_filepath",
    ),
    ("gitlab-environment-empty", _with(GITLAB_MINIMAL, environment=""), "environment"),
    ("gitlab-project-id-number", _with(GITLAB_MINIMAL, project_id=58112), "project_id"),
    ("gitlab-namespace-id-name", _with(GITLAB_MINIMAL, namespace_id="group"), "namespace_id"),
    ("gitlab-refs-short", _with(GITLAB_MINIMAL, refs=["main"]), "refs[0]"),
    (
        "gitlab-pipeline-source-empty",
        _with(GITLAB_MINIMAL, pipeline_sources=[]),
        "pipeline_sources",
    ),
    (
        "gitlab-runner",
        _with(GITLAB_MINIMAL, runner_environment="github-hosted"),
        "runner_environment",
    ),
    # Keys of one provider are unknown to another.
    ("gitlab-github-key", _with(GITLAB_MINIMAL, repository="octo-org/demo"), "'repository'"),
    ("gitlab-event-names", _with(GITLAB_MINIMAL, event_names=["push"]), "'event_names'"),
    ("github-gitlab-key", _with(GITHUB_MINIMAL, pipeline_sources=["push"]), "'pipeline_sources'"),
    # Google.
    ("google-no-email", _with(GOOGLE_MINIMAL, email=None), "'email'"),
    ("google-email-upper", _with(GOOGLE_MINIMAL, email="PyPI@p.iam.gserviceaccount.com"), "email"),
    ("google-email-no-at", _with(GOOGLE_MINIMAL, email="pypi.example.com"), "email"),
    ("google-sub-number", _with(GOOGLE_MINIMAL, sub=117923427451383423156), "sub"),
    ("google-sub-name", _with(GOOGLE_MINIMAL, sub="account"), "sub"),
    ("google-refs", _with(GOOGLE_MINIMAL, refs=["refs/tags/v*"]), "'refs'"),
    ("google-issuer-scheme-less", _with(GOOGLE_MINIMAL, issuer="accounts.google.com"), "issuer"),
]


@pytest.mark.parametrize(
    ("entry", "key"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_every_schema_invalid_example_is_refused_by_the_loader_with_file_and_key(
    tmp_path: Path, entry: dict[str, Any], key: str
) -> None:
    assert schema_errors(entry) != []
    directory = write(tmp_path, toml_of(entry))

    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(directory, TRUSTED)

    for error in excinfo.value.errors:
        assert error.startswith(f"{directory / 'policy.toml'}: publisher[0]")
    assert key in "\n".join(excinfo.value.errors)


@pytest.mark.parametrize(
    ("entry", "provider"),
    [
        (_with(GITHUB_MINIMAL, issuer=PUBLIC_GITLAB_ISSUER), "github"),
        (_with(GITLAB_MINIMAL, issuer=PUBLIC_GITHUB_ISSUER), "gitlab"),
        (_with(GITLAB_MINIMAL, issuer="https://gitlab.other.example"), "gitlab"),
        (_with(GOOGLE_MINIMAL, issuer="https://accounts.google.com/o"), "google"),
    ],
    ids=[
        "github-publisher-gitlab-issuer",
        "gitlab-publisher-github-issuer",
        "unknown-instance",
        "google-path",
    ],
)
def test_publisher_issuer_must_be_one_of_its_providers_issuers(
    tmp_path: Path, entry: dict[str, Any], provider: str
) -> None:
    assert schema_errors(entry) == []
    directory = write(tmp_path, toml_of(entry))

    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(directory, TRUSTED)

    (error,) = excinfo.value.errors
    assert error.startswith(f"{directory / 'policy.toml'}: publisher[0].issuer:")
    assert f"is not a configured {provider} issuer" in error
    assert f"TRUSTPUB_{provider.upper()}_ISSUERS" in error


def test_google_publishers_need_google_issuers_to_be_configured(tmp_path: Path) -> None:
    directory = write(tmp_path, toml_of(GOOGLE_MINIMAL))

    with pytest.raises(PolicyError, match="TRUSTPUB_GOOGLE_ISSUERS"):
        load_policy_dir(directory, {**TRUSTED, "google": frozenset()})


@pytest.mark.parametrize(
    ("minimal", "full"),
    [(GITHUB_MINIMAL, GITHUB_FULL), (GITLAB_MINIMAL, GITLAB_FULL), (GOOGLE_MINIMAL, GOOGLE_FULL)],
    ids=["github", "gitlab", "google"],
)
def test_every_optional_schema_key_changes_the_publisher(
    tmp_path: Path, minimal: dict[str, Any], full: dict[str, Any]
) -> None:
    # A key the schema admits but the loader ignored would be a constraint that silently
    # does nothing. Each one must make the publisher differ (and be a different one).
    definition = policy_schema()["$defs"][minimal["provider"]]
    optional = set(definition["properties"]) - set(definition["required"])
    assert optional == set(full) - set(minimal)
    (base,) = load_policy_dir(write(tmp_path / "base", toml_of(minimal)), TRUSTED)
    for key in sorted(optional - {"issuer"}):
        entry = {**minimal, key: full[key]}
        if key == "job_workflow_sha":
            entry["job_workflow_ref"] = full["job_workflow_ref"]
        (changed,) = load_policy_dir(write(tmp_path / key, toml_of(entry)), TRUSTED)
        assert changed.identity_key != base.identity_key, key
        assert changed.specificity > base.specificity, key


def test_schema_lists_exactly_the_registered_providers() -> None:
    schema = policy_schema()
    enum = schema["properties"]["publisher"]["items"]["properties"]["provider"]["enum"]
    branches = [
        branch["if"]["properties"]["provider"]["const"]
        for branch in schema["properties"]["publisher"]["items"]["allOf"]
    ]

    assert set(enum) == set(branches) == set(PROVIDERS) == set(PROVIDER_ISSUERS)
    assert all(name in schema["$defs"] for name in PROVIDERS)
    assert all(PROVIDERS[name].name == name for name in PROVIDERS)


_FILEPATH_SCHEMA = {
    "$ref": "#/$defs/gitlab/properties/workflow_filepath",
    "$defs": policy_schema()["$defs"],
}


_SEGMENT = st.text(alphabet="ab.-_+@ ", max_size=4)
_CI_PATHS = st.builds(
    lambda directories, stem, extension: "/".join([*directories, stem + extension]),
    st.lists(_SEGMENT, max_size=3),
    _SEGMENT,
    st.sampled_from([".yml", ".yaml", ".YML", ".txt", ""]),
)


@settings(max_examples=500, deadline=None)
@given(path=_CI_PATHS)
def test_every_gitlab_ci_file_a_policy_may_name_is_one_a_token_can_carry(path: str) -> None:
    # Otherwise a policy could load and never match any token.
    if Draft202012Validator(_FILEPATH_SCHEMA).is_valid(path):
        uri = f"gitlab.com/group/project//{path}@refs/heads/main"
        assert _ci_file("group/project", uri, "refs/heads/main", "0" * 40) == path


@settings(max_examples=300, deadline=None)
@given(ref=st.from_regex(r"refs/(heads|tags)/[v1.*?@+:\n-]{0,8}", fullmatch=True))
def test_every_job_workflow_ref_the_schema_admits_loads(ref: str) -> None:
    value = f"octo-org/shared/.github/workflows/publish.yml@{ref}"
    schema = {
        "$ref": "#/$defs/github/properties/job_workflow_ref",
        "$defs": policy_schema()["$defs"],
    }
    if Draft202012Validator(schema).is_valid(value):
        assert ReusableWorkflowRule.from_policy(value).text == value


def _string_fields(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field, the entry with a newline after that field's value or first item)."""
    changed = []
    for key, value in entry.items():
        if isinstance(value, str) and key != "provider":
            changed.append((key, {**entry, key: value + "\n"}))
        elif isinstance(value, list) and value and isinstance(value[0], str):
            changed.append((key, {**entry, key: [value[0] + "\n", *value[1:]]}))
    return changed


TRAILING_NEWLINES = [
    (f"{entry['provider']}-{key}", changed)
    for entry in VALID
    for key, changed in _string_fields(entry)
]


@pytest.mark.parametrize(
    ("field", "entry"), TRAILING_NEWLINES, ids=[field for field, _ in TRAILING_NEWLINES]
)
def test_a_trailing_newline_is_refused_in_every_field(field: str, entry: dict[str, Any]) -> None:
    # Python's `$` (which jsonschema's patterns use) also matches before a final newline.
    assert schema_errors(entry) != [], field
