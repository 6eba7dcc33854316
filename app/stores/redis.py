"""Redis-backed stores: one connection pool, one round trip per operation, fail closed.

Keys (all under the `trustpub:` prefix):
| key               | value                       | TTL                                  |
|-------------------|-----------------------------|--------------------------------------|
| `epoch`           | `<random id>:<unix seconds>`| none (its loss is the signal)         |
| `jti:<digest>`    | `1`                         | OIDC token exp + leeway               |
| `rev:<scope>:...` | unix seconds (revoked <= t) | until every token it covers expired  |
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.errors import ConfigurationError, StoreUnavailable
from app.metrics import metrics
from app.stores.base import ClaimResult, Epoch, RevocationState

# A request must fail fast when Redis is gone rather than hang a worker: short socket
# timeouts and a single retry (for a connection the pool held that the server closed).
SOCKET_TIMEOUT_SECONDS = 1.0
# How long a write may wait for its replicas before the request fails closed.
REPLICA_WAIT_MS = 500

# Get-or-create the epoch, then the replay claim: atomic and one round trip.
# The new epoch's time is the server's, so every replica agrees on it.
_CLAIM_SCRIPT = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[2] .. ':' .. redis.call('TIME')[1]
  redis.call('SET', KEYS[1], epoch)
end
local first = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
return {epoch, first and 1 or 0}
"""

_EPOCH_SCRIPT = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1] .. ':' .. redis.call('TIME')[1]
  redis.call('SET', KEYS[1], epoch)
end
return epoch
"""

# Keep the latest moment: a later, narrower revocation never shortens an earlier one.
_REVOKE_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local moment = tonumber(ARGV[1])
if moment > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  local ttl = redis.call('TTL', KEYS[1])
  if ttl >= 0 and ttl < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
return 1
"""


def connect(url: str) -> redis.Redis:
    """One client (and so one pool) per process; created by `create_app` only.

    `redis://`, `rediss://` and `unix://` URLs go to one server. Sentinel URLs,
    `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]` (or
    `rediss+sentinel://` for TLS), ask the sentinels for the current master and ask
    again after a failover.
    """
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 30,
    }
    if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        return _connect_sentinel(url, options)
    client: redis.Redis = redis.Redis.from_url(url, **options)
    return client


def _connect_sentinel(url: str, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigurationError(
            "redis_url: a sentinel URL is "
            "redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"
        )
    sentinels = []
    for host_port in hosts.split(","):
        host, _, port = host_port.rpartition(":") if ":" in host_port else (host_port, "", "")
        sentinels.append((host, int(port) if port else 26379))
    password = unquote(parts.password) if parts.password else None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels,
        sentinel_kwargs={"socket_timeout": SOCKET_TIMEOUT_SECONDS},
        password=password,
        db=int(path[1]) if len(path) == 2 else 0,
        ssl=parts.scheme.startswith("rediss"),
        **options,
    )
    client: redis.Redis = sentinel.master_for(path[0])  # type: ignore[no-untyped-call]
    return client


class RedisStore:
    """Stores on one Redis (or the master a Sentinel names).

    `min_replicas`: a replay claim or a revocation is acknowledged only once that many
    replicas have it (WAIT). Without it, a failover to a replica that lagged could lose
    an acknowledged revocation or let one OIDC token be exchanged twice; with it, an
    unreplicated write fails closed with 503 instead.
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "trustpub:", min_replicas: int = 0
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._min_replicas = min_replicas
        self._epoch_key = prefix + "epoch"
        self._claim = client.register_script(_CLAIM_SCRIPT)
        self._ensure_epoch = client.register_script(_EPOCH_SCRIPT)
        self._revoke = client.register_script(_REVOKE_SCRIPT)

    def claim_once(self, key: str, ttl_seconds: int) -> ClaimResult:
        epoch, first = self._call(
            self._claim,
            keys=[self._epoch_key, self._prefix + key],
            args=[max(1, ttl_seconds), secrets.token_hex(8)],
        )
        self._wait_for_replicas()
        return ClaimResult(first=bool(first), epoch=Epoch.decode(epoch.decode()))

    def revoke_before(self, key: str, moment: int, ttl_seconds: int) -> None:
        self._call(self._revoke, keys=[self._prefix + key], args=[moment, max(1, ttl_seconds)])
        self._wait_for_replicas()

    def revocation_state(self, keys: Sequence[str]) -> RevocationState:
        values = self._call(self._client.mget, [self._epoch_key, *(self._prefix + k for k in keys)])
        epoch = Epoch.decode(values[0].decode()) if values[0] is not None else None
        return RevocationState(
            epoch=epoch,
            revoked_before=tuple(int(v) if v is not None else None for v in values[1:]),
        )

    def current_epoch(self) -> Epoch:
        value = self._call(self._ensure_epoch, keys=[self._epoch_key], args=[secrets.token_hex(8)])
        return Epoch.decode(value.decode())

    def ping(self) -> None:
        self._call(self._client.ping)

    def _wait_for_replicas(self) -> None:
        if self._min_replicas <= 0:
            return
        acknowledged = self._call(
            self._client.execute_command, "WAIT", self._min_replicas, REPLICA_WAIT_MS
        )
        if int(acknowledged) < self._min_replicas:
            raise StoreUnavailable("the token store could not replicate the write; retry shortly")

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            metrics().store_errors.labels(getattr(method, "__name__", "script")).inc()
            raise StoreUnavailable(
                "the token store is unavailable; retry in a few seconds"
            ) from exc
