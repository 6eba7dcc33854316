"""A bench run that is stopped leaves nothing behind: no server, no wrk, no work directory.

The servers run in sessions of their own, out of reach of a signal meant for the bench;
only the bench's own clean-up stops them. Ctrl-C reaches the whole process group; a
supervisor, `timeout` or a test's time limit sends SIGTERM to the bench alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness import BENCH_ROOT

# The line the run prints once the floor, the least mint and the service all answer.
SERVERS_UP = "in rotation"


def _run_of(tmp: Path) -> list[int]:
    """The processes of the run whose TMPDIR is `tmp`: every process it starts inherits it."""
    marker = f"TMPDIR={tmp}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("signum", "to_group"),
    [
        (signal.SIGINT, True),  # Ctrl-C in a terminal
        (signal.SIGTERM, False),  # a supervisor, `timeout`, a CI job cancelled
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stopped_run_stops_its_servers_and_removes_its_work(
    tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "bench.log"
    with log.open("w") as out:
        bench = subprocess.Popen(
            [sys.executable, "-m", "bench.run", "--smoke", "--no-output"],
            cwd=BENCH_ROOT,
            env={**os.environ, "TMPDIR": str(tmp)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A shell's background job starts with SIGINT ignored; a terminal's does not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 60
        while SERVERS_UP not in log.read_text():
            assert bench.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        if to_group:
            os.killpg(bench.pid, signum)
        else:
            bench.send_signal(signum)
        bench.wait(timeout=60)
        deadline = time.monotonic() + 5
        while _run_of(tmp) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _run_of(tmp)
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
        assert list(tmp.iterdir()) == []
    finally:
        for pid in _run_of(tmp):  # only this run's, found by its own TMPDIR
            os.kill(pid, signal.SIGKILL)
        if bench.poll() is None:
            bench.kill()
            bench.wait()
