"""How the bench reads the connections a server's processes hold: the split of wrk's
connections over the workers, and whether an aborted attempt's are closed yet."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .harness import procs


@contextmanager
def _served_connection() -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """A client socket and the server's side of it, both held by this process."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        try:
            yield client, served, port
        finally:
            client.close()
            served.close()


@pytest.mark.parametrize(
    ("closed", "established", "still_open"),
    [
        ((), 1, 1),
        # The client went away: the server's side waits (CLOSE_WAIT) until it closes too.
        (("client",), 0, 1),
        (("client", "served"), 0, 0),
    ],
)
def test_connections_by_state(closed: tuple[str, ...], established: int, still_open: int) -> None:
    with _served_connection() as (client, served, port):
        sockets = {"client": client, "served": served}
        for name in closed:
            sockets[name].close()
        pids = [os.getpid()]
        # The listening socket is never counted, nor the client's end (another local port).
        assert procs.established_connections(pids, port) == [established]
        assert procs.open_connections(pids, port) == [still_open]


def test_processes_are_counted_apart() -> None:
    with _served_connection() as (_client, _served, port):
        # Sorted counts, one per process: one that holds nothing counts 0.
        assert procs.open_connections([os.getpid(), os.getppid()], port) == [0, 1]
