"""How far apart the clocks of trustpub's replicas may be.

One replica mints or claims, another checks: every window one judges by its own clock
(an upload token's `nbf`, a replay record's life, a revocation's moment) allows for this.
"""

CLOCK_SKEW_SECONDS = 30
