"""Finding the publisher a verified token belongs to: exact lookup, then the claim checks.

`explain` is the one place that runs the checks; `match` decides on its results, so what
`trustpub explain` reports and what the exchange does can never diverge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

from app.errors import InvalidPublisher
from app.publishers.model import ClaimCheck, ProviderClaims, Publisher, failed

if TYPE_CHECKING:
    from app.stores.base import StoredRegistration


@dataclass(frozen=True)
class PublisherMatch:
    publishers: tuple[Publisher, ...]
    projects: frozenset[str]
    # The registrations among `publishers` that are still pending, read from the same
    # snapshot that decided the match (registered publishers only; files have none).
    pending: tuple[StoredRegistration, ...] = ()
    # The publishers among them that pin claims from this, their first token, each with
    # the key its pins are kept under (from the same snapshot).
    first_use: tuple[tuple[Publisher, str], ...] = ()


class PublisherReport(NamedTuple):
    """How one candidate publisher judged a token: every check, passed or not."""

    publisher: Publisher
    checks: tuple[ClaimCheck, ...]

    @property
    def matches(self) -> bool:
        return all(map(_passed, self.checks))

    @property
    def foreign(self) -> bool:
        """Whether the caller carries other immutable IDs than the publisher's: the
        same names, someone else's (a deleted and re-registered owner, say)."""
        ids = self.publisher.id_claims
        return any(not check.ok and check.claim in ids for check in self.checks)


def own_reports(reports: Iterable[PublisherReport]) -> tuple[PublisherReport, ...]:
    """The reports a caller may see: those of publishers whose immutable IDs it has."""
    return tuple(report for report in reports if not report.foreign)


_passed = attrgetter("ok")


class PublisherRegistry:
    """Publishers indexed by (issuer, exact lookup key): O(1) in the number registered."""

    def __init__(self, publishers: Iterable[Publisher]) -> None:
        self._index: dict[tuple[str, str], list[Publisher]] = defaultdict(list)
        self._count = 0
        for publisher in publishers:
            self._index[(publisher.issuer, publisher.lookup_key)].append(publisher)
            self._count += 1

    def __len__(self) -> int:
        # O(1): truthiness of a registry calls this, and the mint path must not scan.
        return self._count

    def explain(self, claims: ProviderClaims) -> tuple[PublisherReport, ...]:
        """The checks of every publisher registered for the token's own issuer and key.

        Only those: publishers of other repositories (or of the same name at another
        issuer) are never looked at, so nothing about them can leak into a report.
        """
        candidates = self._index.get((claims.issuer, claims.lookup_key), [])
        return tuple(PublisherReport(p, p.checks(claims)) for p in candidates)

    def match(self, claims: ProviderClaims) -> PublisherMatch:
        return choose(claims, self.explain(claims))


def choose(
    claims: ProviderClaims,
    reports: Sequence[PublisherReport],
    authority: Callable[[Publisher], Hashable] | None = None,
) -> PublisherMatch:
    """The most specific matching publishers; raises InvalidPublisher naming what differs.

    Specificity decides only among publishers of one `authority` (whoever declared
    them; all of them are one when it is None): a more specific publisher narrows what
    its own authority's less specific ones grant, and never what another's grant.
    """
    if not reports:
        raise InvalidPublisher(
            f"no trusted publisher is registered for {claims.lookup_key!r} with this token's issuer"
        )
    matching = [report.publisher for report in reports if report.matches]
    if not matching:
        # Show the caller's own claims against the closest publisher of its own
        # repository: enough to fix a typo, and nothing about other projects. A caller
        # whose immutable IDs no publisher has is not that repository's owner: it learns
        # which of its IDs differ, never the other checks (workflow, environment, refs).
        own = own_reports(reports)
        if own:
            closest = min(own, key=lambda report: len(failed(report.checks)))
            mismatches = failed(closest.checks)
        else:
            ids = reports[0].publisher.id_claims
            mismatches = tuple(
                check.mismatch for check in reports[0].checks if not check.ok and check.claim in ids
            )
        raise InvalidPublisher("no trusted publisher matches this token", mismatches)
    if len(matching) == 1:  # the common case: one publisher per repository and workflow
        return PublisherMatch(publishers=(matching[0],), projects=matching[0].projects)
    if authority is None:
        winners = _most_specific(matching)
    else:
        groups: dict[Hashable, list[Publisher]] = defaultdict(list)
        for publisher in matching:
            groups[authority(publisher)].append(publisher)
        winners = tuple(chain.from_iterable(map(_most_specific, groups.values())))
    return PublisherMatch(
        publishers=winners,
        projects=frozenset().union(*(p.projects for p in winners)),
    )


def _most_specific(publishers: Sequence[Publisher]) -> tuple[Publisher, ...]:
    best = max(publisher.specificity for publisher in publishers)
    return tuple(p for p in publishers if p.specificity == best)
