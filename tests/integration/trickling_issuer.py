"""An HTTPS "issuer" that answers every request a byte at a time, forever.

Each byte arrives well within any read timeout, so only a deadline on the whole fetch
(or on how long a request waits for it) can stop a client from hanging on it. It
trickles its status line and headers (`headers`), or after complete headers its body
(`body`), one chunk-size line of a chunked body (`chunk-line`) or trailer fields after
its last chunk (`trailers`); or it floods `100 Continue` responses as fast as it can
(`interim`). The last three keep a single read of http.client's going.
"""

from __future__ import annotations

import socket
import ssl

from support.raw_server import RawLoopbackServer
from support.tls import TestCA

BYTE_INTERVAL = 0.2
PARTS = frozenset({"headers", "body", "chunk-line", "trailers", "interim"})
_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n" * 256


class TricklingIssuer(RawLoopbackServer):
    def __init__(self, ca: TestCA, *, part: str) -> None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {sorted(PARTS)}, got {part!r}")
        super().__init__()
        self._part = part
        cert_path, key_path = ca.issue_server_cert(["127.0.0.1"])
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_path, key_path)
        self.requests = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(5)
            tls = self._context.wrap_socket(connection, server_side=True)
            tls.recv(8192)
            self.track(tls)
            with self._lock:
                self.requests += 1
            if self._part == "interim":
                while not self._stopping.is_set():
                    tls.sendall(_INTERIM)
                return
            if self._part == "body":
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{"
                )
                filler = b" "
            elif self._part == "chunk-line":
                tls.sendall(_CHUNKED + b"2;ext=")
                filler = b"x"
            elif self._part == "trailers":
                tls.sendall(_CHUNKED + b"2\r\n{}\r\n0\r\n")
                filler = b"X-T: y\r\n"
            else:
                tls.sendall(b"HTTP/1.1 200 OK\r\nX-Filler: ")
                filler = b"x"
            while not self._stopping.wait(BYTE_INTERVAL):
                tls.sendall(filler)
        except OSError:
            return
