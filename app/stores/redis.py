"""Redis-backed stores: a connection per thread, one round trip per operation, fail closed.

Keys (all under the `trustpub:` prefix):
| key               | value                       | TTL                                  |
|-------------------|-----------------------------|--------------------------------------|
| `epoch`           | `<random id>:<unix seconds>`| none (its loss is the signal)         |
| `jti:<digest>`    | claimant: the upload token's jti | OIDC token exp + leeway          |
| `rev:<scope>:...` | unix seconds (revoked <= t) | until every token it covers expired  |
| `registrations`   | hash: id -> registration JSON | none                                |
| `registrations:pending` | hash: id -> expires_at (unix seconds) | none; expired ones purged |
| `registrations:unique`  | hash: identity+project digest -> id | none                       |
| `registrations:version` | counter, INCR on every change | none (pollers reload on change) |
| `registrations:pins`    | hash: pin key -> pinned claims (JSON) | none; removed with its id |
| `projects`        | set of projects that exist   | none                                 |
| `projects:confirmed` | the epoch `projects` was confirmed complete in | none; stale in another |
| `audit`           | stream, `MAXLEN ~ audit_max_length` | trimmed by length              |
| `audit:refused`   | stream of refused mints, the same bound | trimmed by length          |
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.clocks import STORE_CLOCK_TOLERANCE_SECONDS, check_store_clock, clock_off
from app.errors import ConfigurationError, DeclarationsLost, StoreMayEvict, StoreUnavailable
from app.json_text import compact
from app.metrics import labelled, metrics
from app.stores.base import (
    AuditPage,
    AuditRecord,
    ClaimResult,
    Declaration,
    Epoch,
    ExpiryRecords,
    RegistrationState,
    RevocationState,
    StoredRegistration,
    new_epoch_id,
    stream_position,
)
from app.stores.redis_connections import Argument, Command, Script, ThreadConnections

log = logging.getLogger(__name__)

# A request must fail fast when Redis is gone rather than hang a worker: short socket
# timeouts and a single retry (for a connection kept idle that the server closed).
SOCKET_TIMEOUT_SECONDS = 1.0
# How long a write may wait for its replicas before the request fails closed.
REPLICA_WAIT_MS = 500

# Get-or-create the epoch, then the replay claim: atomic and one round trip.
# The new epoch's time is the server's, so every replica agrees on it.
_CLAIM = Script(
    """
-- ARGV[5]: the claiming replica's clock, ARGV[6] how far it may be from Redis's: a
-- replica whose clock is further off claims nothing (it would judge `exp` against
-- records that Redis expires by its own clock). Answered {false, Redis's seconds}.
local now = redis.call('TIME')[1]
if ARGV[5] ~= '' and math.abs(tonumber(now) - tonumber(ARGV[5])) > tonumber(ARGV[6]) then
  return {false, now}
end
-- Decoded first: a record the script cannot read fails before anything is written.
local fields = ARGV[7] and cjson.decode(ARGV[7])
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[2] .. ':' .. now
  redis.call('SET', KEYS[1], epoch)
end
-- The record holds its claimant (ARGV[4]), an id only this exchange knows.
local first = redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[1])
if first then
  if fields and ARGV[8] then
    -- No record when the epoch began at or after ARGV[8]: the exchange then refuses the
    -- token as predating a data loss, and no upload token is minted.
    local began = tonumber(string.match(epoch, ':(%d+)$'))
    if not (began and began < tonumber(ARGV[8])) then fields = nil end
  end
  if fields then
    -- The mint's audit record, in the same round trip: ARGV[3] is the stream's length
    -- bound, ARGV[7] a JSON array of field, value, field, value... in the record's
    -- order. One argument: hiredis formats each argument's length with sprintf, thirty
    -- of them cost the mint more than encoding the array; an array of pairs cost Redis
    -- a Lua loop.
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
  end
elseif redis.call('GET', KEYS[2]) == ARGV[4] then
  -- This exchange's own claim, sent again after its reply was lost: still the first,
  -- its audit record already stored. Written again, so that the WAIT sent after it on
  -- this connection counts only replicas that hold the claim (and, being later in the
  -- replication stream, the record).
  redis.call('SET', KEYS[2], ARGV[4], 'XX', 'KEEPTTL')
  first = true
end
return {epoch, first and 1 or 0}
"""
)

# The epoch, begun now (by the server's clock, as the replay claim begins it) if none
# has: KEYS[1] the epoch, ARGV[1] a new id. The start of scripts that answer it.
_GET_OR_BEGIN_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1] .. ':' .. redis.call('TIME')[1]
  redis.call('SET', KEYS[1], epoch)
end
"""

_EPOCH = Script(_GET_OR_BEGIN_EPOCH + "return epoch\n")

# Keep the latest moment: a later, narrower revocation never shortens an earlier one.
# The revocation's audit record (optional) is appended with it, as a registration's is.
# KEYS: entry, audit, request; ARGV: moment, ttl, audit length bound, [record]
# The request key (a nonce per call) is set with the record: a call sent again after its
# reply was lost stores its record once. It lives a minute, as a call is sent again at
# once or never: a revocation costs no lasting key beyond its entry.
_REVOKE = Script(
    """
local fields = ARGV[4] and cjson.decode(ARGV[4])
local first = redis.call('SET', KEYS[3], '1', 'NX', 'EX', 60)
if not first then
  -- Sent again: written again, so that a WAIT after it counts replicas holding it.
  redis.call('SET', KEYS[3], '1', 'XX', 'KEEPTTL')
end
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local moment = tonumber(ARGV[1])
if moment > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  local ttl = redis.call('TTL', KEYS[1])
  if ttl >= 0 and ttl < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
if fields and first then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
return 1
"""
)

# An expired pending registration's deletion is recorded by the script that deletes it
# (the purge, or an add in its place); both begin with this function. Their ARGV from
# `first` on: the record of any registration the caller did not read (or could not),
# then id, own record, id, own record... (see ExpiryRecords). It answers nil when the
# caller passed none, else a function: a deleted id's record, and the id the record
# names (for the record of any other, the id in printable ASCII: one written by hand
# may hold any bytes, and a stream record no reader can decode fails every read of it).
_EXPIRY_RECORDS = """
local function expiry_records(first)
  if not ARGV[first] then return nil end
  -- Decoded first: a record the script cannot read fails before anything is written.
  local other = cjson.decode(ARGV[first])
  local own = {}
  for i = first + 1, #ARGV - 1, 2 do own[ARGV[i]] = cjson.decode(ARGV[i + 1]) end
  return function(id)
    if own[id] then return own[id], id end
    local shown = string.gsub(id, '[^ -~]', '?')
    local fields = {unpack(other)}
    fields[#fields + 1] = 'publisher_id'
    fields[#fields + 1] = shown
    return fields, shown
  end
end
"""

# Registrations: every change is one script, so the hashes, the set of existing projects
# and the version that pollers watch can never disagree, and a change and its audit
# record are written together or not at all (an optional record: a JSON array of field,
# value, ... as the claim's, appended to the stream under its length bound).
# KEYS: registrations, pending, unique, version, projects, audit, pins, epoch, confirmed
# ARGV: id, json, unique key, project, expires_at ('' = not pending), now,
#       audit length bound, record ('' = none), [expired records: see _EXPIRY_RECORDS]
# An add that deletes the expired pending registration holding its key answers {its id}.
_ADD_REGISTRATION = Script(
    _EXPIRY_RECORDS
    + """
local fields = ARGV[8] ~= '' and cjson.decode(ARGV[8])
local record_of = expiry_records(9)
local holder = redis.call('HGET', KEYS[3], ARGV[3])
if holder == ARGV[1] and redis.call('HEXISTS', KEYS[1], holder) == 1 then
  -- This very registration, sent again after its reply was lost (its id is new for
  -- every add): added. Written again, so that a WAIT after it counts replicas holding it.
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
  return false
end
local replaced = false
if holder and redis.call('HEXISTS', KEYS[1], holder) == 1 then
  local expires = redis.call('HGET', KEYS[2], holder)
  if not (expires and tonumber(expires) <= tonumber(ARGV[6])) then return holder end
  replaced = holder
end
if ARGV[5] ~= '' then
  if redis.call('SISMEMBER', KEYS[5], ARGV[4]) == 1 then return '' end
  -- The snapshot that let it through may predate a data loss: asked again here.
  local epoch = redis.call('GET', KEYS[8])
  if not epoch or redis.call('GET', KEYS[9]) ~= epoch then return '-' end  -- UNCONFIRMED
end
if holder then
  -- Expired (and pending), or gone: deleted in its place, with its record if it was there.
  redis.call('HDEL', KEYS[1], holder)
  redis.call('HDEL', KEYS[2], holder)
  redis.call('HDEL', KEYS[7], holder)
  if replaced and record_of then
    local record
    record, replaced = record_of(holder)
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', unpack(record))
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
else
  redis.call('SADD', KEYS[5], ARGV[4])
end
redis.call('INCR', KEYS[4])
if fields then redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', unpack(fields)) end
if replaced then return {replaced} end
return false
"""
)

# KEYS: registrations, pending, unique, version, audit, pins
# ARGV: id, pending only ('1') or not (''), audit length bound, [record]
_REMOVE_REGISTRATION = Script(
    """
local fields = ARGV[4] and cjson.decode(ARGV[4])
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return false end
local expires = redis.call('HGET', KEYS[2], ARGV[1])
-- Converted since the caller looked, whose right to remove it was that it was pending.
if ARGV[2] ~= '' and not expires then return false end
local unique = cjson.decode(value)['unique_key']
if redis.call('HGET', KEYS[3], unique) == ARGV[1] then redis.call('HDEL', KEYS[3], unique) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('INCR', KEYS[4])
if fields then
  -- The record's `pending` says what was removed as this store held it: a pending
  -- publisher may have been converted since the caller looked.
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'pending' then fields[i + 1] = expires and 'true' or 'false' end
  end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
return {value, expires or ''}
"""
)

# KEYS: registrations, pending, version, projects, audit
# ARGV: id, project, now, audit length bound, [record]
_CONVERT = Script(
    """
local fields = ARGV[5] and cjson.decode(ARGV[5])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'gone' end
local expires = redis.call('HGET', KEYS[2], ARGV[1])
if not expires then return 'normal' end
if tonumber(expires) <= tonumber(ARGV[3]) then return 'expired' end
if redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 1 then return 'exists' end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('INCR', KEYS[3])
if fields then redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', unpack(fields)) end
return 'converted'
"""
)

# Each deletion with its record: whichever of several concurrent purges deletes a
# registration records it, once. Answers the ids deleted, as their records name them.
# KEYS: registrations, pending, unique, version, pins, audit
# ARGV: now, audit length bound, [expired records: see _EXPIRY_RECORDS]
_PURGE = Script(
    _EXPIRY_RECORDS
    + """
local record_of = expiry_records(3)
local pending = redis.call('HGETALL', KEYS[2])
local removed = {}
for i = 1, #pending, 2 do
  -- A record that does not read (an expiry that is no number, a value that is not
  -- JSON: written by hand, by a bug) is left out by the loader; here it must not stop
  -- the purge of every other one. Its unique key, unreadable, is left to the add that
  -- finds its holder gone; its audit record is the caller's for any registration it
  -- could not read.
  local expires = tonumber(pending[i + 1])
  if expires and expires <= tonumber(ARGV[1]) then
    local id = pending[i]
    local value = redis.call('HGET', KEYS[1], id)
    local ok, fields = pcall(cjson.decode, value or '')
    local unique = ok and type(fields) == 'table' and fields['unique_key']
    if type(unique) == 'string' and redis.call('HGET', KEYS[3], unique) == id then
      redis.call('HDEL', KEYS[3], unique)
    end
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[5], id)
    if record_of then
      local record
      record, id = record_of(id)
      redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', unpack(record))
    end
    removed[#removed + 1] = id
  end
end
if #removed > 0 then redis.call('INCR', KEYS[4]) end
return removed
"""
)

# KEYS: epoch, projects, version, audit; ARGV: new epoch id, audit length bound, record
# or "", projects...
# SADD takes the names in slices: Lua's unpack refuses some 8,000 values at once.
_DECLARE_PROJECTS = Script(
    _GET_OR_BEGIN_EPOCH
    + """
local added = 0
for first = 4, #ARGV, 1000 do
  added = added + redis.call('SADD', KEYS[2], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('INCR', KEYS[3])
if added > 0 and ARGV[3] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', unpack(cjson.decode(ARGV[3])))
end
return {added, epoch}
"""
)

# KEYS: epoch, confirmed; ARGV: new epoch id
_PROJECTS_STATUS = Script(
    _GET_OR_BEGIN_EPOCH
    + """
return {epoch, redis.call('GET', KEYS[2]) == epoch and 1 or 0}
"""
)

# The projects set confirmed complete for the current epoch: a store that loses its data
# loses the confirmation with the set (and the epoch it names).
# KEYS: confirmed, epoch, version, audit; ARGV: audit length bound, the epoch the
# declarations began in or "" (any), [record]
_CONFIRM_PROJECTS = Script(
    """
local epoch = redis.call('GET', KEYS[2])
if not epoch then return -1 end
if ARGV[2] ~= '' and ARGV[2] ~= epoch then return -2 end
if redis.call('GET', KEYS[1]) == epoch then
  -- Written again (sent again after a lost reply?), so that a WAIT after it counts it.
  redis.call('SET', KEYS[1], epoch)
  return 0
end
local fields = ARGV[3] and cjson.decode(ARGV[3])
redis.call('SET', KEYS[1], epoch)
redis.call('INCR', KEYS[3])
if fields then redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', unpack(fields)) end
return 1
"""
)

# What a publisher's first token carried, pinned once: the first writer wins, and every
# later caller learns what it pinned.
# KEYS: pins, version, audit; ARGV: pin key, pinned JSON, audit length bound, [record]
_PIN = Script(
    """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  -- The same pin (this call sent again after its reply was lost, or another token
  -- that agrees): written again, so that a WAIT after it counts replicas holding it.
  if held == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], held) end
  return {held, 0}
end
local fields = ARGV[4] and cjson.decode(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
if fields then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields)) end
return {ARGV[2], 1}
"""
)

# An audit record on its own (a conversion's mint, a refusal, a revocation of tokens that
# have all expired). As a revocation's, a key per call marks it stored: a call sent again
# after its reply was lost answers the first record's id rather than store it twice.
# KEYS: audit, request; ARGV: audit length bound, record
_APPEND_AUDIT = Script(
    """
local stored = redis.call('GET', KEYS[2])
if stored then return stored end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(cjson.decode(ARGV[2])))
redis.call('SET', KEYS[2], id, 'EX', 60)
return id
"""
)

# How many stream entries one read of the audit trail asks for at a time.
_AUDIT_BATCH = 500
# The greatest sequence number of a stream id: `MS-_MAX_SEQUENCE` ends millisecond MS.
_MAX_SEQUENCE = 2**64 - 1


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
    try:
        if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
            return _connect_sentinel(url, options)
        client: redis.Redis = redis.Redis.from_url(url, **options)
    except ValueError:
        # Not chained: redis-py's message quotes the URL, and with it the password.
        raise ConfigurationError(
            "redis_url is not a URL of Redis: redis://[:PASSWORD@]HOST:PORT/DB, rediss://…, "
            "unix:///PATH or redis+sentinel://…/MASTER_NAME (not shown: it may hold a password)"
        ) from None
    return client


def fail_fast_options() -> dict[str, Any]:
    """Options of a Redis client that must fail a request fast: short timeouts, one attempt.

    For the sentinels that discovery asks in turn (redis-py's default, 10 retries with
    backoff per sentinel, held a request ~25 s when they refused connections) and for the
    shared rate-limit store, whose failures the in-process counters take over.
    """
    return {
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
    }


def _connect_sentinel(url: str, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigurationError(
            "redis_url: a sentinel URL is "
            "redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"
        )
    sentinels = [sentinel_address(address) for address in hosts.split(",")]
    password = unquote(parts.password) if parts.password else None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels,
        sentinel_kwargs=fail_fast_options(),
        password=password,
        db=int(path[1]) if len(path) == 2 else 0,
        ssl=parts.scheme.startswith("rediss"),
        **options,
    )
    client: redis.Redis = sentinel.master_for(path[0])  # type: ignore[no-untyped-call]
    return client


def sentinel_address(address: str) -> tuple[str, int]:
    """(host, port) of one HOST[:PORT] of a sentinel URL, an IPv6 host in brackets
    (`[fd00::1]:26379`); ValueError for anything else."""
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 sentinel is [ADDRESS]:PORT")
        port = rest[1:] if rest else None
    else:
        host, colon, port_text = address.partition(":")
        port = port_text if colon else None
    if not host or (port is not None and not (port.isascii() and port.isdigit())):
        raise ValueError("a sentinel is HOST:PORT")
    number = int(port) if port is not None else 26379
    if not 0 < number < 65536:
        raise ValueError("a sentinel's port is 1-65535")
    return host, number


class RedisStore:
    """Stores on one Redis (or the master a Sentinel names).

    `min_replicas`: a replay claim or a revocation is acknowledged only once that many
    replicas have it (WAIT). Without it, a failover to a replica that lagged could lose
    an acknowledged revocation or let one OIDC token be exchanged twice; with it, an
    unreplicated write fails closed with 503 instead.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "trustpub:",
        min_replicas: int = 0,
        audit_max_length: int = 100_000,
    ) -> None:
        self._client = client
        self._audit_max_length = audit_max_length
        self._registrations_keys = [
            prefix + "registrations",
            prefix + "registrations:pending",
            prefix + "registrations:unique",
            prefix + "registrations:version",
        ]
        self._projects_key = prefix + "projects"
        self._confirmed_key = prefix + "projects:confirmed"
        self._pins_key = prefix + "registrations:pins"
        self._audit_key = prefix + "audit"
        self._refusals_key = prefix + "audit:refused"
        self._prefix = prefix
        self._epoch_key = prefix + "epoch"
        # The request path and every write go through a connection per thread: one
        # round trip, the write's WAIT on the write's connection. Reads that are not on
        # the request path (registrations, the audit trail) use the pool.
        self._connections = ThreadConnections(client.connection_pool)
        self._replicated: tuple[Command, ...] = (
            (("WAIT", min_replicas, REPLICA_WAIT_MS),) if min_replicas > 0 else ()
        )
        self._min_replicas = min_replicas
        # What this process last logged about eviction (ping): said once, not per probe.
        self._eviction_said: str | None = None
        self._eviction_unknown_said = False

    def close(self) -> None:
        self._connections.close()
        self._client.close()

    def claim_once(
        self,
        key: str,
        claimant: str,
        ttl_seconds: int,
        audit: Mapping[str, str] | None = None,
        epoch_began_before: int | None = None,
        clock: int | None = None,
    ) -> ClaimResult:
        args: list[Argument] = [
            max(1, ttl_seconds),
            new_epoch_id(),
            self._audit_max_length,
            claimant,
            "" if clock is None else clock,
            STORE_CLOCK_TOLERANCE_SECONDS,
        ]
        if audit:
            args.append(_record_argument(audit))
            if epoch_began_before is not None:
                args.append(epoch_began_before)
        epoch, first = self._write(
            "claim", _CLAIM, [self._epoch_key, self._prefix + key, self._audit_key], args
        )
        if epoch is None:
            # The script claimed nothing: `clock` is too far from Redis's, told in `first`.
            raise clock_off(int(clock or 0) - int(first))
        return ClaimResult(first=bool(first), epoch=_epoch("claim", epoch))

    def revoke_before(
        self, key: str, moment: int, ttl_seconds: int, audit: Mapping[str, str] | None = None
    ) -> None:
        self._write(
            "revoke",
            _REVOKE,
            [self._prefix + key, self._audit_key, self._prefix + "rev:request:" + new_epoch_id()],
            [moment, max(1, ttl_seconds), *self._record_arguments(audit)],
        )

    def revocation_state(self, keys: Sequence[str]) -> RevocationState:
        # With Redis's clock, in the same round trip: the introspection checks its own.
        values, server_time = self._fail_closed(
            "mget",
            self._connections.execute,
            [("MGET", self._epoch_key, *(self._prefix + k for k in keys)), ("TIME",)],
        )
        if isinstance(values, redis.ResponseError) or isinstance(server_time, redis.ResponseError):
            raise self._unavailable("mget")
        return RevocationState(
            server_time=_seconds(server_time),
            epoch=_epoch("mget", values[0]) if values[0] is not None else None,
            revoked_before=tuple(
                _moment("mget", self._prefix + key, v) if v is not None else None
                for key, v in zip(keys, values[1:], strict=True)
            ),
        )

    def current_epoch(self) -> Epoch:
        (value,) = self._run("epoch", _EPOCH, [self._epoch_key], [new_epoch_id()])
        return _epoch("epoch", value)

    def server_time(self) -> float:
        return _seconds(self._execute("time", ("TIME",)))

    def ping(self) -> None:
        # On the thread's own connection, as a request's commands go: within one socket
        # timeout, where the pool's client (its retry, a health check each) took four.
        # The epoch rather than PING, at the same cost: a store whose epoch cannot be read
        # can neither mint nor introspect, so it is not ready. In the same round trip,
        # whether Redis may evict keys: a store that may drop a revocation or a replay
        # record before its time is not ready either (StoreMayEvict), nor a replica whose
        # clock is off Redis's (ClockOffStore), which could neither mint nor introspect.
        epoch, memory, server_time = self._fail_closed(
            "ping",
            self._connections.execute,
            [("GET", self._epoch_key), ("INFO", "memory"), ("TIME",)],
        )
        if isinstance(epoch, redis.ResponseError):
            raise self._unavailable("ping") from epoch
        if epoch is not None:
            _epoch("ping", epoch)
        self._check_eviction(memory)
        if isinstance(server_time, redis.ResponseError):
            raise self._unavailable("ping") from server_time
        check_store_clock(time.time(), _seconds(server_time))

    def _check_eviction(self, memory: object) -> None:
        try:
            if not isinstance(memory, bytes):  # an error reply
                raise ValueError(str(memory))
            risk = eviction_risk(memory)
        except ValueError as unknown:
            # An ACL without INFO (it is in @dangerous) or a proxy with its own INFO: the
            # setting cannot be read here, and granting INFO for it is the operator's call.
            if not self._eviction_unknown_said:
                self._eviction_unknown_said = True
                log.warning(
                    "Redis does not say whether it may evict keys (%s); make sure its "
                    "maxmemory-policy is noeviction",
                    unknown,
                )
            return
        if risk != self._eviction_said:
            # Once per change, not per probe: the probe asks every few seconds.
            self._eviction_said = risk
            if risk is None:
                log.info("Redis no longer evicts keys: the store is ready again")
            else:
                log.error("Redis may evict trustpub's keys (%s): not ready", risk)
        if risk is not None:
            raise StoreMayEvict(risk)

    # -- registrations -----------------------------------------------------------------

    def registrations_version(self) -> int:
        # With the epoch: the counter starts again from 0 after a data loss, and a
        # process whose snapshot holds the same number must still see the change.
        value, epoch = self._fail_closed(
            "registrations_version", self._client.mget, self._registrations_keys[3], self._epoch_key
        )
        return _versioned(value, epoch)

    def load_registrations(self) -> RegistrationState:
        registrations, pending, _, version = self._registrations_keys

        # MULTI: the version read belongs to exactly these contents.
        pipe = self._client.pipeline(transaction=True)
        pipe.get(version)
        pipe.get(self._epoch_key)
        pipe.hgetall(registrations)
        pipe.hgetall(pending)
        pipe.smembers(self._projects_key)
        pipe.hgetall(self._pins_key)
        pipe.get(self._confirmed_key)
        version_value, epoch, entries, expiries, projects, pins, confirmed = self._fail_closed(
            "load_registrations", pipe.execute
        )
        return RegistrationState(
            version=_versioned(version_value, epoch),
            registrations=tuple(_readable_registrations(entries, expiries)),
            projects=frozenset(project.decode() for project in projects),
            pins={key.decode(): _decode_pins(value) for key, value in pins.items()},
            projects_confirmed=epoch is not None and confirmed == epoch,
        )

    def add_registration(
        self,
        registration: StoredRegistration,
        now: int,
        audit: Mapping[str, str] | None = None,
        expired: ExpiryRecords | None = None,
    ) -> tuple[str | None, str | None]:
        expires = "" if registration.expires_at is None else str(registration.expires_at)
        result = self._write(
            "add_registration",
            _ADD_REGISTRATION,
            [
                *self._registrations_keys,
                self._projects_key,
                self._audit_key,
                self._pins_key,
                self._epoch_key,
                self._confirmed_key,
            ],
            [
                registration.id,
                registration.encode(),
                registration.unique_key,
                registration.project,
                expires,
                now,
                self._audit_max_length,
                _record_argument(audit) if audit else "",
                *_expiry_arguments(expired),
            ],
        )
        if isinstance(result, list):  # added, in place of the expired registration it names
            return None, bytes(result[0]).decode(errors="replace")
        return (None if result is None else bytes(result).decode()), None

    def remove_registration(
        self,
        registration_id: str,
        audit: Mapping[str, str] | None = None,
        *,
        pending_only: bool = False,
    ) -> StoredRegistration | None:
        result = self._write(
            "remove_registration",
            _REMOVE_REGISTRATION,
            [*self._registrations_keys, self._audit_key, self._pins_key],
            [registration_id, "1" if pending_only else "", *self._record_arguments(audit)],
        )
        if not result:
            return None
        value, expires = result
        return StoredRegistration.decode(value.decode(), int(expires) if expires else None)

    def convert_pending(
        self, registration_id: str, project: str, now: int, audit: Mapping[str, str] | None = None
    ) -> str:
        registrations, pending, _, version = self._registrations_keys
        result = self._write(
            "convert_pending",
            _CONVERT,
            [registrations, pending, version, self._projects_key, self._audit_key],
            [registration_id, project, now, *self._record_arguments(audit)],
        )
        return bytes(result).decode()

    def declare_projects(
        self, projects: Sequence[str], audit: Mapping[str, str] | None = None
    ) -> Declaration:
        record = _record_argument(audit) if audit else ""
        added, epoch = self._write(
            "declare_projects",
            _DECLARE_PROJECTS,
            [self._epoch_key, self._projects_key, self._registrations_keys[3], self._audit_key],
            [new_epoch_id(), self._audit_max_length, record, *projects],
        )
        return Declaration(int(added), _epoch("declare_projects", epoch))

    def confirm_projects(
        self, audit: Mapping[str, str] | None = None, declared_in: Epoch | None = None
    ) -> bool:
        if declared_in is None:
            self.current_epoch()  # the epoch it confirms for: one, if none began yet
        bound, *record = self._record_arguments(audit)
        confirmed = self._write(
            "confirm_projects",
            _CONFIRM_PROJECTS,
            [self._confirmed_key, self._epoch_key, self._registrations_keys[3], self._audit_key],
            [bound, "" if declared_in is None else declared_in.encode(), *record],
        )
        if confirmed < 0 and declared_in is not None:
            raise DeclarationsLost()
        if confirmed == -1:
            raise StoreUnavailable("the token store lost its data meanwhile; confirm again")
        return bool(confirmed)

    def projects_status(self) -> tuple[Epoch, bool]:
        ((epoch, confirmed),) = self._run(
            "projects_status",
            _PROJECTS_STATUS,
            [self._epoch_key, self._confirmed_key],
            [new_epoch_id()],
        )
        return _epoch("projects_status", epoch), bool(confirmed)

    def purge_expired(self, now: int, expired: ExpiryRecords | None = None) -> tuple[str, ...]:
        removed = self._write(
            "purge_expired",
            _PURGE,
            [*self._registrations_keys, self._pins_key, self._audit_key],
            [now, self._audit_max_length, *_expiry_arguments(expired)],
        )
        return tuple(bytes(key).decode(errors="replace") for key in removed)

    def pin_on_first_use(
        self, key: str, values: Mapping[str, str], audit: Mapping[str, str] | None = None
    ) -> tuple[Mapping[str, str], bool]:
        pinned, created = self._write(
            "pin_on_first_use",
            _PIN,
            [self._pins_key, self._registrations_keys[3], self._audit_key],
            [key, compact(dict(values)), *self._record_arguments(audit)],
        )
        return _decode_pins(pinned), bool(created)

    # -- audit trail -------------------------------------------------------------------

    def append_audit(self, fields: Mapping[str, str], *, refusal: bool = False) -> str:
        (record_id,) = self._run(
            "append_audit",
            _APPEND_AUDIT,
            [
                self._refusals_key if refusal else self._audit_key,
                self._prefix + "audit:request:" + new_epoch_id(),
            ],
            [self._audit_max_length, _record_argument(fields)],
        )
        return bytes(record_id).decode()

    def read_audit(
        self,
        *,
        since_ms: int | None,
        until_ms: int | None,
        limit: int,
        accept: Callable[[Mapping[str, str]], bool],
        before: str | None = None,
        scan_limit: int | None = None,
        refusals: bool = False,
    ) -> AuditPage:
        stream = self._refusals_key if refusals else self._audit_key
        # Newest first, in batches, at most `scan_limit` records: a filtered read of a
        # long stream would otherwise decode all of it in one request.
        if before is not None and stream_position(before) == (0, 0):
            return AuditPage([], None)  # nothing precedes it (and Redis refuses "(0-0")
        found: list[AuditRecord] = []
        upper = "+" if until_ms is None else f"{until_ms}-{_MAX_SEQUENCE}"
        if before is not None and (
            until_ms is None or stream_position(before) <= (until_ms, _MAX_SEQUENCE)
        ):
            upper = "(" + before
        lower = "-" if since_ms is None else f"{since_ms}-0"
        scanned = 0
        while True:
            count = _AUDIT_BATCH if scan_limit is None else min(_AUDIT_BATCH, scan_limit - scanned)
            batch = self._fail_closed(
                "read_audit", self._client.xrevrange, stream, upper, lower, count=count
            )
            for raw_id, raw_fields in batch:
                record_id = raw_id.decode()
                fields = {key.decode(): value.decode() for key, value in raw_fields.items()}
                if accept(fields):
                    found.append(AuditRecord(record_id, int(record_id.split("-")[0]), fields))
                    if len(found) >= limit:
                        return AuditPage(found, record_id)
            scanned += len(batch)
            if len(batch) < count:
                return AuditPage(found, None)
            upper = "(" + batch[-1][0].decode()
            if scan_limit is not None and scanned >= scan_limit:
                return AuditPage(found, upper[1:])

    def _record_arguments(self, audit: Mapping[str, str] | None) -> list[Argument]:
        """A registration script's last arguments: the stream's bound, and the record."""
        if not audit:
            return [self._audit_max_length]
        return [self._audit_max_length, _record_argument(audit)]

    def _write(
        self, name: str, script: Script, keys: Sequence[str], args: Sequence[Argument]
    ) -> Any:
        """The script's reply, acknowledged only once `min_replicas` replicas have it."""
        reply, *acknowledged = self._run(name, script, keys, args, self._replicated)
        if acknowledged and int(acknowledged[0]) < self._min_replicas:
            # A 503 as much as an unreachable Redis is: the alert on store errors sees
            # a failover to a lagging replica too.
            labelled(metrics().store_errors, name).inc()
            raise StoreUnavailable("the token store could not replicate the write; retry shortly")
        return reply

    def _run(
        self,
        name: str,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Argument],
        then: Sequence[Command] = (),
    ) -> list[Any]:
        replies: list[Any] = self._fail_closed(
            name, self._connections.run, script, keys, args, then
        )
        return replies

    def _execute(self, name: str, command: Command) -> Any:
        return self._fail_closed(name, self._connections.call, command)

    def _fail_closed(self, operation: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return call(*args, **kw)
        except redis.RedisError as exc:
            raise self._unavailable(operation) from exc

    @staticmethod
    def _unavailable(operation: str) -> StoreUnavailable:
        labelled(metrics().store_errors, operation).inc()
        return StoreUnavailable("the token store is unavailable; retry in a few seconds")


def eviction_risk(memory_info: bytes) -> str | None:
    """What lets Redis evict keys, read from the reply of `INFO memory`; None when nothing
    does. Raises ValueError when the reply does not say."""
    fields = dict(
        line.split(":", 1)
        for line in memory_info.decode("utf-8", "replace").splitlines()
        if ":" in line
    )
    try:
        limit = int(fields["maxmemory"])
        policy = fields["maxmemory_policy"].strip()
    except (KeyError, ValueError):
        raise ValueError("INFO memory names no maxmemory and maxmemory_policy") from None
    # Without a memory limit Redis never evicts, whatever the policy; with one, every
    # policy but noeviction may take a key that has a TTL (replay records, revocations),
    # and the allkeys ones the epoch too.
    if limit == 0 or policy == "noeviction":
        return None
    return f"maxmemory-policy {policy} with maxmemory {limit} bytes"


def _versioned(version: bytes | None, epoch: bytes | None) -> int:
    """The registrations counter, tagged with the epoch it counts in."""
    return (zlib.crc32(epoch or b"") << 64) + (int(version) if version is not None else 0)


def _readable_registrations(
    entries: Mapping[bytes, bytes], expiries: Mapping[bytes, bytes]
) -> Iterator[StoredRegistration]:
    """The registrations that decode. One that does not (written by hand, by a bug) is
    left out, loudly: fewer publishers, never more; and the rest keep loading, so that a
    removal elsewhere still reaches every process and a new process still starts."""
    for key, value in entries.items():
        expires = expiries.get(key)
        try:
            yield StoredRegistration.decode(
                value.decode(), None if expires is None else int(expires)
            )
        except (ValueError, KeyError, TypeError):
            log.error(
                "registration %r in the store cannot be read; ignored (remove it with HDEL)",
                key.decode(errors="replace"),
            )


def _epoch(operation: str, value: bytes) -> Epoch:
    """The epoch record as this module writes it; anything else is no epoch to trust, and
    every mint and introspection fails until an operator deletes it (docs/runbooks.md)."""
    try:
        epoch = Epoch.decode(value.decode())
    except ValueError:  # UnicodeDecodeError too
        epoch = None
    if epoch is None or not epoch.id:
        raise _unreadable(operation, "epoch", "the epoch")
    return epoch


def _seconds(reply: Sequence[bytes]) -> float:
    """Unix seconds from the reply of TIME."""
    seconds, microseconds = reply
    return int(seconds) + int(microseconds) / 1_000_000


def _moment(operation: str, key: str, value: bytes) -> int:
    """A revocation entry's moment. One that does not read cannot say which tokens it
    revokes, so the question fails rather than answer active."""
    try:
        return int(value)
    except ValueError:
        raise _unreadable(operation, "revocation", f"revocation entry {key!r}") from None


def _unreadable(operation: str, what: str, record: str) -> StoreUnavailable:
    """The failure of a request that found `record`, which only this module writes, not
    readable: logged with where to look, and counted as a store error (the alert's
    metric), as every request that reads it is a 503 until an operator mends it."""
    log.error("%s in the store cannot be read (docs/runbooks.md)", record)
    labelled(metrics().store_errors, operation).inc()
    return StoreUnavailable(f"the token store holds a malformed {what}")


def _decode_pins(value: bytes) -> dict[str, str]:
    try:
        pins = json.loads(value)
    except ValueError:
        pins = None
    if not isinstance(pins, dict) or not all(isinstance(v, str) for v in pins.values()):
        # Only this module writes pins: anything else is no pin to trust, nor to ignore.
        raise StoreUnavailable("the token store holds a malformed pin")
    return pins


def _record_argument(audit: Mapping[str, str]) -> bytes:
    """An audit record as the scripts take it: a JSON array of field, value, field,
    value... in the record's order (what XADD takes once unpacked)."""
    return compact(list(chain.from_iterable(audit.items())))


def _expiry_arguments(expired: ExpiryRecords | None) -> list[Argument]:
    """A script's last arguments when it may delete expired pending registrations: the
    record of any other, then each one's id and own record (see _EXPIRY_RECORDS)."""
    if expired is None:
        return []
    arguments: list[Argument] = [_record_argument(expired.other)]
    for key, record in expired.by_id.items():
        arguments += (key, _record_argument(record))
    return arguments
