"""The request path's connection per thread, against a real Redis: replies stay in step,
scripts load themselves, dead connections are replaced, a write's WAIT shares its
connection, and a forked child never talks on its parent's socket."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from support.redis_server import RedisServer

from app.errors import StoreUnavailable
from app.stores.redis import SOCKET_TIMEOUT_SECONDS, RedisStore, connect
from app.stores.redis_connections import (
    SILENCE_SECONDS,
    Command,
    Script,
    ThreadConnections,
    packed,
)

_ECHO = Script("return ARGV[1]")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def connections(client: redis.Redis) -> Iterator[ThreadConnections]:
    connections = ThreadConnections(client.connection_pool)
    yield connections
    connections.close()


def _client_id(connections: ThreadConnections) -> int:
    return int(connections.call(("CLIENT", "ID")))


# What the request path sends: scripts by SHA with keys, integers and an audit record's
# JSON; a write's WAIT; XADD with non-ASCII fields; bytes; a value above redis-py's
# 6,000-byte buffer cutoff, which its packer sends as a separate chunk.
_COMMANDS: list[Command] = [
    _ECHO.by_sha(["trustpub:jti:x"], [3600, "0123abcd", 100_000, '["action","mint"]']),
    ("WAIT", 1, 500),
    ("XADD", "trustpub:audit", "MAXLEN", "~", 100_000, "*", "repository", "octo/démo ✓"),
    ("SET", b"\x00\xffkey", b"value\r\n", "EX", -1),
    ("SET", "big", "x" * 10_000),
    ("PING",),
]


@pytest.mark.parametrize("command", _COMMANDS, ids=lambda command: str(command[0]))
def test_a_command_is_packed_as_redis_py_packs_it(command: Command) -> None:
    assert packed([command]) == b"".join(redis.Connection().pack_commands([command]))


@pytest.mark.parametrize("argument", [None, True, object()])
def test_an_argument_redis_py_refuses_is_refused_with_its_error(argument: object) -> None:
    command: Any = ("SET", "key", argument)
    with pytest.raises(redis.DataError):
        redis.Connection().pack_commands([command])
    with pytest.raises(redis.DataError):
        packed([command])


def test_a_string_without_utf8_is_refused_as_a_store_error_before_anything_is_sent() -> None:
    # A lone surrogate (JSON allows "\ud800"): redis-py's packer raises UnicodeEncodeError,
    # which no caller maps to a store error; here it is one, raised before a byte is sent.
    command: Command = ("XADD", "trustpub:audit", "*", "run_id", "\ud800")
    with pytest.raises(UnicodeEncodeError):
        redis.Connection().pack_commands([command])
    with pytest.raises(redis.DataError):
        packed([("PING",), command])


def test_commands_are_packed_back_to_back() -> None:
    assert packed(_COMMANDS) == b"".join(map(packed, ([command] for command in _COMMANDS)))
    assert packed([]) == b""


def test_an_error_reply_takes_its_place_and_later_replies_stay_in_step(
    connections: ThreadConnections, client: redis.Redis
) -> None:
    client.set("text", "not a number")

    first, failed, last = connections.execute([("SET", "a", "1"), ("INCR", "text"), ("GET", "a")])

    assert (first, last) == (b"OK", b"1")
    assert isinstance(failed, redis.ResponseError)
    assert connections.call(("GET", "text")) == b"not a number"  # the next caller's reply
    with pytest.raises(redis.ResponseError):
        connections.call(("INCR", "text"))


def test_a_script_redis_lost_is_sent_whole_again(
    connections: ThreadConnections, client: redis.Redis
) -> None:
    assert connections.run(_ECHO, [], ["one"]) == [b"one"]
    client.script_flush()

    assert connections.run(_ECHO, [], ["two"], then=[("PING",)]) == [b"two", b"PONG"]
    assert client.script_exists(_ECHO.sha) == [True]


def test_each_thread_keeps_its_own_connection(connections: ThreadConnections) -> None:
    here = _client_id(connections)
    ids: list[int] = []
    worker = threading.Thread(target=lambda: ids.append(_client_id(connections)))
    worker.start()
    worker.join()

    assert _client_id(connections) == here
    assert len(ids) == 1
    assert ids[0] != here


def test_a_connection_the_server_dropped_is_replaced_without_failing_the_call(
    connections: ThreadConnections, client: redis.Redis
) -> None:
    before = _client_id(connections)
    client.client_kill_filter(_id=before)

    after = _client_id(connections)

    assert after != before


def test_a_fresh_connection_that_fails_is_not_retried(
    redis_server: RedisServer, connections: ThreadConnections
) -> None:
    redis_server.kill()

    with pytest.raises(redis.ConnectionError):
        connections.call(("PING",))


def test_a_write_and_its_wait_go_out_together_on_one_connection(
    redis_server: RedisServer, redis_url: str
) -> None:
    # No replica answers, so every WAIT fails its claim; MONITOR shows which connection
    # sent each command, in the order Redis ran them.
    store = RedisStore(connect(redis_url), min_replicas=1)
    outcomes: list[BaseException | None] = []
    monitor_client = redis_server.client()
    try:
        with monitor_client.monitor() as monitor:
            claims = [
                threading.Thread(target=_claim, args=(store, f"jti:{n}", outcomes))
                for n in range(4)
            ]
            for claim in claims:
                claim.start()
            sequence: list[tuple[str, str]] = []
            while sum(name == "WAIT" for _, name in sequence) < len(claims):
                command = monitor.next_command()
                sender = f"{command['client_address']}:{command['client_port']}"
                sequence.append((sender, command["command"].split()[0]))
            for claim in claims:
                claim.join()
    finally:
        monitor_client.close()
        store.close()

    assert len(outcomes) == len(claims)
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes)
    last_by_sender: dict[str, str] = {}
    for sender, name in sequence:
        if name == "WAIT":
            assert last_by_sender.get(sender) in {"EVALSHA", "EVAL"}, sequence
        last_by_sender[sender] = name


def _claim(store: RedisStore, key: str, outcomes: list[BaseException | None]) -> None:
    try:
        store.claim_once(key, "exchange-" + key, 60)
        outcomes.append(None)
    except StoreUnavailable as unavailable:
        outcomes.append(unavailable)


def test_a_forked_child_opens_its_own_connection(connections: ThreadConnections) -> None:
    parent = _client_id(connections)
    context = multiprocessing.get_context("fork")
    answer: multiprocessing.Queue[int] = context.Queue()
    child = context.Process(target=lambda: answer.put(_client_id(connections)), daemon=True)
    child.start()
    child_id = answer.get(timeout=10)
    child.join(timeout=10)

    assert child.exitcode == 0
    assert child_id != parent
    assert _client_id(connections) == parent  # the parent's socket still answers it


@pytest.mark.parametrize("operation", ["revocation_state", "ping"])
def test_a_silent_redis_fails_a_request_after_one_socket_timeout(
    redis_server: RedisServer, redis_url: str, operation: str
) -> None:
    # A Redis that stopped answering (a partition, a stopped process) holds a request
    # that asks it for the socket timeout: once, on the connection that had answered and
    # on a fresh one, not once per health-check PING and its retry (2 s, and 4 s for PING
    # through the pool's client, before).
    store = RedisStore(connect(redis_url))
    call = {
        "revocation_state": lambda: store.revocation_state(["rev:jti:x"]),
        "ping": store.ping,
    }[operation]
    call()  # this thread's connection has answered once
    pid = redis_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    held: list[float] = []
    try:
        for _ in range(2):  # the proven connection, then a fresh one
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                call()
            held.append(time.monotonic() - started)
            time.sleep(SILENCE_SECONDS)  # past the second in which requests fail at once
    finally:
        os.kill(pid, signal.SIGCONT)
        store.close()

    assert all(seconds < 1.5 * SOCKET_TIMEOUT_SECONDS for seconds in held), held


@pytest.fixture
def silent_sentinels() -> Iterator[str]:
    """Three sentinels that accept connections and never answer (a partitioned or stopped
    host): listening sockets never accepted from, the kernel completing the handshake."""
    sockets = []
    for _ in range(3):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sockets.append(sock)
    try:
        yield ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    finally:
        for sock in sockets:
            sock.close()


def test_silent_sentinels_fail_a_request_after_their_timeouts_then_at_once(
    silent_sentinels: str,
) -> None:
    # Discovery asks each sentinel in turn and reports their timeouts as a connection
    # error (MasterNotFoundError): every request was held 3 s, each holding a thread.
    store = RedisStore(connect(f"redis+sentinel://{silent_sentinels}/mymaster"))
    held: list[float] = []
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.revocation_state(["rev:jti:x"])
            held.append(time.monotonic() - started)
    finally:
        store.close()

    assert held[0] < 3.5 * SOCKET_TIMEOUT_SECONDS, held  # the three sentinels, once
    assert held[1] < 0.1, held  # within the next second: at once


def test_after_a_timeout_requests_fail_at_once_until_one_has_asked_again(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    now = [0.0]
    connections = ThreadConnections(client.connection_pool, clock=lambda: now[0])
    connections.call(("PING",))
    pid = redis_server.pid
    assert pid is not None
    outcomes: list[str] = []

    def ping() -> None:
        try:
            connections.call(("PING",))
            outcomes.append("answered")
        except redis.TimeoutError as error:
            outcomes.append("at once" if "not asked again" in str(error) else "timed out")

    os.kill(pid, signal.SIGSTOP)
    try:
        ping()  # waits for the socket timeout
        ping()  # within the second after it: not sent at all
        now[0] += SILENCE_SECONDS
        probe = threading.Thread(target=ping)  # the first to come asks again...
        probe.start()
        time.sleep(0.3)
        ping()  # ...while the others still fail at once
        probe.join()
    finally:
        os.kill(pid, signal.SIGCONT)
    ping()  # the probe timed out a moment ago: still at once
    now[0] += SILENCE_SECONDS
    ping()  # asks, and Redis answers
    ping()  # answering again: every request asks
    connections.close()

    assert outcomes == [
        "timed out",
        "at once",
        "at once",
        "timed out",
        "at once",
        "answered",
        "answered",
    ]
