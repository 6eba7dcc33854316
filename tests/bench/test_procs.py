"""How the bench reads the connections a server's processes hold: the split of wrk's
connections over the workers, and whether an aborted attempt's are closed yet."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


# A "master" that forks a "worker", which burns CPU, then exits once told to (the file
# appears) and is reaped by its master, as gunicorn reaps a worker it restarts.
_MASTER = """
import os, sys, time
if os.fork() == 0:
    started = time.process_time()
    while time.process_time() - started < 0.3:
        pass
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    os._exit(0)
os.wait()
time.sleep(60)
"""


@pytest.mark.parametrize("worker_exits", [False, True], ids=["worker-alive", "worker-reaped"])
def test_a_workers_cpu_stays_counted_when_its_master_reaps_it(
    tmp_path: Path, worker_exits: bool
) -> None:
    exit_file = tmp_path / "exit"
    service = procs.Service(
        "master", [sys.executable, "-c", _MASTER, str(exit_file)], {}, tmp_path / "log", tmp_path
    )
    try:
        deadline = time.monotonic() + 10
        while not service.workers() or procs.cpu_seconds(service.workers()[0]) < 0.3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        burned = service.cpu_seconds()
        if worker_exits:
            exit_file.touch()
            while service.workers():
                assert time.monotonic() < deadline
                time.sleep(0.02)

        # A worker restarted mid-phase took its CPU with it: the phase's delta came out
        # short, or negative.
        assert service.cpu_seconds() >= burned >= 0.3
    finally:
        # The worker's way out in either row: orphaned by the master's stop, it would poll
        # for the file for ever (each make test left one behind, spinning).
        exit_file.touch()
        service.stop(timeout=5)
