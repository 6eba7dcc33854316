"""A loopback TCP proxy that can lose one reply after the server has acted on its request.

A connection that breaks between a write reaching the server and its reply reaching the
client (a failover, a restart, a middlebox resetting the connection) cannot be made to
happen at will with a real server alone: this proxy makes it happen at a chosen request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

_CHUNK = 65536


class LossyProxy:
    """Forwards every connection to 127.0.0.1:`upstream_port`, untouched until told
    to lose the reply to the next request that contains some bytes."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.replies_lost = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply_to(self, marker: bytes) -> None:
        """The next request containing `marker` reaches the server; its reply does not
        reach the client, whose connection is closed instead."""
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            except OSError:
                _close(client)  # the server is down: so is the connection through us
                continue
            with self._lock:
                self._sockets += [client, upstream]
            cut = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, cut), daemon=True
            ).start()
            threading.Thread(
                target=self._replies, args=(upstream, client, cut), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, cut: threading.Event
    ) -> None:
        while data := _receive(client):
            with self._lock:
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    # Set before the request is sent on: the next bytes the server sends
                    # back on this connection answer it.
                    cut.set()
            try:
                upstream.sendall(data)
            except OSError:
                break
        _close(client)
        _close(upstream)

    def _replies(
        self, upstream: socket.socket, client: socket.socket, cut: threading.Event
    ) -> None:
        while data := _receive(upstream):
            if cut.is_set():
                with self._lock:
                    self.replies_lost += 1
                break
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client)
        _close(upstream)


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_CHUNK)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
