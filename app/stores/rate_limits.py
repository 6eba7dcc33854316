"""Counting requests per key in fixed windows: in this process, or shared through Redis.

Limits are written in the `limits` notation ("30/minute;300/hour"). In-process, a
request counts against the limits of its key only when all of them allow it, so a
refused request spends nothing.

In-process counting is our own small table rather than `limits`' MemoryStorage: that
storage starts a timer thread on most hits to expire keys, which `make bench` measured
at a fifth of the mint's throughput. Here expired windows are swept inline, at most
once per shortest window, so memory stays bounded by the keys seen in one window.
Shared counting uses `limits`' storage for the URL (Redis, Sentinel), and falls back
to in-process counting while that store is unreachable, trying it again every few
seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import limits
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.errors import ConfigurationError
from app.stores.base import RateLimiter
from app.stores.redis import fail_fast_options

log = logging.getLogger(__name__)

MEMORY_STORAGE = "memory://"
# After the shared store failed: how long to count in process before trying it again.
SHARED_RETRY_SECONDS = 5.0


def rate_limiter(storage_uri: str, limit: str, namespace: str) -> RateLimiter:
    """The limiter for `limit`: per process for memory://, else shared in that store."""
    if storage_uri == MEMORY_STORAGE:
        return MemoryRateLimiter(limit)
    return SharedRateLimiter(storage_uri, limit, namespace)


class MemoryRateLimiter:
    """Fixed windows that start at a key's first request, counted in this process."""

    def __init__(self, limit: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = tuple(
            (item.amount, float(item.get_expiry())) for item in limits.parse_many(limit)
        )
        self._clock = clock
        self._sweep_every = min(seconds for _, seconds in self._limits)
        self._next_sweep = clock() + self._sweep_every
        self._lock = threading.Lock()
        # key -> per limit: [window end, requests counted in it]
        self._windows: dict[str, list[list[float]]] = {}

    def hit(self, key: str) -> int | None:
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            windows = self._windows.get(key)
            if windows is None:
                windows = [[now + seconds, 0.0] for _, seconds in self._limits]
                self._windows[key] = windows
            retry_after = 0.0
            for (amount, seconds), window in zip(self._limits, windows, strict=True):
                if window[0] <= now:
                    window[0], window[1] = now + seconds, 0.0
                if window[1] >= amount:
                    retry_after = max(retry_after, window[0] - now)
            if retry_after:
                return max(1, math.ceil(retry_after))
            for window in windows:
                window[1] += 1
        return None

    def refund(self, key: str) -> None:
        with self._lock:
            for window in self._windows.get(key, ()):
                window[1] = max(0.0, window[1] - 1)

    def __len__(self) -> int:
        """Keys held: what the sweep bounds."""
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        self._windows = {
            key: windows
            for key, windows in self._windows.items()
            if any(end > now for end, _ in windows)
        }
        self._next_sweep = now + self._sweep_every


class SharedRateLimiter:
    """Counts in a `limits` storage (Redis) shared by every process and replica."""

    def __init__(
        self,
        storage_uri: str,
        limit: str,
        namespace: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A store that stops answering must cost a request a second, not forever: one
        # attempt (the in-process fallback takes over), short timeouts, and the same
        # for the sentinels of a redis+sentinel:// URL (they held a hit 7 s otherwise).
        options: dict[str, Any] = fail_fast_options()
        if "+sentinel://" in storage_uri:
            options["sentinel_kwargs"] = fail_fast_options()
        try:
            storage = storage_from_string(storage_uri, **options)
        except (ValueError, limits.errors.ConfigurationError):
            # Not chained: the library's message quotes the URL, and with it the password.
            raise ConfigurationError(
                "rate_limit_storage is not a storage URL of the limits library: memory:// or "
                "redis://[:PASSWORD@]HOST:PORT/DB (not shown: it may hold a password)"
            ) from None
        self._limiter = FixedWindowRateLimiter(storage)
        self._limits = limits.parse_many(limit)
        self._namespace = namespace
        self._clock = clock
        self._fallback = MemoryRateLimiter(limit, clock)
        self._shared_again_at = 0.0

    def hit(self, key: str) -> int | None:
        now = self._clock()
        if now < self._shared_again_at:
            return self._fallback.hit(key)
        try:
            # One round trip per limit; a limit that refuses stops the count there.
            for limit in self._limits:
                if not self._limiter.hit(limit, self._namespace, key):
                    return self._retry_after(limit, key)
        except Exception:  # the storage's own errors (redis, network) vary by backend
            # An unreachable limit store must not stop publishing (the replay store,
            # which guards the security property, fails closed on its own), nor stop
            # limiting: count in this process, and try the store again a little later
            # rather than have every request wait for its timeout.
            self._shared_again_at = now + SHARED_RETRY_SECONDS
            log.warning(
                "rate limit storage unavailable; counting in this process for %g s",
                SHARED_RETRY_SECONDS,
            )
            return self._fallback.hit(key)
        return None

    def refund(self, key: str) -> None:
        if self._clock() < self._shared_again_at:
            self._fallback.refund(key)
            return
        try:
            for limit in self._limits:
                self._limiter.hit(limit, self._namespace, key, cost=-1)
        except Exception:
            # Best effort: the request counted stays counted until its window ends.
            log.warning("rate limit storage unavailable; a refund was not made")

    def _retry_after(self, limit: limits.RateLimitItem, key: str) -> int:
        reset_at, _ = self._limiter.get_window_stats(limit, self._namespace, key)
        return max(1, math.ceil(reset_at - time.time()))
