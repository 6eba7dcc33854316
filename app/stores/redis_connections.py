"""A Redis connection per thread for the request path, and Lua scripts sent over it.

redis-py's client takes a connection from its pool for every command and hands it back
after: with the pool's lock, its poll for unread data and the client's retry and
observability layers, that is ~75 us of CPU per command, three times the round trip's
own (~25 us). A thread that keeps one connection of its own pays only the round trip.

It also keeps a write and its WAIT together: WAIT counts the replicas that hold the
writes of the connection it is sent on, so a WAIT sent on another pooled connection
than the write's could acknowledge a write that no replica has.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry

Argument = str | bytes | int
Command = tuple[Argument, ...]

# How long after a timeout requests fail without asking Redis (one socket timeout).
SILENCE_SECONDS = 1.0

# One command in the Redis protocol, packed in C. (hiredis's stub types the command as
# a one-element tuple; it takes any length.)
_pack_command: Callable[[Command], bytes] = hiredis.pack_command  # type: ignore[assignment]


@dataclass(frozen=True)
class Script:
    """A Lua script, called by its SHA-1 and sent whole only when Redis lacks it."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sha", hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        )

    def by_sha(self, keys: Sequence[str], args: Sequence[Argument]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def whole(self, keys: Sequence[str], args: Sequence[Argument]) -> Command:
        return ("EVAL", self.source, len(keys), *keys, *args)


def packed(commands: Sequence[Command]) -> bytes:
    """`commands` in the Redis protocol, the bytes redis-py's packer writes, packed by
    hiredis in one C call per command (redis-py loops over the arguments in Python).
    An argument that cannot be packed (None, a bool, a string with a lone surrogate,
    which has no UTF-8) raises redis-py's DataError, a store error, before anything is sent."""
    try:
        return b"".join(map(_pack_command, commands))
    except (TypeError, UnicodeEncodeError) as error:
        raise redis.DataError(str(error)) from None


class _Held:
    __slots__ = ("connected", "connection", "pid", "proven")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        # A forked child must not talk on its parent's socket.
        self.pid = os.getpid()
        self.connected = False
        # Has it completed a round trip since it (re)connected?
        self.proven = False


class ThreadConnections:
    """One connection per thread, made with the pool's settings (address, TLS, password,
    database, Sentinel discovery and timeouts), outside the pool.

    But for two, so that a Redis that has gone silent fails a request after one socket
    timeout, not several: no health-check PING before a fresh connection's first
    commands (with its retry, two more timeouts), and one attempt to connect, since
    `execute` decides itself when a failed round trip is tried again. After a timeout,
    the process's requests fail at once for SILENCE_SECONDS; then one asks again.
    """

    def __init__(
        self, pool: redis.ConnectionPool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = pool
        self._connection_kwargs = {
            **pool.connection_kwargs,
            "health_check_interval": 0,
            "retry": Retry(NoBackoff(), 0),
        }
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Any] = []
        self._clock = clock
        # Until when (on `clock`) requests fail at once: Redis timed out less than
        # SILENCE_SECONDS ago. 0: it answers.
        self._silent_until = 0.0

    def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send `commands` in one write and read every reply, in order.

        An error reply is returned in its place (raising before the later replies were
        read would leave them on the socket for the next caller); a connection failure
        raises redis.ConnectionError or redis.TimeoutError.
        """
        probing = self._admit() if self._silent_until else False
        held = self._held()
        proven = held.proven
        started = self._clock()
        try:
            try:
                replies = self._round_trip(held, commands)
            except redis.ConnectionError:
                if not proven:
                    raise
                # A connection kept idle may have been closed since its last use (a
                # Redis restart, a failover, an idle timeout): one more try, on a new
                # connection. The break may also have come after Redis ran the commands.
                # A replay claim knows its own claimant, an added registration its own
                # id, and a revocation keeps the latest moment, so those are safe to
                # send again; a removal or a project declaration sent again answers as if
                # another client had made it (docs/reliability.md).
                replies = self._round_trip(held, commands)
        except redis.TimeoutError:
            # Not retried: a Redis that does not answer fails the request now, and the
            # requests of the next second fail at once, rather than each holding one of
            # the process's threads for the timeout while `/healthz` waits for a thread.
            self._silent_until = self._clock() + SILENCE_SECONDS
            raise
        except redis.ConnectionError:
            # A failure that took the socket timeout is a silence too, whatever it is
            # called: redis-py's Sentinel discovery reports sentinels that time out, one
            # after the other, as MasterNotFoundError, a ConnectionError (3 s for three).
            now = self._clock()
            timeout = self._connection_kwargs.get("socket_timeout")
            if timeout is not None and now - started >= timeout:
                self._silent_until = now + SILENCE_SECONDS
            raise
        if probing:
            self._silent_until = 0.0
        return replies

    def _admit(self) -> bool:
        """Whether this request asks a Redis that went silent: raises while its last
        timeout is recent; after that, lets one request through to ask again (True)."""
        with self._lock:
            now = self._clock()
            if now < self._silent_until:
                raise redis.TimeoutError("Redis did not answer a moment ago: not asked again yet")
            if not self._silent_until:
                return False  # another request's probe found it answering
            # This request asks; the others go on failing at once until it has an answer.
            self._silent_until = now + SILENCE_SECONDS
            return True

    def call(self, command: Command) -> Any:
        """One command's reply; raises an error reply."""
        (reply,) = self.execute([command])
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def run(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Argument],
        then: Sequence[Command] = (),
    ) -> list[Any]:
        """The script's reply followed by the replies of `then`, in one round trip
        (two when Redis does not hold the script yet); raises the first error reply."""
        replies = self.execute([script.by_sha(keys, args), *then])
        if isinstance(replies[0], NoScriptError):
            replies = self.execute([script.whole(keys, args), *then])
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.disconnect()

    def _held(self) -> _Held:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            held = _Held(self._pool.connection_class(**self._connection_kwargs))
            self._local.held = held
            with self._lock:
                self._opened.append(held.connection)
        return held

    @staticmethod
    def _round_trip(held: _Held, commands: Sequence[Command]) -> list[Any]:
        connection = held.connection
        try:
            if not held.connected:
                # Connects, authenticates, selects the database; a Sentinel-managed
                # connection asks the sentinels for the master first.
                connection.connect()
                held.connected = True
            # No health-check PING first: a dead connection fails, and is retried.
            connection.send_packed_command([packed(commands)], check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response(disconnect_on_error=True))
                except ResponseError as error:
                    replies.append(error)
        except BaseException:
            held.proven = held.connected = False
            connection.disconnect()
            raise
        held.proven = True
        return replies
