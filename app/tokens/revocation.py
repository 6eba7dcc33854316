"""Revocation and introspection of upload tokens.

A revocation is a moment per scope: "tokens covered by this scope and issued at or
before t are revoked". Scopes are one token (its jti), a project, a repository and a
repository's workflow. Introspection reads the entries of exactly the scopes a token
belongs to, plus the epoch, in one round trip: its cost does not depend on how many
revocations exist. Entries expire once every token they cover has expired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest, InvalidToken, StoreUnavailable
from app.metrics import labelled, metrics
from app.stores.base import RevocationStore
from app.tokens.scopes import project_scope, publisher_scope, token_scope
from app.tokens.verify import UploadTokenVerifier


@dataclass(frozen=True)
class Revocation:
    scope: str
    before: int
    expires_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "expires_at": self.expires_at}


@dataclass(frozen=True)
class TokenRevoker:
    verifier: UploadTokenVerifier
    store: RevocationStore
    clock: Callable[[], float]
    # The longest an upload token can live: how long a bulk entry must be kept.
    max_token_ttl: int

    def revoke_token(self, raw_token: str) -> Revocation | None:
        """Revoke a token that trustpub minted; None for anything else (RFC 7009: not an error)."""
        now = int(self.clock())
        try:
            token = self.verifier.verify(raw_token, now)
        except InvalidToken:
            return None
        return self._revoke(token_scope(token.jti), now, token.expires_at)

    def revoke_jti(self, jti: str) -> Revocation:
        now = int(self.clock())
        return self._revoke(token_scope(jti), now, now + self.max_token_ttl)

    def revoke_project(self, project: str, before: int | None = None) -> Revocation:
        moment = self._moment(before)
        return self._revoke(project_scope(project), moment, moment + self.max_token_ttl)

    def revoke_publisher(
        self, issuer: str, repository: str, workflow: str | None, before: int | None = None
    ) -> Revocation:
        moment = self._moment(before)
        scope = publisher_scope(issuer, repository, workflow)
        return self._revoke(scope, moment, moment + self.max_token_ttl)

    def _moment(self, before: int | None) -> int:
        now = int(self.clock())
        if before is None:
            return now
        if before > now:
            raise InvalidRequest("'before' must not be in the future")
        return before

    def _revoke(self, scope: str, moment: int, expires_at: int) -> Revocation:
        now = int(self.clock())
        # Past `expires_at` every covered token has expired: nothing left to record.
        if expires_at >= now:
            # +1: an entry must outlive the last second in which a covered token is valid.
            self.store.revoke_before(scope, moment, expires_at - now + 1)
            labelled(metrics().revocations, scope.split(":")[1]).inc()
        return Revocation(scope=scope, before=moment, expires_at=expires_at)


@dataclass(frozen=True)
class TokenIntrospector:
    verifier: UploadTokenVerifier
    store: RevocationStore
    clock: Callable[[], float]

    def introspect(self, raw_token: str) -> str | None:
        """RFC 7662's answer for an active token, as JSON text; None for anything else."""
        now = int(self.clock())
        try:
            token = self.verifier.verify(raw_token, now)
        except InvalidToken:
            labelled(metrics().introspections, "inactive").inc()
            return None
        try:
            state = self.store.revocation_state(token.revocation_scopes)
        except StoreUnavailable:
            labelled(metrics().introspections, "store-unavailable").inc()
            raise
        if state.epoch is None or state.epoch.id != token.epoch:
            # The store lost its data since this token was minted: its revocations may
            # be lost too, so it is no longer vouched for.
            labelled(metrics().introspections, "inactive").inc()
            return None
        if any(moment is not None and token.issued_at <= moment for moment in state.revoked_before):
            labelled(metrics().introspections, "inactive").inc()
            return None
        labelled(metrics().introspections, "active").inc()
        return token.introspection
