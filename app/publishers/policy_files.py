"""Loading `policies/*.toml`: every error reported with its file and key, then start-up stops."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from app.errors import ConfigurationError
from app.publishers.model import Publisher
from app.publishers.providers import PROVIDERS


class PolicyError(ConfigurationError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid policies:\n  " + "\n  ".join(errors))
        self.errors = errors


@cache
def policy_schema() -> Mapping[str, Any]:
    text = resources.files("app.publishers").joinpath("policy.schema.json").read_text("utf-8")
    schema: Mapping[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def load_policy_dir(
    directory: Path, trusted_issuers: Mapping[str, frozenset[str]]
) -> list[Publisher]:
    """All publishers in `directory`; raises PolicyError listing every problem found.

    `trusted_issuers` maps a provider to its configured issuer URLs: a publisher naming
    an issuer that is not configured could never match and is almost certainly a typo.
    """
    if not directory.is_dir():
        raise PolicyError([f"{directory}: policies directory does not exist"])
    errors: list[str] = []
    publishers: list[Publisher] = []
    for path in sorted(directory.glob("*.toml")):
        publishers.extend(_load_file(path, trusted_issuers, errors))
    errors.extend(find_duplicates(publishers))
    if errors:
        raise PolicyError(errors)
    return publishers


def find_duplicates(publishers: Iterable[Publisher]) -> list[str]:
    seen: dict[tuple[str, ...], Publisher] = {}
    errors = []
    for publisher in publishers:
        first = seen.setdefault(publisher.identity_key, publisher)
        if first is not publisher:
            errors.append(
                f"{publisher.source}: duplicate of {first.source}; list every project of one "
                "publisher in a single 'projects' array"
            )
    return errors


def _load_file(
    path: Path, trusted_issuers: Mapping[str, frozenset[str]], errors: list[str]
) -> list[Publisher]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read: {exc}")
        return []
    except tomllib.TOMLDecodeError as exc:
        errors.append(f"{path}: invalid TOML: {exc}")
        return []
    validator = Draft202012Validator(policy_schema())
    schema_errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if schema_errors:
        errors.extend(f"{path}: {_key_path(e.absolute_path)}: {e.message}" for e in schema_errors)
        return []
    publishers = []
    for index, entry in enumerate(document["publisher"]):
        source = f"{path}: publisher[{index}]"
        publisher = PROVIDERS[entry["provider"]].parse_publisher(entry, source)
        if publisher.issuer not in trusted_issuers.get(publisher.provider, frozenset()):
            errors.append(
                f"{source}.issuer: {publisher.issuer!r} is not a configured "
                f"{publisher.provider} issuer (see TRUSTPUB_{publisher.provider.upper()}_ISSUERS)"
            )
            continue
        publishers.append(publisher)
    return publishers


def _key_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
