"""How far apart the clocks of trustpub's replicas may be.

One replica mints or claims, another checks: every window one judges by its own clock
(an upload token's `nbf`, a replay record's life, a revocation's moment) allows for this.

Redis expires replay records and revocation entries by its own clock, so a replica whose
clock stepped (an NTP step, a VM resumed, a host set wrong) would judge `exp` against
records that are gone, or date revocations and tokens past each other. Each replay claim,
introspection and revocation therefore compares the replica's clock with Redis's, in a
round trip it makes anyway (a revocation: one more), and fails closed when they are more
than STORE_CLOCK_TOLERANCE_SECONDS apart. Half the skew: any two replicas held within it
of Redis are within CLOCK_SKEW_SECONDS of each other, which every window above assumes.
"""

from __future__ import annotations

import logging
import time

from app.errors import StoreUnavailable
from app.metrics import labelled, metrics

CLOCK_SKEW_SECONDS = 30
STORE_CLOCK_TOLERANCE_SECONDS = CLOCK_SKEW_SECONDS // 2

log = logging.getLogger(__name__)


class ClockOffStore(StoreUnavailable):
    """This replica's clock is further from the store's than STORE_CLOCK_TOLERANCE_SECONDS."""


def check_store_clock(now: float, store_now: float) -> None:
    """Raise ClockOffStore when this replica's clock (`now`) is too far from the store's."""
    if abs(now - store_now) > STORE_CLOCK_TOLERANCE_SECONDS:
        raise clock_off(now - store_now)


_LOG_EVERY_SECONDS = 10.0
_next_log_at = 0.0


def clock_off(offset: float) -> ClockOffStore:
    """The error for a replica whose clock is `offset` seconds ahead of the store's, counted
    with the store's errors (their alert sees it) and logged."""
    global _next_log_at
    labelled(metrics().store_errors, "clock").inc()
    now = time.monotonic()
    if now >= _next_log_at:
        # Every request is refused while it lasts: say so every few seconds, not each time.
        _next_log_at = now + _LOG_EVERY_SECONDS
        log.error(
            "this replica's clock is %+.0f s off the token store's (at most %d s allowed): "
            "no token is minted, introspected or revoked here until the clock is right",
            offset,
            STORE_CLOCK_TOLERANCE_SECONDS,
        )
    return ClockOffStore("this service's clock is off; retry in a few seconds")
