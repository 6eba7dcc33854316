"""A Redis that may evict keys could drop a revocation or a replay record before its
time: trustpub refuses to start on one, and readiness fails while one is found later.
The settings are Redis's own (CONFIG SET on the test's real server); INFO, which says
them, may be refused by an ACL, and then trustpub serves and warns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from support.redis_server import RedisServer

from app.errors import ConfigurationError

from .conftest import MakeApp

EVICTING_POLICIES = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]
LIMITED_USER = "trustpub-no-info"


@pytest.fixture
def redis_config(store: redis.Redis) -> Iterator[redis.Redis]:
    """The `store` client, to change the test server's settings: put back afterwards."""
    try:
        yield store
    finally:
        store.config_set("maxmemory", 0)
        store.config_set("maxmemory-policy", "noeviction")
        store.acl_deluser(LIMITED_USER)


def _may_evict(client: redis.Redis, policy: str = "allkeys-lru") -> None:
    client.config_set("maxmemory", "1gb")
    client.config_set("maxmemory-policy", policy)


@pytest.mark.parametrize("policy", EVICTING_POLICIES)
def test_a_redis_that_may_evict_stops_start_up(
    redis_config: redis.Redis, make_app: MakeApp, policy: str
) -> None:
    _may_evict(redis_config, policy)

    with pytest.raises(ConfigurationError) as refused:
        make_app()

    message = str(refused.value)
    assert f"maxmemory-policy {policy} with maxmemory 1073741824 bytes" in message
    assert "set maxmemory-policy to noeviction" in message.lower()


@pytest.mark.parametrize(
    ("maxmemory", "policy"),
    [
        ("0", "allkeys-lru"),  # no memory limit: nothing is ever evicted
        ("1gb", "noeviction"),  # a write fails instead, with 503
        ("0", "noeviction"),  # Redis's defaults
    ],
)
def test_a_redis_that_cannot_evict_is_served(
    redis_config: redis.Redis, make_app: MakeApp, maxmemory: str, policy: str
) -> None:
    redis_config.config_set("maxmemory", maxmemory)
    redis_config.config_set("maxmemory-policy", policy)

    ready = make_app().test_client().get("/readyz")

    assert ready.status_code == 200, ready.get_json()


def test_readiness_fails_while_redis_may_evict_and_says_so_once(
    redis_config: redis.Redis, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app().test_client()
    assert client.get("/readyz").status_code == 200

    _may_evict(redis_config, "volatile-ttl")  # an operator's change, after start-up
    with caplog.at_level(logging.INFO, logger="app.stores.redis"):
        probes = [client.get("/readyz") for _ in range(3)]
        redis_config.config_set("maxmemory-policy", "noeviction")
        recovered = client.get("/readyz")

    for probe in probes:
        assert probe.status_code == 503
        error = probe.get_json()["error"]
        assert error["code"] == "store-unavailable"
        assert "noeviction" in error["description"]
        # The public answer says what to fix, not how this Redis is set up.
        assert "volatile-ttl" not in error["description"]
    assert recovered.status_code == 200
    said = [r for r in caplog.records if r.name == "app.stores.redis"]
    assert [(r.levelno, "volatile-ttl" in r.getMessage()) for r in said] == [
        (logging.ERROR, True),  # once for the three probes
        (logging.INFO, False),  # and once when it is fixed
    ]


def test_a_redis_that_will_not_say_how_it_evicts_is_served_with_a_warning(
    redis_server: RedisServer,
    redis_config: redis.Redis,
    make_app: MakeApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A least-privilege ACL: every command but the @dangerous ones, INFO among them.
    redis_config.acl_setuser(
        LIMITED_USER,
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-@dangerous"],
    )
    url = f"redis://{LIMITED_USER}:pw@127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(url) as limited:
        assert limited.get("trustpub:epoch") is not None
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.info("memory")

    with caplog.at_level(logging.WARNING, logger="app.stores.redis"):
        client = make_app(redis_url=url).test_client()
        probes = [client.get("/readyz").status_code for _ in range(2)]

    assert probes == [200, 200]
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.stores.redis"]
    assert len(warnings) == 1, warnings
    assert "make sure its maxmemory-policy is noeviction" in warnings[0]
    assert "pw@" not in warnings[0]
