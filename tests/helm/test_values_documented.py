"""values.yaml documents every key, and values.schema.json describes exactly those keys."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import pytest

from .chart import CHART_DIR

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):")


def undocumented_keys(text: str, schema: dict[str, Any]) -> list[str]:
    """Keys of values.yaml without a comment line directly above them.

    Keys inside values that are Kubernetes objects, lists or free-form maps (everything the
    schema does not describe property by property) are content, not chart keys.
    """
    missing: list[str] = []
    stack: list[tuple[int, str, dict[str, Any]]] = []
    skip_below: int | None = None
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            previous = ""
            continue
        indent = len(line) - len(line.lstrip(" "))
        if skip_below is not None and (indent > skip_below or stripped.startswith("-")):
            previous = line
            continue
        skip_below = None
        match = _KEY.match(line)
        if stripped.startswith("#") or match is None:
            previous = line
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][2] if stack else schema
        node = parent.get("properties", {}).get(match["key"], {})
        path = ".".join([key for _, key, _ in stack] + [match["key"]])
        if not previous.strip().startswith("#"):
            missing.append(path)
        if "properties" in node:
            stack.append((indent, match["key"], node))
        else:
            skip_below = indent
        previous = line
    return missing


def test_every_key_of_values_yaml_is_documented() -> None:
    text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    assert undocumented_keys(text, SCHEMA) == []


def test_the_checker_notices_a_missing_comment() -> None:
    assert undocumented_keys("# a\na:\n  b: 1\n", {"properties": {"a": {"properties": {}}}}) == [
        "a.b"
    ]


def closed_objects(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if node.get("additionalProperties") is False:
        found.append((path, node))
    for key, child in node.get("properties", {}).items():
        found.extend(closed_objects(child, f"{path}.{key}" if path else key))
    return found


@pytest.mark.parametrize(("path", "node"), closed_objects(SCHEMA), ids=lambda x: str(x) or ".")
def test_schema_and_defaults_name_the_same_keys(
    chart: helm.Chart, path: str, node: dict[str, Any]
) -> None:
    defaults: Any = chart.values
    for key in filter(None, path.split(".")):
        defaults = defaults[key]
    assert set(node["properties"]) - {"global"} == set(defaults)


def test_schema_is_draft_07() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
