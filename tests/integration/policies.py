"""Writing policy files: `[[publisher]]` tables as TOML."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# The publisher the default test app registers: octo-org/demo's release.yml in the
# GitHub environment "pypi", pinned to the owner's and the repository's IDs. It
# matches support.claims.github_claims() unchanged.
OWNER_ID = "65"
REPOSITORY_ID = "74"


def github_publisher(issuer: str, /, **overrides: Any) -> dict[str, Any]:
    """A publisher table; an override of None drops that key."""
    entry: dict[str, Any] = {
        "provider": "github",
        "issuer": issuer,
        "repository": "octo-org/demo",
        "repository_owner_id": OWNER_ID,
        "repository_id": REPOSITORY_ID,
        "workflow": "release.yml",
        "environment": "pypi",
        "projects": ["Demo_Pkg"],
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


def policy_toml(publishers: Iterable[Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for publisher in publishers:
        lines.append("[[publisher]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in publisher.items())
        lines.append("")
    return "\n".join(lines)


def write_policy(directory: Path, publishers: Iterable[Mapping[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "publishers.toml"
    path.write_text(policy_toml(publishers), encoding="utf-8")
    return path


def _toml_value(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    if isinstance(value, str | int | bool | list):
        return json.dumps(value)
    raise TypeError(f"no TOML form for {value!r}")


def gitlab_publisher(issuer: str, /, **overrides: Any) -> dict[str, Any]:
    """A GitLab publisher matching support.claims.gitlab_claims() unchanged (None drops a key)."""
    entry: dict[str, Any] = {
        "provider": "gitlab",
        "issuer": issuer,
        "project_path": "group/sub/project",
        "workflow_filepath": ".gitlab-ci.yml",
        "environment": "pypi",
        "projects": ["gitlab-pkg"],
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


def google_publisher(issuer: str, /, **overrides: Any) -> dict[str, Any]:
    """A Google publisher matching support.claims.google_claims() unchanged."""
    entry: dict[str, Any] = {
        "provider": "google",
        "issuer": issuer,
        "email": "pypi-publisher@octo-project.iam.gserviceaccount.com",
        "projects": ["google-pkg"],
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}
