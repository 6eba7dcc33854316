"""A GitHub Actions OIDC token service on loopback, the way a runner's job sees it.

A job with `permissions: id-token: write` gets two variables: the service URL
(`ACTIONS_ID_TOKEN_REQUEST_URL`, which already has a query) and a bearer token for it
(`ACTIONS_ID_TOKEN_REQUEST_TOKEN`). `id` (and so the publish action) sends
`GET <url>&audience=<aud>` with `Authorization: bearer <token>` and reads `value`
from the JSON answer. The tokens are signed by the session's OIDCIssuer, whose
discovery document and JWKS trustpub fetches over HTTPS like GitHub's.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.claims import github_claims
from support.oidc_issuer import OIDCIssuer

from .servers import LoopbackServer, server_context

TOKEN_PATH = "/_apis/pipelines/workflows/8105469023/idtoken"
API_VERSION = "2.0"


class GitHubTokenService(LoopbackServer):
    def __init__(self, issuer: OIDCIssuer) -> None:
        cert, key = issuer.ca.issue_server_cert(["127.0.0.1", "localhost"])
        self.issuer = issuer
        self.request_token = secrets.token_urlsafe(24)
        self._lock = threading.Lock()
        self._issued: list[dict[str, Any]] = []
        self._overrides: dict[str, Any] = {}
        super().__init__(_TokenHandler, server_context(cert, key))

    @property
    def request_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}?api-version={API_VERSION}"

    def job_environment(self) -> dict[str, str]:
        """The variables a GitHub Actions job with `id-token: write` has."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.request_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def set_claims(self, **overrides: Any) -> None:
        """Claims that differ from support.claims.github_claims for the next tokens."""
        with self._lock:
            self._overrides = dict(overrides)

    def issued(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(claims) for claims in self._issued]

    def issue(self, audience: str) -> str:
        with self._lock:
            claims = github_claims(self.issuer.url, audience, **self._overrides)
            self._issued.append(claims)
        return self.issuer.sign(claims)


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: GitHubTokenService

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        scheme, _, credential = self.headers.get("Authorization", "").partition(" ")
        if url.path != TOKEN_PATH or query.get("api-version") != [API_VERSION]:
            self._send(404, {"message": "not found"})
        elif scheme.lower() != "bearer" or credential != self.server.request_token:
            self._send(401, {"message": "bad request token"})
        elif len(query.get("audience", [])) != 1:
            self._send(400, {"message": "one audience is required"})
        else:
            token = self.server.issue(query["audience"][0])
            self._send(200, {"count": 1, "value": token})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass
