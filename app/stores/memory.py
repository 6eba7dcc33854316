"""In-process stores for development and unit tests: one process only, lost on restart.

Losing everything on restart is exactly the data loss the epoch detects: a new process
has a new epoch, so tokens minted by an earlier one are no longer vouched for.
"""

from __future__ import annotations

import heapq
import secrets
import threading
import time
from collections.abc import Callable, Sequence

from app.stores.base import ClaimResult, Epoch, RevocationState


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._epoch = Epoch(id=secrets.token_hex(8), created_at=int(clock()))

    def claim_once(self, key: str, ttl_seconds: int) -> ClaimResult:
        now = self._clock()
        with self._lock:
            self._purge(now)
            if key in self._values:
                return ClaimResult(first=False, epoch=self._epoch)
            self._set(key, 1, now + ttl_seconds)
            return ClaimResult(first=True, epoch=self._epoch)

    def revoke_before(self, key: str, moment: int, ttl_seconds: int) -> None:
        now = self._clock()
        with self._lock:
            self._purge(now)
            current = self._values.get(key)
            if current is None or current[0] < moment:
                self._set(key, moment, now + ttl_seconds)

    def revocation_state(self, keys: Sequence[str]) -> RevocationState:
        with self._lock:
            self._purge(self._clock())
            values = tuple(entry[0] if (entry := self._values.get(k)) else None for k in keys)
        return RevocationState(epoch=self._epoch, revoked_before=values)

    def current_epoch(self) -> Epoch:
        return self._epoch

    def ping(self) -> None:
        return None

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._values)

    def _set(self, key: str, value: int, expires: float) -> None:
        self._values[key] = (value, expires)
        heapq.heappush(self._expiry_heap, (expires, key))

    def _purge(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self._values.get(key)
            if entry is not None and entry[1] == expires:
                del self._values[key]
