"""Loopback port allocation."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Private: hypothesis reseeds the module-level generator inside its tests.
_random = random.Random()
_LISTENER_PORTS = 12000  # how many ports below the ephemeral range to choose from


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago, for a server to bind.

    Chosen below the kernel's ephemeral range, not by binding port 0: the kernel hands
    out port-0 binds and the local ports of outgoing connections from that same range,
    so between this probe and the server's bind, a client connection (to Redis, of the
    load generator) could take the port and keep it: "Address already in use". Ports
    below the range are only ever taken by an explicit bind, as here.
    """
    low = _ephemeral_range_start()
    if low <= 2048:  # a machine whose ephemeral range leaves nothing below it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port
    for _ in range(200):
        port = _random.randrange(max(1024, low - _LISTENER_PORTS), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free loopback port below {low}")


def _ephemeral_range_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default
