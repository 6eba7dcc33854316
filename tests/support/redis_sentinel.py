"""A real Sentinel deployment on loopback: a master, replicas and three sentinels."""

from __future__ import annotations

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

    def master_port(self) -> int:
        with self.sentinels[0].client() as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

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

    def wait_for_promotion(self, timeout: float = 20.0) -> float:
        """Seconds until every sentinel names the same one of the replicas as master: a
        client asks whichever sentinel answers first."""
        started = time.monotonic()
        ports = {replica.port for replica in self.replicas}

        def promoted() -> bool:
            named = set()
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    reply = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                    )
                named.add(int(reply[1]))
            return len(named) == 1 and named <= ports

        self._wait(promoted, "promotion", timeout)
        return time.monotonic() - started

    def wait_for_an_online_replica(self, timeout: float = 30.0) -> float:
        """Seconds until the master the sentinels name has a replica acknowledging writes:
        from then on a write that must reach one replica (WAIT 1) can succeed."""
        started = time.monotonic()
        servers = {server.port: server for server in (self.master, *self.replicas)}

        def acknowledged() -> bool:
            # A write of this connection's own, acknowledged: WAIT after no write returns
            # at once with every replica the master lists online, acknowledged or not.
            with servers[self.master_port()].client() as client:
                client.set("trustpub-test:replication-probe", "1")
                return int(client.execute_command("WAIT", 1, 100)) >= 1

        self._wait(acknowledged, "a replica of the new master", timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        for server in (*self.sentinels, *self.replicas, self.master):
            server.kill()

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
