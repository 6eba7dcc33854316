"""Store URLs their client libraries cannot read: a configuration error naming the
setting, never the URL, which may hold a password."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.errors import ConfigurationError
from app.stores.rate_limits import SharedRateLimiter
from app.stores.redis import connect

PASSWORD = "S3CRET-pw"


def _rate_limiter(url: str) -> object:
    return SharedRateLimiter(url, "1/minute", "trustpub/test")


@pytest.mark.parametrize(
    ("build", "url", "setting"),
    [
        (connect, f"reddis://:{PASSWORD}@redis.internal:6379/0", "redis_url"),
        (connect, f"redis://:{PASSWORD}@redis.internal:63 79/0", "redis_url"),
        (connect, f"redis+sentinel://:{PASSWORD}@s1:port/mymaster", "redis_url"),
        (connect, f"unix://:{PASSWORD}@/run/redis.sock?db=zero", "redis_url"),
        (_rate_limiter, f"reddis://:{PASSWORD}@redis.internal:6379/0", "rate_limit_storage"),
        (_rate_limiter, f"redis://:{PASSWORD}@redis.internal:port/0", "rate_limit_storage"),
    ],
)
def test_an_unreadable_store_url_is_a_configuration_error_that_never_quotes_it(
    build: Callable[[str], object], url: str, setting: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        build(url)

    message = str(refused.value)
    assert message.startswith(f"{setting} is not ")
    assert PASSWORD not in message
    # Not chained either: a traceback printed from it would quote the library's message.
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


@pytest.mark.parametrize(
    ("build", "url"),
    [
        (connect, f"redis://:{PASSWORD}@redis.internal:6379/0"),
        (connect, f"redis+sentinel://:{PASSWORD}@s1:26379,s2/mymaster/1"),
        (_rate_limiter, f"redis://:{PASSWORD}@redis.internal:6379/0"),
        (_rate_limiter, "memory://"),
    ],
)
def test_a_readable_store_url_builds_its_client_without_connecting(
    build: Callable[[str], object], url: str
) -> None:
    assert build(url) is not None
