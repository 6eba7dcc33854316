"""Redis-backed stores: one connection pool, one round trip per operation, fail closed."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.errors import StoreUnavailable

# A request must fail fast when Redis is gone rather than hang a worker: short socket
# timeouts and a single retry (for a connection the pool held that the server closed).
SOCKET_TIMEOUT_SECONDS = 1.0


def connect(url: str) -> redis.Redis:
    """One client (and so one pool) per process; created by `create_app` only."""
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return client


class RedisStore:
    def __init__(self, client: redis.Redis, prefix: str = "trustpub:") -> None:
        self._client = client
        self._prefix = prefix

    def claim_once(self, key: str, ttl_seconds: int) -> bool:
        # SET NX EX in one command: the check and the write cannot be split by a
        # concurrent exchange of the same token.
        result: Any = self._call(
            self._client.set, self._prefix + key, b"1", nx=True, ex=max(1, ttl_seconds)
        )
        return bool(result)

    def ping(self) -> None:
        self._call(self._client.ping)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(
                "the token store is unavailable; retry in a few seconds"
            ) from exc
