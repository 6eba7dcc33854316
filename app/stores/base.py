"""Store Protocols. Implementations raise `StoreUnavailable` when they cannot answer.

The epoch is how data loss is noticed: one value, created once, embedded in every
upload token and returned with every replay claim. If the store loses its data
(flush, restart without persistence, failover to an empty replica) the epoch is gone;
the next operation creates a new one, and every token minted or exchanged before it
is treated as revoked or replayed (see `app.tokens.introspection` and `app.exchange`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Epoch:
    id: str
    # Unix seconds when this epoch began; nothing issued before it can be vouched for.
    created_at: int

    def encode(self) -> str:
        return f"{self.id}:{self.created_at}"

    @classmethod
    def decode(cls, value: str) -> Epoch:
        epoch_id, _, created_at = value.rpartition(":")
        return cls(id=epoch_id, created_at=int(created_at))


@dataclass(frozen=True)
class ClaimResult:
    first: bool
    epoch: Epoch


@dataclass(frozen=True)
class RevocationState:
    """The current epoch (None: lost) and, per requested key, the revocation moment."""

    epoch: Epoch | None
    revoked_before: tuple[int | None, ...]


class ReplayStore(Protocol):
    def claim_once(self, key: str, ttl_seconds: int) -> ClaimResult:
        """Atomically record `key` for `ttl_seconds`, in one round trip with the epoch."""
        ...


class RevocationStore(Protocol):
    def revoke_before(self, key: str, moment: int, ttl_seconds: int) -> None:
        """Record that what `key` covers is revoked if issued at or before `moment`.

        Keeps the latest moment when called again; expires after `ttl_seconds`, when
        every token it covers has expired anyway.
        """
        ...

    def revocation_state(self, keys: Sequence[str]) -> RevocationState:
        """The epoch and the moments recorded for `keys`, in one round trip."""
        ...

    def current_epoch(self) -> Epoch:
        """The epoch, created if missing."""
        ...


class RateLimiter(Protocol):
    def hit(self, key: str) -> int | None:
        """Count one request for `key`: None if allowed, else seconds until it would be."""
        ...


class HealthCheck(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...
