"""Counting requests per key in a window, with the `limits` library flask-limiter uses."""

from __future__ import annotations

import logging
import math
import time

import limits
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)


class LimitsRateLimiter:
    """One limit string (e.g. "30/minute;300/hour") over memory:// or a redis:// store."""

    def __init__(self, storage_uri: str, limit: str, namespace: str) -> None:
        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri))
        self._limits = limits.parse_many(limit)
        self._namespace = namespace

    def hit(self, key: str) -> int | None:
        """Count one request for `key`: None if allowed, else seconds until it would be."""
        try:
            for limit in self._limits:
                if not self._limiter.hit(limit, self._namespace, key):
                    reset_at, _ = self._limiter.get_window_stats(limit, self._namespace, key)
                    return max(1, math.ceil(reset_at - time.time()))
        except Exception:  # the storage's own errors (redis, network) vary by backend
            # An unreachable limit store must not stop publishing: the replay store,
            # which guards the security property, fails closed on its own.
            log.warning("rate limit storage unavailable; not counting", exc_info=True)
        return None
