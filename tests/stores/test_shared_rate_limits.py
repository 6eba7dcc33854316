"""Rate limits shared through a real Redis, and what happens while it is down."""

from __future__ import annotations

import logging

import pytest
from support.redis_server import RedisServer

from app.stores.rate_limits import SharedRateLimiter, rate_limiter


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


def test_an_unreachable_store_falls_back_to_counting_in_process(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("limits-redis"))
    server.start()
    try:
        limiter = rate_limiter(server.url + "?socket_timeout=1", "2/minute", "trustpub/test")
        assert limiter.hit("client") is None
        server.kill()
        with caplog.at_level(logging.WARNING, logger="app.stores.rate_limits"):
            answers = [limiter.hit("client") for _ in range(3)]
    finally:
        server.stop()
    # Still limited (in this process, from zero), and said once, not per request.
    assert answers[:2] == [None, None]
    assert answers[2] is not None
    warnings = [r for r in caplog.records if "counting in this process" in r.getMessage()]
    assert len(warnings) == 1
