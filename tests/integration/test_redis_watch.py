"""The round-trip tests' watcher leaves out what registration pollers send, and only that."""

from __future__ import annotations

from support.redis_server import RedisServer

from .redis_watch import commands_sent


def test_a_pollers_reload_is_left_out_and_the_rest_is_kept(
    redis_server: RedisServer, redis_url: str
) -> None:
    request, poller = redis_server.client(), redis_server.client()
    request.ping()  # connected before the watch, as the app's connections are

    def action() -> None:
        request.set("trustpub:jti:x", "1")
        pipe = poller.pipeline(transaction=True)  # what LivePublishers sends on a reload
        pipe.get("trustpub:registrations:version")
        pipe.hgetall("trustpub:registrations")
        pipe.smembers("trustpub:projects")
        pipe.execute()
        request.get("trustpub:epoch")
        # A request's own script on a registrations key (a pin) is the request's.
        request.eval("return redis.call('HSETNX', KEYS[1], 'k', 'v')", 1, _PINS)

    try:
        sent = commands_sent(redis_server, action)
    finally:
        request.close()
        poller.close()

    assert [(command.name, command.by_script) for command in sent] == [
        ("SET", False),
        ("GET", False),
        ("EVAL", False),
        ("HSETNX", True),
    ]
    assert sent[0].command == "SET trustpub:jti:x 1"
    assert sent[-1].command == f"HSETNX {_PINS} k v"


_PINS = "trustpub:registrations:pins"
