"""A scripted introspection endpoint on loopback, for the integration package's own tests.

It speaks real HTTP, so the client under test runs unchanged: its sessions, timeouts,
status and JSON handling are what is exercised. Tests script the answer per token and
read back what was asked.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from .servers import LoopbackServer

CLIENT_ID = "index"
CLIENT_SECRET = "tpc_fake-secret-for-tests"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    delay: float = 0.0


INACTIVE = Answer(200, b'{"active": false}')


def active_answer(
    projects: list[str], /, *, expires_in: int = 600, jti: str = "jti-1", **extra: Any
) -> Answer:
    now = int(time.time())
    claims: dict[str, Any] = {
        "active": True,
        "scope": "upload",
        "token_type": "Bearer",
        "iss": "urn:trustpub:test",
        "sub": "github:octo-org/demo",
        "aud": "urn:trustpub:upload:test",
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
        "jti": jti,
        "projects": projects,
        "publisher": {"provider": "github", "repository": "octo-org/demo"},
    }
    claims.update(extra)
    return Answer(200, json.dumps(claims).encode())


class FakeTrustpub(LoopbackServer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, Answer] = {}
        self._asked: list[str] = []
        self._stopping = threading.Event()
        super().__init__(_Handler)

    def answer(self, token: str, answer: Answer) -> None:
        with self._lock:
            self._answers[token] = answer

    def asked(self, token: str | None = None) -> int:
        """How many introspection requests arrived (for this token)."""
        with self._lock:
            return sum(1 for t in self._asked if token is None or t == token)

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        super().stop()

    def _respond(self, authorization: str, form: dict[str, list[str]]) -> Answer:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization not in (f"Basic {expected}", f"Bearer {CLIENT_SECRET}"):
            return Answer(401, b'{"error": "invalid_client"}')
        token = form.get("token", [""])[0]
        with self._lock:
            self._asked.append(token)
            answer = self._answers.get(token, INACTIVE)
        if answer.delay:
            self._stopping.wait(answer.delay)
        return answer


class _Handler(BaseHTTPRequestHandler):
    # One request per connection: a stopped server never answers through a pooled one.
    protocol_version = "HTTP/1.0"
    server: FakeTrustpub

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if self.path != "/oauth/introspect":
            answer = Answer(404, b'{"error": "not found"}')
        else:
            answer = self.server._respond(self.headers.get("Authorization", ""), form)
        self.send_response_only(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        pass
