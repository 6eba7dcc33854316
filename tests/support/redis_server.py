"""A real redis-server subprocess on loopback, which tests may kill and bring back."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .ports import free_port

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
# Port collisions between free_port() and redis binding are rare; a few fresh ports
# cover them. Only the first start may move: restart() must keep the port.
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 20

# Every server that may own a process, so an aborted session still reaps them.
_LIVE: weakref.WeakSet[RedisServer] = weakref.WeakSet()


class RedisServerError(RuntimeError):
    """redis-server did not come up; the message carries its log tail."""


class RedisServer:
    """One redis-server on 127.0.0.1 with persistence off, run from ``tmp_dir``."""

    def __init__(
        self, tmp_dir: Path, *, extra_args: Sequence[str] = (), config_file: Path | None = None
    ) -> None:
        # extra_args/config_file make replicas (--replicaof) and sentinels (--sentinel).
        self.extra_args = tuple(extra_args)
        self.config_file = config_file
        self.tmp_dir = tmp_dir
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp_dir / "redis.log"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ever_started = False
        _LIVE.add(self)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        # Read once: another thread (a test's sampler) may ask while kill() clears it.
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        if self.running:
            return
        attempts = 1 if self._ever_started else PORT_ATTEMPTS
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
            except RedisServerError:
                last_attempt = attempt == attempts - 1
                if last_attempt or "Address already in use" not in self.log_tail():
                    self._reap()
                    raise
                self._reap()
                self.port = free_port()
                continue
            self._ever_started = True
            return

    def kill(self) -> None:
        """SIGKILL the server and wait for it: Redis dies with no chance to clean up."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """SIGTERM the server, escalating to SIGKILL if it does not exit in time."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Start again on the same port with an empty data set."""
        self.kill()
        self.start()

    def client(self) -> redis.Redis:
        """A client that fails at once when the server is down.

        redis-py's default retries with backoff for seconds before raising; tests that
        kill the server want the ConnectionError immediately. Callers close it.
        """
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=0,
            decode_responses=False,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            retry=Retry(NoBackoff(), 0),
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log written>"
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisServerError("redis-server is not on PATH (make redis-server installs it)")
        args = [
            executable,
            *([str(self.config_file)] if self.config_file else []),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.tmp_dir),
            "--daemonize",
            "no",
            *self.extra_args,
        ]
        # Append so a restart keeps the earlier run's log for post-mortems; the parent's
        # handle is closed right away because the child holds its own copy.
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                args,
                cwd=self.tmp_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise RedisServerError(
                    f"redis-server exited with status {code} on port {self.port}:\n"
                    f"{self.log_tail()}"
                )
            if _ping(self.port):
                return
            time.sleep(0.02)
        raise RedisServerError(
            f"redis-server did not answer PING on port {self.port} within "
            f"{START_TIMEOUT:.0f}s:\n{self.log_tail()}"
        )

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()
        self._proc = None


def _ping(port: int) -> bool:
    # A raw socket rather than a redis client: no pool, no retries, nothing to leak.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.kill()
