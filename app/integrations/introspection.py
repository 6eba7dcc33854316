"""Asking trustpub whether an upload token is active (RFC 7662), with a short cache.

The client fails closed: a timeout, a refused connection, any status but 200, a body
that is not the JSON object RFC 7662 describes, or an active answer without the claims
an index needs all raise `IntrospectionUnavailable`, which callers turn into a denial.

Cache rules (see docs/index-integration.md):

- only *active* answers are cached; inactive answers and errors never are, so a
  failure is retried on the next request and an unknown token costs one call each time;
- an entry lives at most `cache_ttl` seconds (default 10) and never past the token's
  own `exp`; a revocation therefore reaches this index within `cache_ttl` seconds;
- at most `cache_size` entries (default 1024), least recently used evicted first;
- entries are keyed by the SHA-256 of the token, so the cache holds no token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import requests
import urllib3
from requests.auth import AuthBase

log = logging.getLogger(__name__)

# twine and the publish action send upload tokens as the password of this user.
TOKEN_USERNAME = "__token__"  # noqa: S105 (a user name)

DEFAULT_CACHE_TTL = 10.0
DEFAULT_CACHE_SIZE = 1024
# Seconds to connect, and seconds to wait for each read of the answer.
DEFAULT_TIMEOUT = 5.0
# trustpub's tokens are about 1 KiB; anything far larger is refused without a call.
MAX_TOKEN_LENGTH = 8192
# An introspection answer is a few hundred bytes; a huge body is not one.
MAX_ANSWER_BYTES = 64 * 1024
# An answer that trickles in is cut off this many timeouts after it was asked for: the
# timeout bounds each read, not their sum, and the upload waits on the answer.
ANSWER_DEADLINE_TIMEOUTS = 3
# Passed with every call: proxies from the environment (HTTP_PROXY, ALL_PROXY), which
# requests would otherwise use even for a loopback trustpub, would receive the index's
# client secret and the upload token. A proxy is the caller's explicit choice: a
# `session_factory` whose sessions set one. (None is requests' "none"; its stubs say str.)
_NO_ENVIRONMENT_PROXIES = cast("dict[str, str]", {"http": None, "https": None, "all": None})
# Idle sessions kept for the next calls; past this many concurrent calls, the extra
# sessions are closed after use.
MAX_IDLE_SESSIONS = 16

INTROSPECTION_PATH = "/oauth/introspect"

_SEPARATORS = re.compile(r"[-_.]+")


class _BearerAuth(AuthBase):
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._secret}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<secret>)"


def normalize_project_name(name: str) -> str:
    """PEP 503: runs of `-`, `_` and `.` become one `-`, and letters are lower-cased."""
    return _SEPARATORS.sub("-", name).lower()


class IntrospectionUnavailable(Exception):
    """trustpub gave no trustworthy answer; the caller must deny (fail closed)."""


@dataclass(frozen=True)
class ActiveToken:
    """What an index needs from an active upload token."""

    jti: str
    subject: str
    expires_at: int
    # PEP 503-normalised names of the projects the token may upload to.
    projects: frozenset[str]
    # The CI identity it was minted for: provider, repository, workflow, ref, run_id...
    publisher: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def may_upload(self, project: str) -> bool:
        return normalize_project_name(project) in self.projects


class _ActiveCache:
    """A bounded LRU map from token digest to ActiveToken with per-entry deadlines."""

    def __init__(
        self,
        ttl: float,
        size: int,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[ActiveToken, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.size > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> ActiveToken | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            token, fresh_until = entry
            if self._monotonic() >= fresh_until or self._clock() >= token.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return token

    def now(self) -> float:
        return self._monotonic()

    def put(self, key: str, token: ActiveToken, asked_at: float) -> None:
        """Cache `token`, answered to a question sent at `asked_at` (monotonic): the TTL
        counts from then, since trustpub may have seen a revocation any time after."""
        if not self.enabled:
            return
        now = self._monotonic()
        # Never past the token's own expiry, whatever the TTL.
        fresh_until = min(asked_at + self.ttl, now + token.expires_at - self._clock())
        if fresh_until <= now:
            return
        with self._lock:
            self._entries[key] = (token, fresh_until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class IntrospectionClient:
    """Introspects upload tokens at `trustpub_url` + /oauth/introspect.

    The client authenticates with HTTP Basic (`client_id` and `client_secret`), or
    with `Authorization: Bearer <client_secret>` when `client_id` is None. The client
    needs the `introspect` scope (`trustpub clients add NAME --scope introspect`).
    Thread-safe: each call uses a `requests.Session` no other call is using at the time.
    """

    def __init__(
        self,
        trustpub_url: str,
        client_secret: str,
        *,
        client_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        session_factory: Callable[[], requests.Session] = requests.Session,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if "@" in trustpub_url:
            # Said before anything quotes the URL: it is logged at start and in errors.
            # Anywhere in it: a password holding "/" or "#" moves the "@" out of what
            # urlsplit calls the host part, and one without a scheme has no host part.
            raise ValueError(
                "trustpub_url must not hold credentials (user:password@, not shown): "
                "the client's go in client_id and client_secret"
            )
        if not trustpub_url.startswith(("http://", "https://")):
            raise ValueError("trustpub_url must be an http(s) URL (not shown)")
        if not client_secret:
            raise ValueError("client_secret is empty")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.endpoint = trustpub_url.rstrip("/") + INTROSPECTION_PATH
        self.timeout = timeout
        self._client_id = client_id
        self._client_secret = client_secret
        self._session_factory = session_factory
        self._idle_sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._closed = False
        self._clock = clock
        self.cache = _ActiveCache(cache_ttl, cache_size, clock, monotonic)

    def introspect(self, token: str) -> ActiveToken | None:
        """The token's claims if trustpub says it is active now; None if it is not.

        Raises IntrospectionUnavailable when trustpub cannot give an answer.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        key = hashlib.sha256(token.encode("ascii")).hexdigest()
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        asked_at = self.cache.now()
        answer = self._parse(self._post(token))
        if answer is not None:
            self.cache.put(key, answer, asked_at)
        return answer

    def probe(self) -> None:
        """Check reachability and credentials with a token that cannot be active.

        Raises IntrospectionUnavailable, with a message saying what is wrong.
        """
        if self._parse(self._post("trustpub-integration-probe")) is not None:
            raise IntrospectionUnavailable("trustpub called a probe token active")

    # -- HTTP ------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP sessions (their pooled connections): the idle ones now, those of
        calls under way as each returns. A later call uses a session of its own and closes it."""
        with self._sessions_lock:
            self._closed = True
            sessions, self._idle_sessions = self._idle_sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> IntrospectionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Lent per call, not kept per thread: the launcher's server runs each request in a
    # new thread, so a session per thread would open a connection per request and keep
    # each one (in CLOSE_WAIT once trustpub hangs up) for the life of the process.
    @contextmanager
    def _session(self) -> Iterator[requests.Session]:
        with self._sessions_lock:
            session = self._idle_sessions.pop() if self._idle_sessions else None
        if session is None:
            session = self._session_factory()
        try:
            yield session
        finally:
            with self._sessions_lock:
                keep = not self._closed and len(self._idle_sessions) < MAX_IDLE_SESSIONS
                if keep:
                    self._idle_sessions.append(session)
            if not keep:
                session.close()

    def _post(self, token: str) -> Any:
        # Always an `auth`: without one, requests looks up ~/.netrc and lets its entry
        # for trustpub's host replace the Authorization header.
        auth: tuple[str, str] | _BearerAuth
        if self._client_id is not None:
            auth = (self._client_id, self._client_secret)
        else:
            auth = _BearerAuth(self._client_secret)
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        deadline = time.monotonic() + ANSWER_DEADLINE_TIMEOUTS * self.timeout
        try:
            with self._session() as session:
                proxies = None if session.proxies else _NO_ENVIRONMENT_PROXIES
                with session.post(
                    self.endpoint,
                    data={"token": token},
                    auth=auth,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    proxies=proxies,
                    stream=True,
                ) as response:
                    content = _bounded_content(response, deadline)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise IntrospectionUnavailable(
                f"cannot reach trustpub at {self.endpoint}: {type(exc).__name__}"
            ) from exc
        status = response.status_code
        if status in (401, 403):
            raise IntrospectionUnavailable(
                f"trustpub refused this index's client credentials (HTTP {status}); "
                "check the client id, its secret and its 'introspect' scope"
            )
        if status != 200:
            raise IntrospectionUnavailable(f"trustpub answered HTTP {status}")
        try:
            return json.loads(content, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise IntrospectionUnavailable("trustpub's answer is not JSON") from exc

    def _parse(self, body: Any) -> ActiveToken | None:
        if not isinstance(body, dict):
            raise IntrospectionUnavailable("trustpub's answer is not a JSON object")
        active = body.get("active")
        if active is False:
            return None
        if active is not True:
            raise IntrospectionUnavailable("trustpub's answer has no boolean 'active'")
        expires_at = body.get("exp")
        projects = body.get("projects")
        scope = body.get("scope")
        jti = body.get("jti")
        subject = body.get("sub", "")
        publisher = body.get("publisher", {})
        if isinstance(expires_at, bool) or not isinstance(expires_at, int):
            raise IntrospectionUnavailable("trustpub's active answer has no integer 'exp'")
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise IntrospectionUnavailable("trustpub's active answer has no 'projects' list")
        if not isinstance(scope, str) or "upload" not in scope.split():
            raise IntrospectionUnavailable("trustpub's active answer lacks the 'upload' scope")
        if not isinstance(jti, str) or not jti:
            raise IntrospectionUnavailable("trustpub's active answer has no 'jti'")
        if not isinstance(subject, str):
            subject = ""
        if not isinstance(publisher, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in publisher.items()
        ):
            publisher = {}
        if expires_at <= self._clock():
            # trustpub's clock is behind ours; by ours the token is over.
            return None
        return ActiveToken(
            jti=jti,
            subject=subject,
            expires_at=expires_at,
            projects=frozenset(normalize_project_name(p) for p in projects),
            publisher=MappingProxyType(dict(publisher)),
        )


def _bounded_content(response: requests.Response, deadline: float) -> bytes:
    """The answer's body, read only as far as MAX_ANSWER_BYTES and the deadline allow."""
    if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        # Asked for as is: a compressed answer would be decompressed past any bound.
        raise IntrospectionUnavailable("trustpub's answer is compressed, which it never is")
    content = bytearray()
    # read1: what one read brings, so that the deadline is checked after every read (each
    # within the timeout), where a read of 16 KiB could take a trickled answer past it.
    while chunk := response.raw.read1(16 * 1024):
        content += chunk
        if len(content) > MAX_ANSWER_BYTES:
            raise IntrospectionUnavailable("trustpub's answer is too large")
        if time.monotonic() > deadline:
            raise IntrospectionUnavailable("trustpub's answer took too long to arrive")
    return bytes(content)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
