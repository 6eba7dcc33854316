"""`load_policy_dir`: valid files load; every problem in every file is reported at once."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.publishers.github import GitHubPublisher
from app.publishers.policy_files import PolicyError, load_policy_dir, policy_schema
from app.settings import PUBLIC_GITHUB_ISSUER

ENTERPRISE = "https://token.actions.githubusercontent.com/acme"
DEV_ISSUER = "https://dev-issuer.trustpub.invalid"
TRUSTED = {"github": frozenset({PUBLIC_GITHUB_ISSUER, ENTERPRISE})}
REPOSITORY_POLICIES = Path(__file__).resolve().parents[2] / "policies"

VALID = """
[[publisher]]
provider = "github"
repository = "octo-org/demo"
repository_owner_id = "65"
workflow = "release.yml"
projects = ["Demo_Pkg", "demo-extras"]

[[publisher]]
provider = "github"
issuer = "https://token.actions.githubusercontent.com/acme"
repository = "Acme/Tools"
repository_owner_id = "4242"
repository_id = "99"
workflow = "publish.yaml"
environment = "PyPI"
projects = ["acme.tools"]
"""

ONE = """
[[publisher]]
provider = "github"
repository = "octo-org/demo"
repository_owner_id = "65"
workflow = "release.yml"
projects = ["demo-pkg"]
"""


def publisher_toml(**fields: object) -> str:
    """One [[publisher]] table: ONE's fields with changes; None drops a field."""
    values: dict[str, object] = {
        "provider": "github",
        "repository": "octo-org/demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": ["demo-pkg"],
    }
    values.update(fields)
    lines = ["[[publisher]]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_valid_file_loads(tmp_path: Path) -> None:
    directory = write(tmp_path / "policies", {"demo.toml": VALID})

    first, second = load_policy_dir(directory, TRUSTED)

    assert isinstance(first, GitHubPublisher)
    assert isinstance(second, GitHubPublisher)
    assert first.issuer == PUBLIC_GITHUB_ISSUER  # the default: github.com
    assert first.repository == "octo-org/demo"
    assert first.repository_owner_id == "65"
    assert first.repository_id is None
    assert first.environment is None
    assert first.workflow == "release.yml"
    assert first.projects == {"demo-pkg", "demo-extras"}
    assert first.source == f"{directory / 'demo.toml'}: publisher[0]"
    assert second.issuer == ENTERPRISE
    assert second.lookup_key == "acme/tools"
    assert second.repository_id == "99"
    assert second.environment == "PyPI"
    assert second.projects == {"acme-tools"}
    assert second.source.endswith("demo.toml: publisher[1]")


def test_files_load_in_name_order_and_other_files_are_ignored(tmp_path: Path) -> None:
    directory = write(
        tmp_path,
        {
            "b.toml": publisher_toml(projects=["b-pkg"], workflow="b.yml"),
            "a.toml": publisher_toml(projects=["a-pkg"], workflow="a.yml"),
            "README.md": "not a policy",
            "c.toml.bak": "not even TOML [",
        },
    )

    publishers = load_policy_dir(directory, TRUSTED)

    assert [p.projects for p in publishers] == [{"a-pkg"}, {"b-pkg"}]


def test_empty_directory_has_no_publishers(tmp_path: Path) -> None:
    assert load_policy_dir(tmp_path, TRUSTED) == []


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (publisher_toml(workflow="release.txt"), ["publisher[0].workflow", "release.txt"]),
        (publisher_toml(workflow="ci/release.yml"), ["publisher[0].workflow"]),
        (publisher_toml(workflow=None), ["publisher[0]:", "'workflow' is a required property"]),
        (publisher_toml(workflow_ref="x"), ["publisher[0]:", "'workflow_ref' was unexpected"]),
        (publisher_toml(provider="circleci"), ["publisher[0].provider", "'circleci'"]),
        (publisher_toml(provider=None), ["publisher[0]:", "'provider' is a required property"]),
        (publisher_toml(repository="octo-org"), ["publisher[0].repository"]),
        (publisher_toml(repository_owner_id=65), ["publisher[0].repository_owner_id"]),
        (publisher_toml(repository_owner_id="octo"), ["publisher[0].repository_owner_id"]),
        (publisher_toml(repository_id="x74"), ["publisher[0].repository_id"]),
        (publisher_toml(environment=""), ["publisher[0].environment"]),
        (publisher_toml(projects=[]), ["publisher[0].projects"]),
        (publisher_toml(projects="demo-pkg"), ["publisher[0].projects"]),
        (publisher_toml(projects=["-bad"]), ["publisher[0].projects[0]", "'-bad'"]),
        (publisher_toml(projects=["ok", "bad name"]), ["publisher[0].projects[1]"]),
        (publisher_toml(projects=["a", "a"]), ["publisher[0].projects", "non-unique"]),
        (publisher_toml(issuer=PUBLIC_GITHUB_ISSUER + "/"), ["publisher[0].issuer"]),
        (publisher_toml(issuer="http://token.actions.githubusercontent.com"), ["[0].issuer"]),
        (
            publisher_toml(issuer="https://git.acme.example/_services/token"),
            ["publisher[0].issuer", "not a configured github issuer", "TRUSTPUB_GITHUB_ISSUERS"],
        ),
        ("", ["(top level)", "'publisher' is a required property"]),
        ("publisher = []\n", ["publisher:", "publisher"]),
        ('[publisher]\nprovider = "github"\n', ["publisher:", "is not of type 'array'"]),
        (ONE + 'audience = "x"\n', ["publisher[0]:", "'audience' was unexpected"]),
        ('title = "x"\n' + ONE, ["(top level)", "'title' was unexpected"]),
        ('[[publisher]]\nprovider = "github"\nprojects = [\n', ["invalid TOML"]),
        (ONE + ONE.replace("demo-pkg", "other") + publisher_toml(workflow=5), ["publisher[2]."]),
    ],
    ids=[
        "workflow-not-yaml",
        "workflow-in-subdirectory",
        "workflow-missing",
        "unknown-key",
        "unknown-provider",
        "provider-missing",
        "repository-without-name",
        "owner-id-number",
        "owner-id-name",
        "repository-id-not-numeric",
        "environment-empty",
        "projects-empty",
        "projects-not-list",
        "project-name-invalid",
        "second-project-invalid",
        "projects-duplicate",
        "issuer-trailing-slash",
        "issuer-http",
        "issuer-not-configured",
        "empty-file",
        "no-publishers",
        "publisher-table-not-array",
        "unknown-key-after-publisher",
        "unknown-top-level-key",
        "invalid-toml",
        "third-publisher",
    ],
)
def test_invalid_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    directory = write(tmp_path, {"demo.toml": text})

    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(directory, TRUSTED)

    errors = excinfo.value.errors
    assert len(errors) >= 1
    for error in errors:
        assert error.startswith(f"{directory / 'demo.toml'}:")
        assert error in str(excinfo.value)
    assert len(set(errors)) == len(errors), "the same problem is reported twice"
    joined = "\n".join(errors)
    for fragment in fragments:
        assert fragment in joined


def test_every_error_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    directory = write(
        tmp_path,
        {
            "a.toml": ONE + publisher_toml(workflow="release.txt", projects=["a2"]),
            "b.toml": publisher_toml(projects=None) + publisher_toml(repository_owner_id="x"),
            "c.toml": "this is not = = toml",
            "d.toml": publisher_toml(issuer="https://unknown.example", projects=["d"]),
            "e.toml": publisher_toml(projects=["fine"], workflow="fine.yml"),
        },
    )

    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(directory, TRUSTED)

    errors = excinfo.value.errors
    expected = [
        ("a.toml", "publisher[1].workflow"),
        ("b.toml", "publisher[0]: 'projects' is a required property"),
        ("b.toml", "publisher[1].repository_owner_id"),
        ("c.toml", "invalid TOML"),
        ("d.toml", "publisher[0].issuer"),
    ]
    assert len(errors) == len(expected)
    for (file_name, fragment), error in zip(expected, errors, strict=True):
        assert error.startswith(f"{directory / file_name}:")
        assert fragment in error


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(missing, TRUSTED)

    assert excinfo.value.errors == [f"{missing}: policies directory does not exist"]


@pytest.mark.parametrize(
    ("first", "second", "duplicate"),
    [
        ({}, {}, True),
        ({}, {"projects": ["another-pkg"]}, True),
        ({}, {"repository": "Octo-Org/Demo"}, True),
        ({"environment": "pypi"}, {"environment": "PyPI"}, True),
        ({}, {"environment": "pypi"}, False),
        ({}, {"workflow": "other.yml"}, False),
        ({}, {"repository_id": "74"}, False),
        ({}, {"issuer": ENTERPRISE}, False),
    ],
    ids=[
        "identical",
        "other-projects",
        "repository-case",
        "environment-case",
        "with-and-without-environment",
        "other-workflow",
        "with-and-without-repository-id",
        "other-issuer",
    ],
)
def test_duplicates_across_files(
    tmp_path: Path, first: dict[str, object], second: dict[str, object], duplicate: bool
) -> None:
    directory = write(
        tmp_path, {"a.toml": publisher_toml(**first), "b.toml": publisher_toml(**second)}
    )

    if not duplicate:
        assert len(load_policy_dir(directory, TRUSTED)) == 2
        return
    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(directory, TRUSTED)

    (error,) = excinfo.value.errors
    assert error.startswith(f"{directory / 'b.toml'}: publisher[0]: duplicate of ")
    assert f"{directory / 'a.toml'}: publisher[0]" in error


def test_duplicate_within_one_file(tmp_path: Path) -> None:
    directory = write(tmp_path, {"a.toml": ONE + ONE})

    with pytest.raises(PolicyError) as excinfo:
        load_policy_dir(directory, TRUSTED)

    assert excinfo.value.errors == [
        f"{directory / 'a.toml'}: publisher[1]: duplicate of {directory / 'a.toml'}: "
        "publisher[0]; list every project of one publisher in a single 'projects' array"
    ]


def test_publisher_of_unconfigured_provider_issuer(tmp_path: Path) -> None:
    directory = write(tmp_path, {"a.toml": ONE})

    with pytest.raises(PolicyError, match="not a configured github issuer"):
        load_policy_dir(directory, {})


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    text = resources.files("app.publishers").joinpath("policy.schema.json").read_text("utf-8")
    schema = json.loads(text)

    Draft202012Validator.check_schema(schema)
    assert policy_schema() == schema


@pytest.mark.parametrize(
    ("issuers", "loads"),
    [
        (frozenset({PUBLIC_GITHUB_ISSUER, DEV_ISSUER}), True),
        (frozenset({PUBLIC_GITHUB_ISSUER}), False),
    ],
    ids=["public-and-dev-issuer", "public-issuer-only"],
)
def test_repository_policies_directory(issuers: frozenset[str], loads: bool) -> None:
    if not loads:
        # A production service (no dev issuer) refuses the development policy.
        with pytest.raises(PolicyError) as excinfo:
            load_policy_dir(REPOSITORY_POLICIES, {"github": issuers})
        assert any("dev.toml" in error and DEV_ISSUER in error for error in excinfo.value.errors)
        return

    publishers = load_policy_dir(REPOSITORY_POLICIES, {"github": issuers})

    assert {p.issuer for p in publishers} == {PUBLIC_GITHUB_ISSUER, DEV_ISSUER}
    assert all(p.projects for p in publishers)
