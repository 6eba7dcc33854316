"""A real Sentinel deployment on loopback: a master, replicas and three sentinels."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import redis

from .redis_server import RedisServer

MASTER_NAME = "trustpub"


class SentinelTopology:
    def __init__(self, tmp_dir: Path, replicas: int = 2) -> None:
        self.master = RedisServer(tmp_dir / "master")
        self.master.start()
        self.replicas = [
            RedisServer(
                tmp_dir / f"replica-{index}",
                extra_args=("--replicaof", "127.0.0.1", str(self.master.port)),
            )
            for index in range(replicas)
        ]
        for replica in self.replicas:
            replica.start()
        self.sentinels = []
        for index in range(3):
            directory = tmp_dir / f"sentinel-{index}"
            directory.mkdir(parents=True)
            config = directory / "sentinel.conf"
            # Sentinel rewrites its config file, so each gets its own writable copy.
            config.write_text(
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 3000\n"
            )
            sentinel = RedisServer(directory, extra_args=("--sentinel",), config_file=config)
            sentinel.start()
            self.sentinels.append(sentinel)
        self._wait(lambda: self.replica_count() >= replicas, "sentinels to see the replicas")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def replication_state(self) -> dict[int, str]:
        """Per live server, its role and how its replication stands: for a failure message."""
        state = {}
        for server in (self.master, *self.replicas):
            try:
                with server.client() as client:
                    info = client.info("replication")
            except redis.RedisError as exc:
                state[server.port] = f"unreachable ({type(exc).__name__})"
                continue
            keys = ("role", "master_port", "master_link_status", "slave0", "slave1")
            state[server.port] = ", ".join(f"{key}={info[key]}" for key in keys if key in info)
        return state

    def replica_count(self) -> int:
        with self.sentinels[0].client() as client:
            return len(client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME))

    def wait_for_replication(self) -> None:
        count = len(self.replicas)
        with self.master.client() as client:
            self._wait(lambda: client.execute_command("WAIT", count, 100) >= count, "replication")

    def settled(self) -> bool:
        """Whether a write can reach a replica now: every sentinel names the same server,
        it is the only master among the live servers, and it lists a replica online.

        False while a sentinel or a live server does not answer: a client may be asking
        that one."""
        try:
            named = {self._named_master_port(sentinel) for sentinel in self.sentinels}
            roles = {}
            for server in (self.master, *self.replicas):
                if server.running:
                    with server.client() as client:
                        roles[server.port] = client.info("replication")
        except redis.RedisError:
            return False
        masters = [port for port, info in roles.items() if info["role"] == "master"]
        if len(named) != 1 or masters != list(named):
            return False
        info = roles[masters[0]]
        return any(
            isinstance(link, dict) and link.get("state") == "online"
            for key, link in info.items()
            if key.startswith("slave")
        )

    def stop(self) -> None:
        for server in (*self.sentinels, *self.replicas, self.master):
            server.kill()

    @staticmethod
    def _named_master_port(sentinel: RedisServer) -> int:
        with sentinel.client() as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

    @staticmethod
    def _wait(condition: object, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")


class SettledLog:
    """`topology.settled()` sampled in a thread while the log is open: when a write
    could reach a replica, and when it could not."""

    def __init__(self, topology: SentinelTopology, period: float = 0.05) -> None:
        self._topology = topology
        self._period = period
        self._samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> SettledLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_settled(self, *, since: float, hold: float, timeout: float = 40.0) -> None:
        """Return once the store, unsettled after `since`, has stayed settled for `hold`
        seconds. (A spell may begin a moment before `since`: a sample is stamped when
        its check starts.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spells = self.unsettled_spells()
            if spells and spells[-1][1] > since and time.monotonic() - spells[-1][1] >= hold:
                return
            time.sleep(self._period)
        raise TimeoutError(f"the store did not settle for {hold}s: {self.unsettled_spells()}")

    def unsettled_spells(self) -> list[tuple[float, float]]:
        """(first unsettled sample, first settled sample after it) per spell; a spell
        still going ends at infinity."""
        spells: list[tuple[float, float]] = []
        began: float | None = None
        for at, settled in list(self._samples):
            if not settled and began is None:
                began = at
            elif settled and began is not None:
                spells.append((began, at))
                began = None
        if began is not None:
            spells.append((began, math.inf))
        return spells

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._samples.append((time.monotonic(), self._topology.settled()))
            self._stop.wait(self._period)
