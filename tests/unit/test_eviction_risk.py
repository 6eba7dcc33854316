"""Reading whether Redis may evict keys from its `INFO memory` reply."""

from __future__ import annotations

import pytest

from app.stores.redis import eviction_risk


def _info(**fields: str) -> bytes:
    lines = ["# Memory", "used_memory:1000", *(f"{k}:{v}" for k, v in fields.items())]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize(
    ("reply", "risk"),
    [
        (_info(maxmemory="0", maxmemory_policy="noeviction"), None),
        (_info(maxmemory="0", maxmemory_policy="allkeys-lru"), None),
        (_info(maxmemory="1073741824", maxmemory_policy="noeviction"), None),
        (
            _info(maxmemory="1073741824", maxmemory_policy="allkeys-lru"),
            "maxmemory-policy allkeys-lru with maxmemory 1073741824 bytes",
        ),
        (
            _info(maxmemory="100", maxmemory_policy="volatile-ttl"),
            "maxmemory-policy volatile-ttl with maxmemory 100 bytes",
        ),
        # A policy this code does not know evicts as far as it can tell.
        (
            _info(maxmemory="100", maxmemory_policy="volatile-new"),
            "maxmemory-policy volatile-new with maxmemory 100 bytes",
        ),
    ],
)
def test_what_lets_redis_evict_is_read_from_its_memory_info(reply: bytes, risk: str | None) -> None:
    assert eviction_risk(reply) == risk


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        _info(maxmemory="0"),
        _info(maxmemory_policy="noeviction"),
        _info(maxmemory="lots", maxmemory_policy="noeviction"),
        b"\xff\xfe not an INFO reply",
    ],
)
def test_a_reply_that_does_not_say_is_no_answer(reply: bytes) -> None:
    with pytest.raises(ValueError, match="names no maxmemory"):
        eviction_risk(reply)
