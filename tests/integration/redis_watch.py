"""What an app sends to Redis while an action runs, as MONITOR sees it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from support.redis_server import RedisServer

_MARKER = "end-of-watched-action"
# Registration pollers (daemon threads, once a second) read this counter whatever the
# requests do; a watched action that happens to span a poll must not count it.
_POLL = "GET trustpub:registrations:version"


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
    marker_sender = (entry["client_address"], entry["client_port"])
    return [
        Sent(entry["command"], entry["client_type"] == "lua")
        for entry in seen
        if (entry["client_address"], entry["client_port"]) != marker_sender
        and entry["command"] != _POLL
    ]
