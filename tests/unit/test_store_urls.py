"""Store URLs their client libraries cannot read: a configuration error naming the
setting, never the URL, which may hold a password."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.errors import ConfigurationError
from app.stores.rate_limits import SharedRateLimiter
from app.stores.redis import connect, sentinel_address

PASSWORD = "S3CRET-pw"


def _rate_limiter(url: str) -> object:
    return SharedRateLimiter(url, "1/minute", "trustpub/test")


@pytest.mark.parametrize(
    ("build", "url", "setting"),
    [
        (connect, f"reddis://:{PASSWORD}@redis.internal:6379/0", "redis_url"),
        (connect, f"redis://:{PASSWORD}@redis.internal:63 79/0", "redis_url"),
        (connect, f"redis+sentinel://:{PASSWORD}@s1:port/mymaster", "redis_url"),
        (connect, f"redis+sentinel://:{PASSWORD}@[fd00::1/mymaster", "redis_url"),
        (connect, f"redis+sentinel://:{PASSWORD}@fd00::1:26379/mymaster", "redis_url"),
        (connect, f"redis+sentinel://:{PASSWORD}@s1:26379,/mymaster", "redis_url"),
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


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("s1", ("s1", 26379)),
        ("s1:26380", ("s1", 26380)),
        ("10.0.0.7:26380", ("10.0.0.7", 26380)),
        ("[fd00::1]:26380", ("fd00::1", 26380)),
        ("[::1]", ("::1", 26379)),
    ],
)
def test_a_sentinel_address_is_host_and_port_an_ipv6_host_in_brackets(
    address: str, expected: tuple[str, int]
) -> None:
    assert sentinel_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        ":26379",
        "s1:",
        "s1:port",
        "s1:0",
        "s1:65536",
        "s1:2\u00b2",
        "fd00::1",
        "[fd00::1",
        "[fd00::1]26379",
        "[fd00::1]:",
        "[]:26379",
    ],
)
def test_a_sentinel_address_that_is_not_host_and_port_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="sentinel"):
        sentinel_address(address)


def test_ipv6_sentinels_reach_redis_py_without_their_brackets() -> None:
    client = connect("redis+sentinel://[fd00::1]:26380,[fd00::2],s3/mymaster/2")

    manager = client.connection_pool.sentinel_manager  # type: ignore[attr-defined]
    addresses = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in manager.sentinels
    ]
    assert addresses == [("fd00::1", 26380), ("fd00::2", 26379), ("s3", 26379)]
    assert client.connection_pool.connection_kwargs["db"] == 2
