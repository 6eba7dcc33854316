"""Processes the bench starts: start, wait until they answer, CPU time, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# TCP states as /proc/net/tcp writes them.
_ESTABLISHED, _LISTEN = "01", "0A"


def exit_on_termination() -> None:
    """End this process on SIGTERM or SIGHUP as Ctrl-C does, through its clean-up.

    The servers it starts run in sessions of their own, so a signal meant for it never
    reaches them; by default those two signals end Python without running any `finally`,
    and a run stopped by a supervisor, `timeout` or a closed terminal left redis-server,
    every gunicorn and the work directory behind it.
    """

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU of one process (all its threads), from /proc/<pid>/stat; with
    `reaped`, that of the children it has waited for too."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """Seconds all cores were busy, and seconds stolen by the hypervisor, since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def established_connections(pids: list[int], port: int) -> list[int]:
    """How many established TCP connections on local `port` each of `pids` holds."""
    return _connections(pids, port, lambda state: state == _ESTABLISHED)


def open_connections(pids: list[int], port: int) -> list[int]:
    """How many TCP connections on local `port` each of `pids` still holds open, in any
    state but listening: one the client closed stays open until the worker closes it."""
    return _connections(pids, port, lambda state: state != _LISTEN)


def _connections(pids: list[int], port: int, counted: Callable[[str], bool]) -> list[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local address (hex port after the colon), state, inode
                if counted(fields[3]) and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        held = 0
        with contextlib.suppress(FileNotFoundError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    held += os.readlink(fd) in inodes
        counts.append(held)
    return sorted(counts)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


class Service:
    """A server process (gunicorn master plus workers) with a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.started_at = time.monotonic()
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 (the bench's own servers)
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[int]:
        return [self.pid, *children(self.pid)]

    def workers(self) -> list[int]:
        return children(self.pid)

    def cpu_seconds(self) -> float:
        # A worker gunicorn replaced mid-phase (crashed, timed out) leaves the tree with
        # its CPU; once reaped that CPU is the master's children's, so it stays counted.
        workers = sum(cpu_seconds(pid) for pid in self.workers())
        return cpu_seconds(self.pid, reaped=True) + workers

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> float:
        """Seconds from start until `ready()` holds; raises with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if ready():
                    return time.monotonic() - self.started_at
            except requests.RequestException:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s:\n{self.tail()}")

    def wait_for_workers(self, count: int, timeout: float = 30.0) -> None:
        """gunicorn forks workers after it binds: wait until all of them exist."""
        deadline = time.monotonic() + timeout
        while len(self.workers()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {count} workers did not start:\n{self.tail()}")
            time.sleep(0.02)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 25.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
