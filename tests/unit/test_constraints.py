"""The shared constraint rules: what each checks, how it reports, how it compares."""

from __future__ import annotations

from typing import Any

import pytest

from app.publishers.constraints import (
    Glob,
    IsTrue,
    MatchesAny,
    OneOf,
    Rule,
    check_rules,
    equal_to,
    is_true,
    matches_any,
    one_of,
    rules_from_policy,
)
from app.publishers.model import ClaimCheck


@pytest.mark.parametrize(
    ("rule", "received", "expected", "ok"),
    [
        (
            MatchesAny("ref", (Glob("refs/heads/main"),)),
            "refs/heads/main",
            "'refs/heads/main'",
            True,
        ),
        (
            MatchesAny("ref", (Glob("refs/heads/main"), Glob("refs/heads/release"))),
            "refs/heads/dev",
            "one of 'refs/heads/main', 'refs/heads/release'",
            False,
        ),
        (
            MatchesAny("ref", (Glob("refs/tags/v*"),)),
            "refs/tags/v1",
            "matching 'refs/tags/v*'",
            True,
        ),
        (
            MatchesAny("ref", (Glob("refs/heads/main"), Glob("refs/tags/v*"))),
            "refs/tags/v2",
            "matching one of 'refs/heads/main', 'refs/tags/v*'",
            True,
        ),
        (MatchesAny("ref", (Glob("refs/tags/v*"),)), None, "matching 'refs/tags/v*'", False),
        (MatchesAny("ref", (Glob("refs/tags/v*"),)), "", "matching 'refs/tags/v*'", False),
        (OneOf("event_name", ("push",)), "push", "'push'", True),
        (OneOf("event_name", ("push", "release")), "release", "one of 'push', 'release'", True),
        (OneOf("event_name", ("push",)), "Push", "'push'", False),
        (OneOf("event_name", ("push",)), None, "'push'", False),
        (IsTrue("ref_protected"), "true", "'true'", True),
        (IsTrue("ref_protected"), "false", "'true'", False),
        (IsTrue("ref_protected"), "True", "'true'", False),
        (IsTrue("ref_protected"), None, "'true'", False),
    ],
    ids=[
        "exact-equal",
        "exact-list-other",
        "pattern-match",
        "mixed-list-match",
        "claim-missing",
        "claim-empty",
        "one-of-single",
        "one-of-list",
        "one-of-case-sensitive",
        "one-of-missing",
        "true",
        "false",
        "true-other-case",
        "true-missing",
    ],
)
def test_rule_checks(rule: Rule, received: str | None, expected: str, ok: bool) -> None:
    assert rule.check(received) == ClaimCheck(rule.claim, expected, received, ok)


def test_rules_from_policy_follow_the_table_order_and_skip_absent_keys() -> None:
    table = {
        "refs": matches_any("ref"),
        "ref_protected": is_true("ref_protected"),
        "event_names": one_of("event_name"),
        "runner_environment": equal_to("runner_environment"),
    }
    entry: dict[str, Any] = {
        "runner_environment": "github-hosted",
        "refs": ["refs/tags/v*"],
        "unrelated": "ignored",
    }

    rules = rules_from_policy(entry, table)

    assert rules == (
        MatchesAny("ref", (Glob("refs/tags/v*"),)),
        OneOf("runner_environment", ("github-hosted",)),
    )
    assert rules_from_policy({}, table) == ()


def test_check_rules_reads_each_rules_claim() -> None:
    rules: tuple[Rule, ...] = (IsTrue("ref_protected"), OneOf("event_name", ("push",)))
    values = {"ref_protected": "true", "event_name": "schedule", "ref": "refs/heads/main"}

    assert check_rules(rules, values) == [
        ClaimCheck("ref_protected", "'true'", "true", True),
        ClaimCheck("event_name", "'push'", "schedule", False),
    ]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (OneOf("event_name", ("push", "release")), OneOf("event_name", ("release", "push")), True),
        (OneOf("event_name", ("push",)), OneOf("event_name", ("release",)), False),
        (OneOf("event_name", ("push",)), OneOf("pipeline_source", ("push",)), False),
        (
            MatchesAny("ref", (Glob("refs/tags/v*"), Glob("refs/heads/main"))),
            MatchesAny("ref", (Glob("refs/heads/main"), Glob("refs/tags/v*"))),
            True,
        ),
        (
            MatchesAny("ref", (Glob("refs/tags/v*"),)),
            MatchesAny("ref", (Glob("refs/tags/V*"),)),
            False,
        ),
        (IsTrue("ref_protected"), IsTrue("ref_protected"), True),
    ],
    ids=[
        "order-does-not-count",
        "values-count",
        "claim-counts",
        "pattern-order-does-not-count",
        "pattern-case-counts",
        "is-true",
    ],
)
def test_rule_keys_are_canonical(a: Rule, b: Rule, same: bool) -> None:
    assert (a.key == b.key) is same
