"""Store Protocols. Implementations raise `StoreUnavailable` when they cannot answer."""

from __future__ import annotations

from typing import Protocol


class ReplayStore(Protocol):
    def claim_once(self, key: str, ttl_seconds: int) -> bool:
        """Atomically record `key` for `ttl_seconds`; False if it was already recorded."""
        ...


class HealthCheck(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...
