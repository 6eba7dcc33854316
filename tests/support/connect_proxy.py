"""A loopback HTTP proxy that tunnels `CONNECT` requests, as an egress proxy does.

An operator's `HTTPS_PROXY` puts one between trustpub and a CI issuer: the tests route
key-set fetches through this one to see that what bounds a direct fetch bounds a
proxied one too.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from support.raw_server import RawLoopbackServer

_CHUNK = 65536


class ConnectProxy(RawLoopbackServer):
    """Answers `CONNECT 127.0.0.1:port` with a tunnel to that port, and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.tunnels = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                data = client.recv(_CHUNK)
                if not data:
                    return
                head += data
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            host, _, port = target.rpartition(b":")
            if method != b"CONNECT" or host != b"127.0.0.1":
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
            self.track(upstream)
            with self._lock:
                self.tunnels += 1
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            _pipe(client, upstream)
        except (OSError, ValueError):
            return


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(None)
    with contextlib.suppress(OSError):
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
