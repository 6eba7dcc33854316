"""In-process stores for development and unit tests: one process only, lost on restart."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expires: dict[str, float] = {}
        self._expiry_heap: list[tuple[float, str]] = []

    def claim_once(self, key: str, ttl_seconds: int) -> bool:
        now = self._clock()
        with self._lock:
            self._purge(now)
            if key in self._expires:
                return False
            expires = now + ttl_seconds
            self._expires[key] = expires
            heapq.heappush(self._expiry_heap, (expires, key))
            return True

    def ping(self) -> None:
        return None

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expires)

    def _purge(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            if self._expires.get(key) == expires:
                del self._expires[key]
