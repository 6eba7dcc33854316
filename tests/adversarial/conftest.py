"""Fixtures for the adversarial suite: the integration app plus servers an attacker owns.

The app, its settings, the token factories and the Redis view are the integration
suite's own fixtures, imported rather than copied, so an adversarial case runs against
exactly what production builds. Added here: a plain-HTTP loopback server and a second
HTTPS OIDC issuer that stand for URLs an attacker names in a token; tests assert that
the service never contacted either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# Re-exported fixtures (pytest finds fixtures by name in this module's namespace).
from integration.conftest import (  # noqa: F401
    app,
    client,
    make_app,
    make_claims,
    make_settings,
    make_token,
    sign_raw,
    signing_key_path,
    store,
)
from support.oidc_issuer import OIDCIssuer
from support.tls import TestCA

ATTACKER_KID = "attacker-key"


class CountingServer:
    """A plain-HTTP server on loopback that answers 200 to anything and counts requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner._hit()
                body = b'{"keys": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _hit(self) -> None:
        with self._lock:
            self._count += 1

    @property
    def requests(self) -> int:
        with self._lock:
            return self._count

    def reset(self) -> None:
        with self._lock:
            self._count = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="session")
def attacker_http_server() -> Iterator[CountingServer]:
    server = CountingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def attacker_http(attacker_http_server: CountingServer) -> CountingServer:
    """The attacker's plain-HTTP URL, with its request count zeroed."""
    attacker_http_server.reset()
    return attacker_http_server


@pytest.fixture(scope="session")
def attacker_issuer_server(test_ca: TestCA) -> Iterator[OIDCIssuer]:
    # Trusted by the same test CA as the real issuer: if the service ever fetched from
    # it, TLS would succeed and the request would be counted.
    with OIDCIssuer(test_ca, "/attacker") as issuer:
        issuer.add_key(ATTACKER_KID)
        yield issuer


@pytest.fixture
def attacker_issuer(attacker_issuer_server: OIDCIssuer) -> OIDCIssuer:
    """A real HTTPS OIDC issuer that the app does NOT trust; its keys are the attacker's."""
    attacker_issuer_server.healthy()
    attacker_issuer_server.reset_counts()
    return attacker_issuer_server
