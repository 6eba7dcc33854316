"""What an app sends to Redis while an action runs, as MONITOR sees it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from support.redis_server import RedisServer

_MARKER = "end-of-watched-action"
# Registration pollers (daemon threads of this test's app and of earlier tests' apps)
# read the version counter, and reload the registrations when it moved, on their own
# connections and whenever they like. A connection that read a registrations key
# outside a script is a poller's: requests never read publishers from Redis (they
# write pins, by script).
_POLLER_KEYS = "trustpub:registrations"
_SCRIPT_CALLS = ("EVALSHA", "EVAL")


@dataclass(frozen=True)
class Sent:
    command: str
    by_script: bool  # run by a Lua script, not sent by a client

    @property
    def name(self) -> str:
        return self.command.split()[0]


def commands_sent(redis_server: RedisServer, action: Callable[[], object]) -> list[Sent]:
    watcher = redis_server.client()
    try:
        with watcher.monitor() as monitor:
            action()
            marker = redis_server.client()  # its own connection: excluded below
            marker.echo(_MARKER)
            marker.close()
            seen = []
            while _MARKER not in (entry := monitor.next_command())["command"]:
                seen.append(entry)
    finally:
        watcher.close()

    def sender(entry: dict[str, str]) -> tuple[str, str]:
        return (entry["client_address"], entry["client_port"])

    excluded = {sender(entry)}  # the marker's connection
    excluded |= {
        sender(entry)
        for entry in seen
        if entry["client_type"] != "lua"
        and _POLLER_KEYS in entry["command"]
        and entry["command"].split()[0] not in _SCRIPT_CALLS
    }
    return [
        Sent(entry["command"], entry["client_type"] == "lua")
        for entry in seen
        if sender(entry) not in excluded
    ]
