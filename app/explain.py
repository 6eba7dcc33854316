"""The explain use case: verify a token and say, publisher by publisher, what matched.

It runs exactly the exchange's steps up to the decision (`verify_identity_token`, the
provider's `parse_claims`, `PublisherRegistry.explain` and `match`), then stops: nothing
is minted and the token's `jti` is not claimed, so the same token can still be exchanged.

What a caller learns is bounded the same way as the exchange's `invalid-publisher`
description: a token that does not verify gets the normal error; a verified one sees
only the publishers registered for its *own* issuer and lookup key (its repository,
project or account), never anyone else's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import Any

from app.errors import InvalidPendingPublisher, InvalidPublisher, NotEnabled
from app.oidc.verify import TrustedIssuers, verify_identity_token
from app.publishers.model import ClaimCheck, Provider
from app.publishers.registry import PublisherRegistry, PublisherReport, own_reports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    issuer: str
    provider: str
    lookup_key: str
    reports: tuple[PublisherReport, ...]
    # What the exchange would do: the projects it would mint for (empty if none)...
    projects: frozenset[str]
    # ... or why it would refuse (`invalid-publisher`'s description).
    refusal: str | None
    selected: frozenset[str]  # sources of the publishers the exchange would use

    def as_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "provider": self.provider,
            "lookup_key": self.lookup_key,
            "would_mint": self.refusal is None,
            "projects": sorted(self.projects),
            "reason": self.refusal,
            "publishers": [
                {
                    "source": public_source(report.publisher.source),
                    "matches": report.matches,
                    "selected": report.publisher.source in self.selected,
                    "specificity": report.publisher.specificity,
                    "projects": sorted(report.publisher.projects),
                    "checks": [_check_dict(check) for check in report.checks],
                }
                for report in self.reports
            ],
        }


@lru_cache(maxsize=4096)  # on every mint's audit record; sources are few and fixed
def public_source(source: str) -> str:
    """`demo.toml: publisher[0]` of `/etc/trustpub/policies/demo.toml: publisher[0]`.

    Enough for the maintainer to find the publisher; the server's directories are not
    the caller's business. File names are unique: policies are one flat directory.
    """
    path, separator, rest = source.partition(": ")
    return PurePath(path).name + separator + rest if separator else source


def _check_dict(check: ClaimCheck) -> dict[str, Any]:
    return {
        "claim": check.claim,
        "expected": check.expected,
        "received": check.received,
        "ok": check.ok,
    }


@dataclass(frozen=True)
class TokenExplainer:
    issuers: TrustedIssuers
    providers: Mapping[str, Provider]
    publishers: PublisherRegistry
    audience: str
    enabled: bool
    clock: Callable[[], float]

    def explain(self, raw_token: str) -> Explanation:
        if not self.enabled:
            raise NotEnabled("trusted publishing is disabled on this index")
        identity = verify_identity_token(raw_token, self.issuers, self.audience, int(self.clock()))
        provider = self.providers[identity.issuer.provider]
        # A token whose claims are malformed (a missing claim, pull_request_target) gets
        # the exchange's own invalid-publisher error, which names the claim.
        claims = provider.parse_claims(identity.issuer.url, identity.claims)
        # Only the publishers whose immutable IDs the caller has: the same repository
        # name re-registered by someone else learns nothing of the former owner's.
        reports = own_reports(self.publishers.explain(claims))
        try:
            # The exchange's own decision (a registry may refuse more than the checks
            # say, e.g. a pending publisher whose project exists now).
            match = self.publishers.match(claims)
        except (InvalidPublisher, InvalidPendingPublisher) as refusal:
            projects: frozenset[str] = frozenset()
            selected: frozenset[str] = frozenset()
            reason: str | None = refusal.description
        else:
            projects = match.projects
            selected = frozenset(p.source for p in match.publishers)
            reason = None
        log.info(
            "explained: issuer=%s lookup_key=%r publishers=%d would_mint=%s",
            identity.issuer.url,
            claims.lookup_key,
            len(reports),
            reason is None,
        )
        return Explanation(
            issuer=identity.issuer.url,
            provider=provider.name,
            lookup_key=claims.lookup_key,
            reports=reports,
            projects=projects,
            refusal=reason,
            selected=selected,
        )
