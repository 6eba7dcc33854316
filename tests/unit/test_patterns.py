"""`Glob`: the only patterns a policy may use: validated at load, anchored, never slow."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from app.publishers.constraints import MAX_GLOB_LENGTH, Glob, glob_problem
from app.publishers.policy_files import policy_schema


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        # The tag edge everybody asks about: v* takes release candidates too ...
        ("refs/tags/v*", "refs/tags/v1.2.0", True),
        ("refs/tags/v*", "refs/tags/v1.2.0-rc.1", True),
        # ... an exact value takes exactly one ref ...
        ("refs/tags/v1.2.0", "refs/tags/v1.2.0", True),
        ("refs/tags/v1.2.0", "refs/tags/v1.2.0-rc.1", False),
        ("refs/tags/v1.2.0", "refs/tags/v1.2.01", False),
        # ... and '?' counts characters: final releases with one-digit parts only.
        ("refs/tags/v?.?.?", "refs/tags/v1.2.0", True),
        ("refs/tags/v?.?.?", "refs/tags/v1.2.0-rc.1", False),
        ("refs/tags/v?.?.?", "refs/tags/v1.2.10", False),
        ("refs/tags/v*.*.*", "refs/tags/v1.2.10", True),
        ("refs/tags/v*.*.*", "refs/tags/v1.2", False),
        # Anchored at both ends.
        ("refs/tags/v*", "refs/tags/release-v1", False),
        ("refs/tags/v*", "xrefs/tags/v1", False),
        ("refs/tags/v1*", "refs/tags/v1", True),
        ("refs/heads/main", "refs/heads/main2", False),
        ("refs/heads/main", "refs/heads/mai", False),
        # Wildcards never cross "/".
        ("refs/tags/v*", "refs/tags/v1/evil", False),
        ("refs/heads/*", "refs/heads/feature/x", False),
        ("refs/*/main", "refs/heads/main", True),
        ("refs/*/main", "refs/heads/x/main", False),
        ("refs/tags/?", "refs/tags//", False),
        # '*' may match nothing, '?' exactly one character.
        ("refs/tags/v*", "refs/tags/v", True),
        ("refs/tags/v?", "refs/tags/v", False),
        ("refs/tags/v?", "refs/tags/v12", False),
        # Everything else is literal: '.' and '+' are not regex operators, case counts.
        ("refs/tags/v1.2.0", "refs/tags/v1x2x0", False),
        ("refs/tags/v1+build", "refs/tags/v1+build", True),
        ("refs/tags/v1+build", "refs/tags/v11build", False),
        ("refs/heads/main", "refs/heads/Main", False),
        ("refs/tags/V*", "refs/tags/v1", False),
        # Backtracking over several stars.
        ("refs/tags/*-rc.*", "refs/tags/v1.0-rc.2", True),
        ("refs/tags/*-rc.*", "refs/tags/v1.0-rc", False),
        ("refs/tags/*a*b", "refs/tags/xaybab", True),
        ("refs/tags/*a*b", "refs/tags/xaybba", False),
        # A value containing a wildcard character matches only as a literal would.
        ("refs/tags/v*", "refs/tags/v*", True),
        ("refs/tags/v1", "refs/tags/v*", False),
        ("refs/tags/v?", "refs/tags/v?", True),
    ],
)
def test_matches(pattern: str, value: str, matches: bool) -> None:
    assert Glob(pattern).matches(value) is matches


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("x" * (MAX_GLOB_LENGTH + 1), "longer than"),
        ("refs/tags/[0-9]*", "'[]'"),
        ("refs/tags/v{1,2}", "',{}'"),
        ("refs/tags/v.*$", "'$'"),
        ("refs/tags/v\\d", "'\\\\'"),
        ("refs/tags/v 1", "' '"),
        ("refs/tags/v1\n", "'\\n'"),
        ("refs/heads/ma!n", "'!'"),
        ("refs/tags/**", "'**' is not supported"),
        ("refs/**/v1", "'**' is not supported"),
        ("refs/tags/vé", "'é'"),
    ],
)
def test_invalid_patterns_are_refused(text: str, problem: str) -> None:
    found = glob_problem(text)
    assert found is not None
    assert problem in found
    with pytest.raises(ValueError, match="is not a valid pattern"):
        Glob(text)


@pytest.mark.parametrize(
    "text",
    [
        "refs/heads/main",
        "refs/tags/v*",
        "x" * MAX_GLOB_LENGTH,
        "a?b",
        "*",
        "refs/tags/v1.0+b_2:x@y-z",
    ],
)
def test_valid_patterns(text: str) -> None:
    assert glob_problem(text) is None
    assert Glob(text).text == text


def test_is_exact() -> None:
    assert Glob("refs/heads/main").is_exact
    assert not Glob("refs/heads/*").is_exact
    assert not Glob("refs/heads/ma?n").is_exact


def test_pathological_patterns_stay_fast() -> None:
    # Regex engines backtrack exponentially on such pairs; the scan must not.
    pattern = Glob("*a" * 127 + "b")
    value = "a" * 250

    started = time.perf_counter()
    assert not pattern.matches(value)
    assert not Glob("?" * 200 + "*b").matches("a" * 250)
    assert time.perf_counter() - started < 0.5


def _reference(pattern: str, value: str) -> bool:
    """fnmatch.translate-like anchoring, with wildcards that do not cross '/'."""
    body = "".join(
        "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(body, value, flags=re.DOTALL) is not None


_PATTERNS = st.text(alphabet="ab/.*?", min_size=1, max_size=12).filter(
    lambda text: glob_problem(text) is None
)
_VALUES = st.text(alphabet="ab/.*?", max_size=14)


@settings(max_examples=500, deadline=None)
@given(pattern=_PATTERNS, value=_VALUES)
def test_matcher_agrees_with_an_anchored_reference(pattern: str, value: str) -> None:
    assert Glob(pattern).matches(value) is _reference(pattern, value)


@settings(max_examples=300, deadline=None)
@given(pattern=_PATTERNS)
def test_every_pattern_matches_its_own_literal_expansions(pattern: str) -> None:
    assert Glob(pattern).matches(pattern.replace("*", "").replace("?", "a"))


_GLOB_SCHEMA = {"$ref": "#/$defs/glob", "$defs": policy_schema()["$defs"]}


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet="az09._/+@:-*?", max_size=20),
        st.text(max_size=20),
        st.text(alphabet="ab*?\n[]{}\\ ", max_size=8),
    )
)
def test_the_policy_schema_states_the_same_rule(text: str) -> None:
    # A pattern the schema admits must compile at load time, and the reverse: the loader
    # relies on the schema, and the schema is what editors and CI check policies with.
    schema_ok = Draft202012Validator(_GLOB_SCHEMA).is_valid(text)
    assert schema_ok is (glob_problem(text) is None), text


def test_schema_rule_at_the_length_limit() -> None:
    validator = Draft202012Validator(_GLOB_SCHEMA)
    assert validator.is_valid("a" * MAX_GLOB_LENGTH)
    assert not validator.is_valid("a" * (MAX_GLOB_LENGTH + 1))
