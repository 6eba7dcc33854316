"""The exchange use case: verify -> match -> claim the jti -> mint -> record.

This is the only place that orders those steps; views call it, and it knows nothing
about HTTP.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.clocks import CLOCK_SKEW_SECONDS
from app.errors import (
    InvalidReuseToken,
    NotEnabled,
    RateLimited,
    StoreUnavailable,
    TrustpubError,
)
from app.explain import public_source
from app.metrics import labelled, metrics
from app.oidc.verify import (
    LEEWAY_SECONDS,
    TrustedIssuers,
    VerifiedIdentity,
    replay_record_ttl,
    verify_identity_token,
)
from app.publishers.model import Provider, ProviderClaims, Publisher
from app.publishers.registry import PublisherMatch, PublisherRegistry
from app.stores.base import RateLimiter, ReplayStore, StoredRegistration
from app.tokens.mint import MintedToken, UploadTokenMinter, new_jti

if TYPE_CHECKING:
    from app.audit import AuditTrail
    from app.registrations import LivePublishers

log = logging.getLogger(__name__)

# How long after a data loss began a new epoch its tokens may still predate it. A token
# exchanged just before the loss carries an `iat` by the issuer's clock, which a replica
# accepts up to LEEWAY_SECONDS ahead of its own; the epoch is dated by Redis's clock, which
# a replica's may run up to CLOCK_SKEW_SECONDS ahead of.
EPOCH_MARGIN_SECONDS = LEEWAY_SECONDS + CLOCK_SKEW_SECONDS


@dataclass(frozen=True)
class TokenExchange:
    issuers: TrustedIssuers
    providers: dict[str, Provider]
    publishers: PublisherRegistry
    replay: ReplayStore
    publisher_limits: RateLimiter
    minter: UploadTokenMinter
    audience: str
    enabled: bool
    clock: Callable[[], float]
    # Registered publishers (pending ones are converted on their first match) and the
    # audit trail; None where only policy files exist (the CLI's explain).
    registrations: LivePublishers | None = None
    audit: AuditTrail | None = None
    # Seconds after the replay store's epoch began during which a token's `iat` may still
    # predate the data loss that began it (EPOCH_MARGIN_SECONDS). 0 for in-memory stores
    # (development only), whose epoch is the process's start, so that a fresh `make run`
    # mints at once.
    epoch_margin: int = EPOCH_MARGIN_SECONDS

    def exchange(self, raw_token: str) -> MintedToken:
        if not self.enabled:
            labelled(metrics().mints, "unknown", NotEnabled.code).inc()
            raise NotEnabled("trusted publishing is disabled on this index")
        now = int(self.clock())
        try:
            identity = verify_identity_token(raw_token, self.issuers, self.audience, now)
        except TrustpubError as exc:
            labelled(metrics().mints, "unknown", exc.code).inc()
            raise
        provider = identity.issuer.provider
        try:
            minted = self._mint_for(identity, now)
        except TrustpubError as exc:
            labelled(metrics().mints, provider, exc.code).inc()
            self._record_refusal(identity, exc)
            raise
        labelled(metrics().mints, provider, "success").inc()
        return minted

    def _mint_for(self, identity: VerifiedIdentity, now: int) -> MintedToken:
        provider = self.providers[identity.issuer.provider]
        claims = provider.parse_claims(identity.issuer.url, identity.claims)
        match = self.publishers.match(claims)
        # Counted per publisher identity after matching, so tokens of other
        # repositories cannot spend this one's budget, and before the jti is claimed,
        # so a refused token can be retried.
        limit_key = f"{claims.issuer}\x00{claims.lookup_key}"
        retry_after = self.publisher_limits.hit(limit_key)
        if retry_after is not None:
            raise RateLimited("too many upload tokens for this publisher; retry later", retry_after)
        if match.first_use and self.registrations is not None:
            # A publisher without immutable IDs pins them from its first token; until
            # this process's snapshot holds them, every match asks the store (rare: a
            # publisher's first mints only).
            for publisher, pin_key in match.first_use:
                self._pin_on_first_use(publisher, pin_key, claims)
        # Claimed after matching (a token that matches nothing is not burned) and
        # before minting (two concurrent exchanges cannot both mint). A token without a
        # jti (Google) is identified by what its issuer signed: it is exchanged once too.
        if identity.jti is not None:
            replay_key = "jti:" + _replay_digest(identity.issuer.url, identity.jti)
        else:
            replay_key = "jti:" + _signed_replay_digest(identity.issuer.url, identity.signed_digest)
        # The common case (no pending publisher to convert) knows everything its audit
        # record says before the claim: the claim script stores it, in the same round
        # trip, only if this exchange wins. The upload token's id is chosen first for it,
        # and claims the record: random and unknown outside this exchange, it lets a claim
        # sent again after a lost reply know itself from a replay.
        jti = new_jti()
        record = None
        if self.audit is not None and not match.pending:
            record = self._mint_record(claims.identity, match.projects, jti, match)
        claim = self.replay.claim_once(
            replay_key,
            jti,
            replay_record_ttl(identity, now),
            audit=record,
            # The record is stored only if the epoch check below lets the mint go on.
            epoch_began_before=identity.issued_at - self.epoch_margin,
            # Read again: `now` predates the verification (a key fetch may have waited).
            clock=int(self.clock()),
        )
        if not claim.first:
            # A replay spends nothing of its publisher's budget: anyone holding a used
            # token could otherwise keep the publisher refused with 429.
            self.publisher_limits.refund(limit_key)
            raise InvalidReuseToken("this OIDC token has already been exchanged")
        epoch = claim.epoch
        if identity.issued_at <= epoch.created_at + self.epoch_margin:
            # The store lost its data after this token was issued: it may have been
            # exchanged before the loss, and the record of that is gone. `iat` has
            # whole seconds, so a token of the epoch's own second is ambiguous: refused;
            # so is one whose issuer's clock, ahead of ours, may have dated it later.
            raise InvalidReuseToken(
                "this OIDC token predates a reset of the replay store; request a new token"
            )
        projects = match.projects
        converted: list[StoredRegistration] = []
        conversions: dict[str, dict[str, str]] = {}
        if match.pending and self.registrations is not None:
            if self.audit is not None:
                # Stored by the conversion itself, for each pending publisher it converts.
                conversions = {
                    registration.id: self._conversion_record(claims.identity, registration)
                    for registration in match.pending
                }
            projects, converted = self.registrations.convert_matched(match, now, conversions)
        minted = self.minter.mint(projects, claims.identity, epoch.id, now, jti=jti)
        # The audit record's log line is the mint's only one: it names the upload
        # token's jti, projects and the CI identity.
        if record is not None and self.audit is not None:
            self.audit.log(record)  # stored by the claim already
        elif self.audit is not None:
            self._record_conversion(claims.identity, minted, match, converted, conversions)
        return minted

    def _pin_on_first_use(self, publisher: Publisher, pin_key: str, claims: ProviderClaims) -> None:
        assert self.registrations is not None
        if self.audit is None:
            self.registrations.pin_on_first_use(publisher, pin_key, claims)
            return
        pins = ",".join(
            f"{claim}={claims.values.get(claim)}" for claim in publisher.pins_on_first_use
        )
        fields: dict[str, str | None] = {
            "publisher_source": public_source(publisher.source),
            "projects": ",".join(sorted(publisher.projects)),
            "pins": pins,
        }
        fields |= {key: claims.identity.get(key) or None for key in _AUDITED_IDENTITY}
        record = self.audit.prepare(
            "publisher-pin", claims.identity.get("provider", "oidc"), fields
        )
        if self.registrations.pin_on_first_use(publisher, pin_key, claims, audit=record):
            self.audit.log(record)  # stored by the pin itself

    def _record_refusal(self, identity: VerifiedIdentity, refusal: TrustpubError) -> None:
        """Every refusal of a verified token is audited (security.md): its claims are the
        issuer's word, worth a record for whoever debugs a failing publish or looks for
        someone trying to publish as a project. The refusal stands whether or not the
        record could be stored."""
        # `sub` names the caller for every provider (repository, project, account).
        subject = identity.claims.get("sub")
        fields = {
            "code": refusal.code,
            "reason": refusal.description,
            "issuer": identity.issuer.url,
            "subject": subject if isinstance(subject, str) else None,
        }
        if self.audit is None:
            log.info("exchange refused: %r", fields)  # repr(): a hostile value stays on one line
            return
        record = self.audit.prepare("mint-refused", identity.issuer.provider, fields)
        if not isinstance(refusal, StoreUnavailable):
            try:
                self.audit.append_refusal(record)
                return
            except StoreUnavailable:
                pass
        self.audit.log(record)  # the store cannot take it: the log line at least

    def _mint_record(
        self,
        identity: Mapping[str, str],
        projects: frozenset[str],
        jti: str,
        match: PublisherMatch,
    ) -> dict[str, str]:
        assert self.audit is not None
        fields = {
            "projects": ",".join(sorted(projects)),
            "jti": jti,
            "publisher_source": ",".join(sorted(public_source(p.source) for p in match.publishers)),
        }
        for key in _AUDITED_IDENTITY:
            # An empty claim (no environment) is left out like an absent one.
            if value := identity.get(key):
                fields[key] = value
        return self.audit.prepare("mint", identity.get("provider", "oidc"), fields)

    def _conversion_record(
        self, identity: Mapping[str, str], registration: StoredRegistration
    ) -> dict[str, str]:
        assert self.audit is not None
        fields: dict[str, str | None] = {
            "project": registration.project,
            "publisher_id": registration.id,
        }
        fields |= {key: identity.get(key) or None for key in _AUDITED_IDENTITY}
        return self.audit.prepare("publisher-convert", identity.get("provider", "oidc"), fields)

    def _record_conversion(
        self,
        identity: Mapping[str, str],
        minted: MintedToken,
        match: PublisherMatch,
        converted: list[StoredRegistration],
        conversions: Mapping[str, Mapping[str, str]],
    ) -> None:
        # A mint that converted pending publishers: its projects are known only after
        # the conversion, so its record is written after minting, before answering
        # (a mint that cannot be recorded is refused with 503). Rare: first uploads only.
        assert self.audit is not None
        for registration in converted:
            self.audit.log(conversions[registration.id])  # stored by the conversion
        record = self._mint_record(identity, frozenset(minted.projects), minted.jti, match)
        self.audit.append(record)


# The identity claims an audit record keeps: who published, from where.
_AUDITED_IDENTITY = (
    "provider",
    "issuer",
    "repository",
    "workflow",
    "environment",
    "email",
    "run_id",
    "sha",
)


def _replay_digest(issuer: str, jti: str) -> str:
    # Hashing bounds the key size whatever the jti, and keeps issuers apart.
    material = f"{issuer}\x00{jti}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def _signed_replay_digest(issuer: str, signed_digest: str) -> str:
    # Its own personalisation keeps these keys apart from every jti's, whatever a jti holds.
    material = f"{issuer}\x00{signed_digest}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(material, digest_size=16, person=b"trustpub-signed").hexdigest()
