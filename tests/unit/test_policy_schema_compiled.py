"""The compiled policy schema against jsonschema: the same verdict on every document.

`load_policy_dir` asks the compiled schema (app.publishers.policy_files) whether a file
is valid, because jsonschema costs about 0.3 ms per publisher; jsonschema only explains
the files it finds invalid. So the compiled schema must never call valid what jsonschema
calls invalid. This differential test holds the two to the same verdict on documents
built from real publishers of every provider, mutated key by key towards and across the
schema's edges.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from integration.policies import github_publisher, gitlab_publisher, google_publisher
from jsonschema import Draft202012Validator

from app.publishers.policy_files import (
    UncompilableSchema,
    compile_schema,
    compiled_policy_schema,
    policy_schema,
)

DIFFERENTIAL = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

REFERENCE = Draft202012Validator(policy_schema())
BASES = [
    github_publisher("https://token.actions.githubusercontent.com"),
    github_publisher(
        "https://token.actions.githubusercontent.com",
        environment=None,
        repository_id=None,
    ),
    gitlab_publisher("https://gitlab.com"),
    google_publisher("https://accounts.google.com"),
]
# Every property any provider knows, and some no provider knows.
KEYS = sorted(
    {
        key
        for definition in policy_schema()["$defs"].values()
        for key in definition.get("properties", {})
    }
    | {"unknown", "Provider", "projects "}
)

# Values at and across the edges the schema draws: patterns (with a trailing newline,
# which `$` alone accepts), lengths, types (true is not 1), enums and consts.
EDGE_STRINGS = [
    "",
    "x",
    "a" * 256,
    "octo-org/demo",
    "octo-org/demo\n",
    "Octo-Org/Demo",
    "65",
    "65\n",
    "0" * 21,
    "release.yml",
    "release.yaml\n",
    "dir/release.yml",
    "pypi",
    "github",
    "gitlab",
    "google",
    "github-hosted",
    "self-hosted",
    "gitlab-hosted",
    "push",
    "pull_request_target",
    "refs/tags/v*",
    "refs/**",
    "refs/heads/main\n",
    "https://token.actions.githubusercontent.com",
    "https://token.actions.githubusercontent.com/",
    "http://example.com",
    "group/sub/project",
    ".gitlab-ci.yml",
    "ci//x.yml",
    "pypi-publisher@octo-project.iam.gserviceaccount.com",
    "Publisher@example.com",
    "octo-org/demo/.github/workflows/release.yml@refs/tags/v1.0.0",
    "8d1c1f3c2b7f4a9e0d6b5a4c3e2f1a0b9c8d7e6f",
    "demo-pkg",
    "Demo_Pkg",
    "-bad-",
]
SCALARS = (
    st.sampled_from(EDGE_STRINGS)
    | st.text(max_size=12)
    | st.sampled_from([0, 1, 65, -1, 1.0, 2.5, True, False, dt.date(2025, 1, 1)])
)
VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=2)
)


def mutate(entry: dict[str, Any], edits: list[tuple[str, str, Any]]) -> dict[str, Any]:
    entry = dict(entry)
    for action, key, value in edits:
        if action == "drop":
            entry.pop(key, None)
        elif action == "duplicate-item" and isinstance(entry.get(key), list) and entry[key]:
            entry[key] = [*entry[key], entry[key][0]]
        elif action == "append-newline" and isinstance(entry.get(key), str):
            entry[key] += "\n"
        else:
            entry[key] = value
    return entry


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["set", "set", "drop", "duplicate-item", "append-newline"]),
        st.sampled_from(KEYS),
        VALUES,
    ),
    max_size=3,
)
ENTRIES = st.builds(mutate, st.sampled_from(BASES), EDITS)


@DIFFERENTIAL
@given(entries=st.lists(ENTRIES, min_size=0, max_size=4))
@example(entries=[dict(base) for base in BASES])
@example(entries=[{**BASES[0], "repository_owner_id": "65\n"}])
@example(entries=[{**BASES[0], "projects": ["demo-pkg", "demo-pkg"]}])
@example(entries=[{**BASES[0], "ref_protected": 1}])
def test_same_verdict_as_jsonschema_for_publisher_lists(entries: list[dict[str, Any]]) -> None:
    document = {"publisher": entries}
    compiled = compiled_policy_schema()
    assert compiled is not None

    assert compiled(document) == REFERENCE.is_valid(document)


@DIFFERENTIAL
@given(document=st.dictionaries(st.sampled_from(["publisher", "extra"]), VALUES, max_size=2))
def test_same_verdict_as_jsonschema_for_any_document_shape(document: dict[str, Any]) -> None:
    compiled = compiled_policy_schema()
    assert compiled is not None

    assert compiled(document) == REFERENCE.is_valid(document)


def test_the_policy_schema_compiles() -> None:
    # If it stopped compiling, start-up would silently fall back to jsonschema alone and
    # a 100,000-publisher directory would take minutes to load again.
    assert compiled_policy_schema() is not None


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^x": {}}},
        {"type": "array", "prefixItems": [{}], "items": {}},
        {"minimum": 1},
        {"$ref": "https://example.com/other.json"},
        {"properties": {"a": {"$id": "https://example.com/nested"}}},
        {"type": "widget"},
        {"pattern": "("},
    ],
    ids=[
        "pattern-properties",
        "prefix-items",
        "unknown-keyword",
        "remote-ref",
        "nested-id",
        "unknown-type",
        "bad-regex",
    ],
)
def test_what_it_cannot_compile_is_refused_not_skipped(schema: dict[str, Any]) -> None:
    with pytest.raises(UncompilableSchema):
        compile_schema(schema)


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        ({"const": 1}, True, False),
        ({"enum": [True]}, 1, False),
        ({"enum": [1]}, 1.0, True),
        ({"type": "integer"}, 1.0, True),
        ({"type": "integer"}, True, False),
        ({"uniqueItems": True}, [1, True], True),
        ({"uniqueItems": True}, [[1], [1.0]], False),
        ({"pattern": "^a$"}, "a\n", True),
        ({"if": {"const": 1}, "then": False}, 1, False),
        ({"if": {"const": 1}, "else": False}, 2, False),
        ({"then": False}, 1, True),
        ({"not": {"type": "string"}}, "x", False),
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}, False),
        ({"additionalProperties": {"type": "string"}, "properties": {"a": {}}}, {"a": 1}, True),
        ({"$defs": {"n": {"type": "string"}}, "items": {"$ref": "#/$defs/n"}}, ["x", 1], False),
    ],
)
def test_keyword_semantics_match_jsonschema(
    schema: dict[str, Any], instance: Any, valid: bool
) -> None:
    assert Draft202012Validator(schema).is_valid(instance) is valid
    assert compile_schema(schema)(instance) is valid


def test_recursive_references_compile() -> None:
    schema = {
        "$defs": {"tree": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
        "$ref": "#/$defs/tree",
    }
    check = compile_schema(schema)

    assert check([[[]], []])
    assert not check([[1]])
