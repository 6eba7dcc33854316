"""The index's public origin: a small threaded TLS reverse proxy, routing like production.

docs/deployment.md's nginx configuration sends `/_/oidc/` to trustpub and everything
else to the index, at one HTTPS origin. This proxy does the same with a route table of
path prefixes: bodies stream through in both directions, the Host header is kept and
X-Forwarded-For/-Proto/-Host are set. Each connection carries one request (HTTP/1.0
style), which every client used here handles.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from support.tls import TestCA

from .servers import LoopbackServer, server_context

CHUNK = 64 * 1024
UPSTREAM_TIMEOUT = 30.0
# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)


@dataclass(frozen=True)
class Forwarded:
    method: str
    path: str
    upstream: str
    status: int


class FrontProxy(LoopbackServer):
    """``routes``: (path prefix, upstream base URL), first match wins."""

    def __init__(self, ca: TestCA, routes: list[tuple[str, str]]) -> None:
        cert, key = ca.issue_server_cert(["127.0.0.1", "localhost"])
        self.routes = routes
        self._lock = threading.Lock()
        self._log: list[Forwarded] = []
        super().__init__(_ProxyHandler, server_context(cert, key))

    def route(self, path: str) -> str | None:
        for prefix, upstream in self.routes:
            if path.startswith(prefix):
                return upstream
        return None

    def record(self, entry: Forwarded) -> None:
        with self._lock:
            self._log.append(entry)

    def forwarded(self) -> list[Forwarded]:
        with self._lock:
            return list(self._log)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: FrontProxy

    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_PATCH(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def do_OPTIONS(self) -> None:
        self._forward()

    def _forward(self) -> None:
        upstream = self.server.route(self.path)
        if upstream is None:
            self._fail(404, "no route")
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._fail(411, "send a Content-Length")
            return
        length = int(self.headers.get("Content-Length") or 0)
        target = urlsplit(upstream)
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1", target.port or 80, timeout=UPSTREAM_TIMEOUT
        )
        try:
            try:
                connection.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and not name.lower().startswith(
                        "x-forwarded-"
                    ):
                        connection.putheader(name, value)
                connection.putheader("X-Forwarded-For", self.client_address[0])
                connection.putheader("X-Forwarded-Proto", "https")
                connection.putheader("X-Forwarded-Host", self.headers.get("Host", ""))
                connection.putheader("Connection", "close")
                connection.endheaders()
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    connection.send(chunk)
                    remaining -= len(chunk)
                response = connection.getresponse()
            except OSError:
                self.server.record(Forwarded(self.command, self.path, upstream, 502))
                self._fail(502, "upstream unreachable")
                return
            self.server.record(Forwarded(self.command, self.path, upstream, response.status))
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                while chunk := response.read(CHUNK):
                    self.wfile.write(chunk)
        finally:
            connection.close()

    def _fail(self, status: int, message: str) -> None:
        body = f"{message}\n".encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
