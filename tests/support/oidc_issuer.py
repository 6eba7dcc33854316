"""A real HTTPS OpenID Connect issuer on loopback, with key rotation and fault injection."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import hashlib
import hmac
import json
import socket
import ssl
import threading
import weakref
from collections import Counter
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .tls import TestCA

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
JWKS_SUFFIX = "/.well-known/jwks"
# A client that connects and never finishes the handshake must not pin a thread forever.
HANDSHAKE_TIMEOUT = 5.0


class _KeyPool:
    """RSA-2048 keys shared by every issuer in the process.

    Generating one costs tens of milliseconds, and a suite rotates keys often, so keys
    are kept and handed out again. A key is held by at most one issuer at a time, so
    two issuers in one test never share key material (a token from one must not verify
    against the other's JWKS).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[rsa.RSAPrivateKey] = []
        self._held: set[int] = set()

    def acquire(self) -> tuple[int, rsa.RSAPrivateKey]:
        with self._lock:
            for index, key in enumerate(self._keys):
                if index not in self._held:
                    self._held.add(index)
                    return index, key
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self._keys.append(key)
            self._held.add(len(self._keys) - 1)
            return len(self._keys) - 1, key

    def release(self, indices: set[int]) -> None:
        with self._lock:
            self._held -= indices


_POOL = _KeyPool()


@dataclasses.dataclass
class _Faults:
    status: int | None = None
    garbage: bytes | None = None
    delay: float = 0.0
    # Gzip the answer: "offered" when the client's Accept-Encoding offers it (what a CDN
    # in front of an issuer does), "always" even when it does not.
    gzip: str | None = None
    discovery_overrides: dict[str, object] = dataclasses.field(default_factory=dict)
    # Fresh cookies set with every answer (Set-Cookie), as a load balancer might.
    cookies: int = 0

    def snapshot(self) -> _Faults:
        return dataclasses.replace(self, discovery_overrides=dict(self.discovery_overrides))


class OIDCIssuer:
    """An OIDC issuer at ``https://127.0.0.1:PORT{path}`` serving discovery and JWKS.

    It starts with one RSA key (kid ``key-1``). The port is bound at construction, so
    ``url`` is known before ``start()``, and ``stop()`` then ``start()`` reuses the
    same port, which lets a test make the issuer unreachable and bring it back.
    """

    def __init__(self, ca: TestCA, path: str = "") -> None:
        if path and (not path.startswith("/") or path.endswith("/")):
            raise ValueError(f"path must look like '/segment', got {path!r}")
        self.ca = ca
        self.path = path
        cert_path, key_path = ca.issue_server_cert(["127.0.0.1", "localhost"])
        self._ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl_context.load_cert_chain(cert_path, key_path)

        self._lock = threading.Lock()
        self._faults = _Faults()
        self._counts: Counter[str] = Counter()
        self._cookies_set = 0
        # Requests that came with a Cookie header.
        self.cookies_received = 0
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._pool_indices: set[int] = set()
        self._next_kid = 1
        self._initial_kid = self.add_key()
        self._initial_key = self._keys[self._initial_kid]
        self._initial_pool_indices = set(self._pool_indices)
        # Hand pooled keys back when the issuer is garbage collected.
        weakref.finalize(self, _POOL.release, self._pool_indices)

        self._stopping = threading.Event()
        self._server: _TLSServer | None = self._bind(0)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_SUFFIX

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_SUFFIX

    @property
    def ca_path(self) -> str:
        return str(self.ca.ca_path)

    def start(self) -> None:
        if self._thread is not None:
            return
        if self._server is None:
            self._server = self._bind(self.port)
        self._stopping.clear()
        server = self._server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"oidc-issuer-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket (connections are then refused)."""
        self._stopping.set()  # wakes handlers sleeping in an injected delay
        if self._thread is not None and self._server is not None:
            self._server.shutdown()
            self._thread.join()
        if self._server is not None:
            self._server.server_close()
        self._thread = None
        self._server = None

    def __enter__(self) -> OIDCIssuer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _bind(self, port: int) -> _TLSServer:
        return _TLSServer(("127.0.0.1", port), self, self._ssl_context)

    # -- keys ------------------------------------------------------------------

    def add_key(self, kid: str | None = None) -> str:
        """Add a fresh RSA key, which becomes ``current_kid``; return its kid."""
        with self._lock:
            if kid is None:
                kid = f"key-{self._next_kid}"
                self._next_kid += 1
            if kid in self._keys:
                raise ValueError(f"kid {kid!r} already exists")
            index, key = _POOL.acquire()
            self._pool_indices.add(index)
            self._keys[kid] = key
            return kid

    def remove_key(self, kid: str) -> None:
        # The material stays reserved until reset_keys(), so a later add_key() in the
        # same test cannot silently resurrect it under a new kid.
        with self._lock:
            del self._keys[kid]

    def reset_keys(self) -> None:
        """Back to the single initial key, with kid numbering restarted."""
        with self._lock:
            _POOL.release(self._pool_indices - self._initial_pool_indices)
            self._pool_indices.intersection_update(self._initial_pool_indices)
            self._keys = {self._initial_kid: self._initial_key}
            self._next_kid = 2

    @property
    def kids(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    @property
    def current_kid(self) -> str:
        with self._lock:
            if not self._keys:
                raise LookupError("the issuer has no keys")
            return next(reversed(self._keys))

    def private_key(self, kid: str) -> rsa.RSAPrivateKey:
        with self._lock:
            try:
                return self._keys[kid]
            except KeyError:
                raise KeyError(f"issuer has no key {kid!r}; it has {list(self._keys)}") from None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self._lock:
            return {"keys": [_public_jwk(kid, key) for kid, key in self._keys.items()]}

    # -- signing ---------------------------------------------------------------

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        kid: str | None = None,
        alg: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        key: object | None = None,
        omit_kid: bool = False,
    ) -> str:
        """Sign ``claims`` as a compact JWT.

        ``kid`` picks the signing key and the header kid (default ``current_kid``);
        ``omit_kid`` drops the kid header; ``key`` signs with any other key (an
        unrelated RSA key, an HMAC secret) while the header still names ``kid``;
        ``headers`` merge last, so they may override even ``alg`` or ``kid``.
        """
        header_kid = kid if kid is not None else self.current_kid
        signing_key: Any
        if key is not None:
            signing_key = key
        elif alg == "none":
            signing_key = None
        else:
            signing_key = self.private_key(header_kid)
        merged: dict[str, Any] = {} if omit_kid else {"kid": header_kid}
        merged.update(headers or {})
        try:
            return jwt.encode(dict(claims), signing_key, algorithm=alg, headers=merged)
        except jwt.InvalidKeyError:
            # PyJWT refuses a PEM public key as an HMAC secret; the classic
            # RS256->HS256 confusion attack needs exactly that token, so build it by hand.
            if not alg.startswith("HS") or not isinstance(signing_key, str | bytes):
                raise
            return _hmac_jwt(dict(claims), signing_key, alg, merged)

    # -- faults ----------------------------------------------------------------

    def fail_with(self, status: int) -> None:
        """Answer discovery and JWKS requests with ``status``."""
        with self._lock:
            self._faults.status = status

    def serve_garbage(self, body: bytes) -> None:
        """Answer JWKS requests with 200 and these raw bytes."""
        with self._lock:
            self._faults.garbage = body

    def delay(self, seconds: float) -> None:
        """Sleep this long before answering any request."""
        with self._lock:
            self._faults.delay = seconds

    def compress(self, when: str) -> None:
        """Gzip answers: "offered" when the request's Accept-Encoding offers gzip,
        "always" whatever it asks for."""
        with self._lock:
            self._faults.gzip = when

    def set_cookies(self, count: int) -> None:
        """Set ``count`` new cookies with every answer."""
        with self._lock:
            self._faults.cookies = count

    def override_discovery(self, **fields: object) -> None:
        """Replace fields of the discovery document (e.g. a wrong ``issuer``)."""
        with self._lock:
            self._faults.discovery_overrides.update(fields)

    def healthy(self) -> None:
        """Clear every injected fault."""
        with self._lock:
            self._faults = _Faults()

    # -- accounting ------------------------------------------------------------

    def requests(self, path_suffix: str | None = None) -> int:
        """Requests received (faulted ones included), optionally only paths ending so."""
        with self._lock:
            if path_suffix is None:
                return sum(self._counts.values())
            return sum(n for path, n in self._counts.items() if path.endswith(path_suffix))

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    # -- serving (called from handler threads) ----------------------------------

    def _respond(
        self, raw_path: str, accept_encoding: str
    ) -> tuple[int, bytes, str | None, list[str]]:
        """Status, body, Content-Encoding and Set-Cookie values of the answer to a GET
        of `raw_path`."""
        with self._lock:
            faults = self._faults.snapshot()
            self._cookies_set += faults.cookies
            first = self._cookies_set
        status, body = self._answer(raw_path, faults)
        cookies = [f"c{first - n}={'x' * 100}; Max-Age=3600" for n in range(faults.cookies)]
        offered = "gzip" in accept_encoding.lower()
        if faults.gzip == "always" or (faults.gzip == "offered" and offered):
            return status, gzip.compress(body), "gzip", cookies
        return status, body, None, cookies

    def _answer(self, raw_path: str, faults: _Faults) -> tuple[int, bytes]:
        path = raw_path.split("?", 1)[0]
        with self._lock:
            self._counts[path] += 1
        if faults.delay > 0:
            self._stopping.wait(faults.delay)
        if path == self.path + DISCOVERY_SUFFIX:
            if faults.status is not None:
                return faults.status, _json({"error": "injected failure"})
            document = self._discovery_document()
            document.update(faults.discovery_overrides)
            return HTTPStatus.OK, _json(document)
        if path == self.path + JWKS_SUFFIX:
            if faults.status is not None:
                return faults.status, _json({"error": "injected failure"})
            if faults.garbage is not None:
                return HTTPStatus.OK, faults.garbage
            return HTTPStatus.OK, _json(self.jwks())
        return HTTPStatus.NOT_FOUND, _json({"error": "not found"})

    def _discovery_document(self) -> dict[str, object]:
        # Shaped like https://token.actions.githubusercontent.com's document.
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
        }


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        issuer: OIDCIssuer,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self.issuer = issuer
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can
        # stall for seconds without a resolver; the name is never needed here.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs here, in the per-connection thread, rather than on the
        # listening socket, where one stalled client would block every other one.
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:  # includes ssl.SSLError: a client that distrusts our CA
            return
        try:
            # OSError: the client hung up, e.g. its timeout beat an injected delay.
            with contextlib.suppress(OSError):
                _Handler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 closes every connection after one response, so a stopped issuer never
    # keeps answering through a client's pooled keep-alive connection.
    protocol_version = "HTTP/1.0"
    server: _TLSServer

    def do_GET(self) -> None:
        accept_encoding = self.headers.get("Accept-Encoding", "")
        status, body, encoding, cookies = self.server.issuer._respond(self.path, accept_encoding)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        if self.headers.get("Cookie"):
            self.server.issuer.cookies_received += 1
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Silence the per-request stderr line; requests() is the record tests use.
        pass


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
    }


_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _hmac_jwt(claims: dict[str, Any], secret: str | bytes, alg: str, extra: dict[str, Any]) -> str:
    header = {"typ": "JWT", "alg": alg, **extra}
    secret_bytes = secret.encode() if isinstance(secret, str) else secret
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    digest = hmac.new(secret_bytes, signing_input.encode(), _HMAC_HASHES[alg]).digest()
    return f"{signing_input}.{_b64url(digest)}"
