"""Item 14 of "Core": a bad policy stops start-up, naming the file and the key, and
`trustpub check-policies` reports the same before a deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.oidc_issuer import OIDCIssuer

from app.errors import ConfigurationError
from app.publishers.policy_files import PolicyError

from .conftest import MakeApp
from .policies import github_publisher, policy_toml

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TRUSTPUB = Path(sys.executable).with_name("trustpub")
CLI_ISSUER = "https://token.ci.example.com"


def _one(**overrides: Any) -> Callable[[str], str]:
    """A policy file with one publisher of `issuer`, changed by `overrides`."""
    return lambda issuer: policy_toml([github_publisher(issuer, **overrides)])


# (id, policy file text for the trusted issuer, fragments the error must name besides
# the file's path)
BAD_POLICIES: list[tuple[str, Callable[[str], str], list[str]]] = [
    ("invalid-toml", lambda _: '[[publisher]]\nprovider = "github\n', ["invalid TOML", "line 2"]),
    ("unknown-key", _one(repo="octo-org/demo"), ["publisher[0]", "'repo'"]),
    (
        "missing-required-key",
        _one(repository_owner_id=None),
        ["publisher[0]", "'repository_owner_id'", "required"],
    ),
    (
        "workflow-with-directory",
        _one(workflow="sub/release.yml"),
        ["publisher[0].workflow", "sub/release.yml"],
    ),
    ("workflow-not-yaml", _one(workflow="release.sh"), ["publisher[0].workflow"]),
    (
        "issuer-not-configured",
        _one(issuer="https://ghes.example.com/_services/token"),
        ["publisher[0].issuer", "not a configured github issuer"],
    ),
    (
        "default-issuer-not-configured",
        _one(issuer=None),
        ["publisher[0].issuer", "https://token.actions.githubusercontent.com"],
    ),
    (
        "issuer-trailing-slash",
        lambda issuer: policy_toml([github_publisher(issuer, issuer=issuer + "/")]),
        ["publisher[0].issuer"],
    ),
    (
        "duplicate-publisher",
        lambda issuer: policy_toml([github_publisher(issuer), github_publisher(issuer)]),
        ["publisher[1]", "duplicate of", "publisher[0]"],
    ),
    (
        "duplicate-up-to-case",
        lambda issuer: policy_toml(
            [
                github_publisher(issuer),
                github_publisher(issuer, repository="Octo-Org/Demo", environment="PyPI"),
            ]
        ),
        ["publisher[1]", "duplicate of", "publisher[0]"],
    ),
    ("empty-projects", _one(projects=[]), ["publisher[0].projects"]),
    ("bad-project-name", _one(projects=["-bad-"]), ["publisher[0].projects[0]"]),
    (
        "owner-id-not-a-string",
        _one(repository_owner_id=65),
        ["publisher[0].repository_owner_id"],
    ),
    ("empty-environment", _one(environment=""), ["publisher[0].environment"]),
    ("unknown-provider", _one(provider="circleci"), ["publisher[0].provider"]),
    ("no-publisher-table", lambda _: "# nothing here\n", ["'publisher'"]),
    ("empty-publisher-list", lambda _: "publisher = []\n", ["publisher"]),
]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [case[1:] for case in BAD_POLICIES],
    ids=[case[0] for case in BAD_POLICIES],
)
def test_bad_policy_stops_start_up_naming_file_and_key(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    tmp_path: Path,
    text: Callable[[str], str],
    fragments: list[str],
) -> None:
    policies_dir = tmp_path / "policies"
    policies_dir.mkdir()
    path = policies_dir / "publishers.toml"
    path.write_text(text(oidc_issuer.url), encoding="utf-8")
    (policies_dir / "README.md").write_text("not a policy: ignored\n")

    with pytest.raises(PolicyError) as excinfo:
        make_app(policies_dir=policies_dir)

    assert isinstance(excinfo.value, ConfigurationError)
    message = str(excinfo.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_every_problem_in_every_file_is_reported_at_once(
    make_app: MakeApp, oidc_issuer: OIDCIssuer, tmp_path: Path
) -> None:
    policies_dir = tmp_path / "policies"
    policies_dir.mkdir()
    first = policies_dir / "a.toml"
    second = policies_dir / "b.toml"
    first.write_text(policy_toml([github_publisher(oidc_issuer.url, workflow="x/y.yml")]))
    second.write_text(policy_toml([github_publisher(oidc_issuer.url, projects=[])]))
    duplicated = policies_dir / "c.toml"
    duplicated.write_text(policy_toml([github_publisher(oidc_issuer.url)]))
    duplicate = policies_dir / "d.toml"
    duplicate.write_text(policy_toml([github_publisher(oidc_issuer.url)]))

    with pytest.raises(PolicyError) as excinfo:
        make_app(policies_dir=policies_dir)

    message = str(excinfo.value)
    assert f"{first}: publisher[0].workflow" in message
    assert f"{second}: publisher[0].projects" in message
    assert f"{duplicate}: publisher[0]: duplicate of {duplicated}: publisher[0]" in message
    assert len(excinfo.value.errors) == 3


def test_missing_policies_directory_stops_start_up(make_app: MakeApp, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(PolicyError, match="does not exist") as excinfo:
        make_app(policies_dir=missing)
    assert str(missing) in str(excinfo.value)


def test_good_policies_load_and_readiness_counts_them(
    make_app: MakeApp, oidc_issuer: OIDCIssuer
) -> None:
    app = make_app(
        [
            github_publisher(oidc_issuer.url),
            github_publisher(oidc_issuer.url, environment=None, projects=["other"]),
        ]
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["publishers"] == 2


# -- the check-policies command -------------------------------------------------------
#
# Each run starts a Python process that imports the whole service (about a second), so
# the runs start together, in one module fixture, and each test checks its own.


@dataclass(frozen=True)
class CheckRun:
    result: subprocess.CompletedProcess[str]
    files: dict[str, Path]


def _start_check(*args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTPUB_")}
    environ.update(env)
    return subprocess.Popen(
        [str(TRUSTPUB), "check-policies", *args],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def check_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CheckRun]:
    base = tmp_path_factory.mktemp("check-policies")
    bad_dir = base / "bad"
    bad_dir.mkdir()
    files = {"release": bad_dir / "release.toml", "enterprise": bad_dir / "enterprise.toml"}
    files["release"].write_text(
        policy_toml([github_publisher(CLI_ISSUER, workflow="sub/release.yml")])
    )
    files["enterprise"].write_text(
        policy_toml([github_publisher(CLI_ISSUER, issuer="https://ghes.example.com")])
    )
    good_dir = base / "good"
    good_dir.mkdir()
    (good_dir / "release.toml").write_text(policy_toml([github_publisher(CLI_ISSUER)]))

    issuers = {"TRUSTPUB_GITHUB_ISSUERS": CLI_ISSUER}
    processes = {
        "bad": (_start_check(str(bad_dir), cwd=base, **issuers), files),
        "good": (_start_check(str(good_dir), cwd=base, **issuers), {}),
        # Empty variables count as unset (a CI job's unset secrets): no audience or key needed.
        "good-empty-variables": (
            _start_check(
                str(good_dir), cwd=base, TRUSTPUB_AUDIENCE="", TRUSTPUB_SIGNING_KEYS=" ", **issuers
            ),
            {},
        ),
        "repository-dev": (
            _start_check(
                "--dev", "policies", cwd=REPOSITORY_ROOT, TRUSTPUB_DEV_DIR=str(base / "dev")
            ),
            {},
        ),
    }
    return {name: CheckRun(_finish(process), paths) for name, (process, paths) in processes.items()}


def test_check_policies_fails_listing_file_and_reason(check_runs: dict[str, CheckRun]) -> None:
    run = check_runs["bad"]
    assert run.result.returncode == 1, run.result
    assert f"{run.files['release']}: publisher[0].workflow" in run.result.stderr
    assert f"{run.files['enterprise']}: publisher[0].issuer" in run.result.stderr
    assert "not a configured github issuer" in run.result.stderr
    assert "OK" not in run.result.stdout


def test_check_policies_accepts_a_good_directory(check_runs: dict[str, CheckRun]) -> None:
    result = check_runs["good"].result
    assert result.returncode == 0, result
    assert "1 publisher(s) OK" in result.stdout


def test_check_policies_needs_no_audience_or_keys_when_their_variables_are_empty(
    check_runs: dict[str, CheckRun],
) -> None:
    result = check_runs["good-empty-variables"].result
    assert result.returncode == 0, result
    assert "1 publisher(s) OK" in result.stdout


def test_repository_policies_pass_in_development_mode(check_runs: dict[str, CheckRun]) -> None:
    result = check_runs["repository-dev"].result
    assert result.returncode == 0, result
    assert "OK" in result.stdout
