"""A loopback TCP server for tests that speak raw bytes to a client under test.

A thread accepts, a thread per connection runs the subclass's `serve`, and leaving the
`with` block shuts every connection down, which ends a client's read stuck on one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self


class RawLoopbackServer:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # close() does not wake a blocked accept()
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def serve(self, connection: socket.socket) -> None:
        """Answer one accepted connection (on a thread of its own)."""
        raise NotImplementedError

    def track(self, sock: socket.socket) -> None:
        """Shut `sock` down too when the server stops."""
        with self._lock:
            self._sockets.append(sock)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.track(connection)
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()
