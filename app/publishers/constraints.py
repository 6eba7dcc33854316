"""Policy constraints beyond identity, shared by every provider: refs, events, runners.

A publisher is found by an exact identity lookup; constraints then narrow *when* it
may publish (only tags `refs/tags/v*`, only protected refs, only `push` events, only
hosted runners). Each provider lists, in one table, which policy keys it accepts and
which claim each one constrains (`rules_from_policy`); the rule kinds live here.

Patterns are deliberately tiny: `*` (any run of characters except `/`) and `?` (one
character except `/`) over a restricted character set, always anchored at both ends.
No user-supplied regular expression is ever compiled, and matching is a hand-written
two-pointer scan, linear in practice and never worse than len(pattern) * len(value):
no pattern can make a request slow. Patterns constrain; they never select publishers.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, Protocol

from app.publishers.model import ClaimCheck

# A verified token's claims, by name (a claim it lacks is None).
Claims = Mapping[str, str | None]
NO_CLAIMS: Claims = MappingProxyType({})

MAX_GLOB_LENGTH = 255
# Letters, digits and the punctuation of git refs, paths and SHAs: enough for every
# claim a constraint reads, and nothing that a shell, a regex or a glob dialect would
# read differently ([, ], {, }, \, !, spaces).
GLOB_LITERALS = frozenset(string.ascii_letters + string.digits + "._/+@:-")
WILDCARDS = frozenset("*?")


@dataclass(frozen=True)
class Glob:
    """An anchored pattern with `*` and `?` that never cross a `/`; exact without them."""

    text: str

    def __post_init__(self) -> None:
        problem = glob_problem(self.text)
        if problem is not None:
            raise ValueError(f"{self.text!r} is not a valid pattern: {problem}")

    @cached_property
    def is_exact(self) -> bool:
        return not WILDCARDS.intersection(self.text)

    def matches(self, value: str) -> bool:
        if self.is_exact:
            return value == self.text
        pattern_segments = self.text.split("/")
        value_segments = value.split("/")
        # Wildcards never match "/", so segments pair up one to one.
        return len(pattern_segments) == len(value_segments) and all(
            _segment_matches(pattern, part)
            for pattern, part in zip(pattern_segments, value_segments, strict=True)
        )


def glob_problem(text: str) -> str | None:
    """Why `text` is not a valid pattern, or None. The policy schema states the same rule."""
    if not text:
        return "it is empty"
    if len(text) > MAX_GLOB_LENGTH:
        return f"it is longer than {MAX_GLOB_LENGTH} characters"
    unexpected = sorted(set(text) - GLOB_LITERALS - WILDCARDS)
    if unexpected:
        return f"character(s) {''.join(unexpected)!r} are not allowed"
    if "**" in text:
        # Reserved: in other glob dialects it crosses "/"; here it would not.
        return "'**' is not supported; use a single '*'"
    return None


def _segment_matches(pattern: str, value: str) -> bool:
    """Wildcard match of one path segment: the classic greedy scan with one backtrack point."""
    p = v = 0
    star = -1  # position in `pattern` of the last '*' seen
    resume = 0  # position in `value` that '*' will swallow up to next
    while v < len(value):
        if p < len(pattern) and pattern[p] in ("?", value[v]) and pattern[p] != "*":
            p += 1
            v += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p, v
            p += 1
        elif star >= 0:
            resume += 1
            p, v = star + 1, resume
        else:
            return False
    return all(char == "*" for char in pattern[p:])


class Rule(Protocol):
    """One constraint on one claim of a verified token."""

    @property
    def claim(self) -> str: ...

    @property
    def key(self) -> str:
        """Canonical text: two publishers whose rules have equal keys constrain alike."""
        ...

    def check(self, received: str | None, claims: Claims = NO_CLAIMS) -> ClaimCheck:
        """The verdict on `received`, the rule's claim. `claims`: all of the token's, for
        a rule whose verdict depends on another (GitHub's reusable workflow at the run's
        own ref); the others ignore them."""
        ...


@dataclass(frozen=True)
class MatchesAny:
    """The claim equals one of the values or matches one of the patterns."""

    claim: str
    patterns: tuple[Glob, ...]

    @property
    def key(self) -> str:
        return f"{self.claim}~" + "|".join(sorted(p.text for p in self.patterns))

    def check(self, received: str | None, claims: Claims = NO_CLAIMS) -> ClaimCheck:
        ok = received is not None and any(p.matches(received) for p in self.patterns)
        return ClaimCheck(self.claim, self._expected, received, ok)

    @cached_property
    def _expected(self) -> str:
        # The same for every token: written once, on the first check.
        listed = ", ".join(repr(p.text) for p in self.patterns)
        if all(p.is_exact for p in self.patterns):
            return listed if len(self.patterns) == 1 else f"one of {listed}"
        return f"matching {listed}" if len(self.patterns) == 1 else f"matching one of {listed}"


@dataclass(frozen=True)
class OneOf:
    """The claim is exactly one of the listed values (case-sensitive)."""

    claim: str
    values: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.claim}=" + "|".join(sorted(self.values))

    def check(self, received: str | None, claims: Claims = NO_CLAIMS) -> ClaimCheck:
        return ClaimCheck(self.claim, self._expected, received, received in self.values)

    @cached_property
    def _expected(self) -> str:
        listed = ", ".join(repr(value) for value in self.values)
        return listed if len(self.values) == 1 else f"one of {listed}"


@dataclass(frozen=True)
class IsTrue:
    """The claim is the string "true" (CI providers send booleans as strings)."""

    claim: str

    @property
    def key(self) -> str:
        return f"{self.claim}=true"

    def check(self, received: str | None, claims: Claims = NO_CLAIMS) -> ClaimCheck:
        return ClaimCheck(self.claim, "'true'", received, received == "true")


RuleFactory = Callable[[Any], Rule]


def matches_any(claim: str) -> RuleFactory:
    """Policy value: a list of exact values and patterns."""
    return lambda values: MatchesAny(claim, tuple(Glob(value) for value in values))


def one_of(claim: str) -> RuleFactory:
    """Policy value: a list of exact values."""
    return lambda values: OneOf(claim, tuple(values))


def equal_to(claim: str) -> RuleFactory:
    """Policy value: one exact value."""
    return lambda value: OneOf(claim, (value,))


def is_true(claim: str) -> RuleFactory:
    """Policy value: `true` (the schema admits nothing else)."""
    return lambda _value: IsTrue(claim)


def rules_from_policy(
    entry: Mapping[str, Any], table: Mapping[str, RuleFactory]
) -> tuple[Rule, ...]:
    """The rules a schema-valid policy entry sets, in the table's order."""
    return tuple(factory(entry[key]) for key, factory in table.items() if key in entry)


def check_rules(rules: tuple[Rule, ...], values: Claims) -> list[ClaimCheck]:
    return [rule.check(values.get(rule.claim), values) for rule in rules]
