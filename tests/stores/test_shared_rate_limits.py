"""Rate limits shared through a real Redis, and what happens while it is down."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from limits.strategies import FixedWindowRateLimiter
from support.ports import free_port
from support.redis_server import RedisServer

from app.stores.rate_limits import SHARED_RETRY_SECONDS, SharedRateLimiter, rate_limiter


def test_two_limiters_on_one_redis_share_the_budget(redis_url: str) -> None:
    first = rate_limiter(redis_url, "3/minute", "trustpub/test")
    second = rate_limiter(redis_url, "3/minute", "trustpub/test")
    assert isinstance(first, SharedRateLimiter)

    answers = [limiter.hit("client") for limiter in (first, second, first, second)]

    assert answers[:3] == [None, None, None]
    assert answers[3] is not None
    assert 1 <= answers[3] <= 60


def test_namespaces_keep_budgets_apart(redis_url: str) -> None:
    mint = rate_limiter(redis_url, "1/minute", "trustpub/mint")
    explain = rate_limiter(redis_url, "1/minute", "trustpub/explain")
    assert [mint.hit("a"), explain.hit("a"), mint.hit("a")][:2] == [None, None]
    assert mint.hit("a") is not None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unreachable_store_falls_back_to_counting_in_process_then_is_retried(
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("limits-redis"))
    server.start()
    clock = Clock()
    tries: list[str] = []
    real_hit = FixedWindowRateLimiter.hit

    def counting_hit(self: FixedWindowRateLimiter, *args: Any, **kwargs: Any) -> bool:
        tries.append("shared")
        return real_hit(self, *args, **kwargs)

    monkeypatch.setattr(FixedWindowRateLimiter, "hit", counting_hit)
    try:
        limiter = SharedRateLimiter(server.url, "2/minute", "trustpub/test", clock)
        assert limiter.hit("client") is None
        server.kill()
        with caplog.at_level(logging.WARNING, logger="app.stores.rate_limits"):
            answers = [limiter.hit("client") for _ in range(3)]
            shared_tries_while_down = len(tries)
            clock.now += SHARED_RETRY_SECONDS
            server.start()
            after_retry = limiter.hit("client")
    finally:
        server.stop()
    # Still limited while the store was down (in this process, from zero) ...
    assert answers[:2] == [None, None]
    assert answers[2] is not None
    # ... the store was tried once for the three, and said once, not per request ...
    assert shared_tries_while_down == 2
    warnings = [r for r in caplog.records if "counting in this process" in r.getMessage()]
    assert len(warnings) == 1
    # ... and used again once the retry delay had passed (a fresh server: a fresh count).
    assert after_retry is None
    assert len(tries) == 3


@pytest.mark.parametrize(
    "uri",
    ["redis://127.0.0.1:{}", "redis+sentinel://127.0.0.1:{},127.0.0.1:{}/mymaster"],
    ids=["redis", "sentinel"],
)
def test_a_store_that_refuses_falls_back_at_once(uri: str) -> None:
    # Nothing listens on these ports. A fail-fast bound, not a performance measurement:
    # the sentinel clients' default retries held this hit 7 s, it now takes milliseconds.
    limiter = SharedRateLimiter(
        uri.format(free_port(), free_port()), "1/minute", "trustpub/test", Clock()
    )

    started = time.monotonic()
    answers = [limiter.hit("client"), limiter.hit("client")]

    assert time.monotonic() - started < 3.0
    assert answers[0] is None
    assert answers[1] is not None  # limited in this process meanwhile
