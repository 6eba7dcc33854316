"""Finding the publisher a verified token belongs to: exact lookup, then the claim checks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import InvalidPublisher
from app.publishers.model import ProviderClaims, Publisher


@dataclass(frozen=True)
class PublisherMatch:
    publishers: tuple[Publisher, ...]
    projects: frozenset[str]


class PublisherRegistry:
    """Publishers indexed by (issuer, exact lookup key): O(1) in the number registered."""

    def __init__(self, publishers: Iterable[Publisher]) -> None:
        self._index: dict[tuple[str, str], list[Publisher]] = defaultdict(list)
        for publisher in publishers:
            self._index[(publisher.issuer, publisher.lookup_key)].append(publisher)

    def __len__(self) -> int:
        return sum(len(candidates) for candidates in self._index.values())

    def match(self, claims: ProviderClaims) -> PublisherMatch:
        candidates = self._index.get((claims.issuer, claims.lookup_key), [])
        if not candidates:
            raise InvalidPublisher(
                f"no trusted publisher is registered for {claims.lookup_key!r} "
                "with this token's issuer"
            )
        results = [(publisher, publisher.mismatches(claims)) for publisher in candidates]
        matching = [publisher for publisher, mismatches in results if not mismatches]
        if not matching:
            # Show the caller's own claims against the closest publisher of its own
            # repository: enough to fix a typo, and nothing about other projects.
            _, closest = min(results, key=lambda result: len(result[1]))
            raise InvalidPublisher("no trusted publisher matches this token", closest)
        best = max(publisher.specificity for publisher in matching)
        winners = tuple(p for p in matching if p.specificity == best)
        return PublisherMatch(
            publishers=winners,
            projects=frozenset().union(*(p.projects for p in winners)),
        )
