"""Issuer key sets: fetched over TLS through discovery, cached, refreshed without stampedes.

A warm cache never waits for the network: keys past their time-to-live keep serving
while a background thread refreshes them. An unknown `kid` triggers at most one
refresh per `min_refresh_interval` per issuer, shared by every concurrent request (they
wait for the one running refresh, then find the fresh set). A failed fetch keeps the
last good set for `max_stale` seconds and is itself remembered for `failure_backoff`
seconds, so neither a provider outage nor an attacker spraying random `kid`s turns
requests into outbound fetches.

Every refresh runs on its own thread, at most one per issuer, and a request waits for
it at most `max_wait` seconds from the moment it started. Per-read socket timeouts do
not bound a fetch: a server that trickles its headers or body a byte at a time keeps
every read within them, and one read of http.client's may go on for ever (interim
responses, chunk lines, trailers). At the fetch's deadline its sockets are shut down
(app.oidc.fetch_deadline), which ends any read in progress; the fetch also checks the
deadline after every read of the body. No lock is held across the network, so requests
never queue behind a fetch.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
import requests
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.errors import InvalidToken, KeySetUnavailable
from app.metrics import labelled, metrics
from app.oidc.fetch_deadline import SocketDeadline, watch_sockets
from app.oidc.jws import PublicKey

log = logging.getLogger(__name__)

Clock = Callable[[], float]

MAX_KEYS = 64


class KeySetFetchError(Exception):
    """Fetching or parsing an issuer's key set failed; the message is safe to log."""


@dataclass(frozen=True)
class IssuerKey:
    """One of an issuer's public keys, and the algorithm its key set declares it for."""

    key: PublicKey
    # None when the key set names none (RFC 7517 makes "alg" optional).
    alg: str | None = None

    def for_algorithm(self, alg: str) -> PublicKey:
        # A key serves one algorithm (RFC 8725 §3.1): a token naming another one was not
        # made with this key as its issuer meant it to be used.
        if self.alg is not None and self.alg != alg:
            raise InvalidToken(
                f"token algorithm {alg!r} is not the one its key is published for ({self.alg!r})"
            )
        return self.key


class KeySet(Protocol):
    def key_for(self, kid: str, alg: str) -> PublicKey:
        """The issuer's public key `kid`, for a token signed with `alg`; raises InvalidToken
        or KeySetUnavailable."""
        ...


class KeySetFetcher(Protocol):
    def fetch(self, issuer: str) -> Mapping[str, IssuerKey]: ...


@dataclass(frozen=True)
class KeySetPolicy:
    ttl: float = 3600.0
    min_refresh_interval: float = 60.0
    failure_backoff: float = 10.0
    max_stale: float = 24 * 3600.0
    # Real seconds a request waits for a refresh, counted from when the refresh began.
    # Coupled: at least HttpKeySetFetcher's deadline (4 s), so a fetch that keeps its
    # deadline is always waited for, and under the publish action's 5 s timeout.
    max_wait: float = 4.5


@dataclass(frozen=True)
class _Snapshot:
    keys: Mapping[str, IssuerKey]
    fetched_at: float


class StaticKeySet:
    """Keys known without any fetch (the development issuer), declaring no algorithm."""

    def __init__(self, keys: Mapping[str, PublicKey]) -> None:
        self._keys = dict(keys)

    def key_for(self, kid: str, alg: str) -> PublicKey:
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("token 'kid' is not in the issuer's key set")
        return key


@dataclass(frozen=True)
class _Refresh:
    """One running refresh: set when it has finished, waited for until `wait_until`."""

    done: threading.Event
    wait_until: float  # time.monotonic()


class CachedKeySet:
    def __init__(
        self,
        issuer: str,
        fetcher: KeySetFetcher,
        policy: KeySetPolicy | None = None,
        clock: Clock = time.monotonic,
        provider: str = "unknown",
    ) -> None:
        self._issuer = issuer
        self._provider = provider  # the refreshes metric's label: bounded, unlike the URL
        self._fetcher = fetcher
        self._policy = policy or KeySetPolicy()
        # The cache's notion of time (TTL, intervals, staleness); waiting for a running
        # fetch is always measured in real time.
        self._clock = clock
        # Guards the fields below; never held across the network.
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._next_attempt_at = float("-inf")
        self._refresh: _Refresh | None = None

    def key_for(self, kid: str, alg: str) -> PublicKey:
        now = self._clock()
        snapshot = self._usable_snapshot(now)
        if snapshot is not None and kid in snapshot.keys:
            if now - snapshot.fetched_at > self._policy.ttl:
                self._start_refresh(now)  # in the background: this request does not wait
            return snapshot.keys[kid].for_algorithm(alg)
        refresh = self._start_refresh(now)
        if refresh is not None:
            refresh.done.wait(max(0.0, refresh.wait_until - time.monotonic()))
        snapshot = self._usable_snapshot(self._clock())
        if snapshot is None:
            raise KeySetUnavailable(
                "the CI provider's signing keys cannot be fetched right now; retry later"
            )
        key = snapshot.keys.get(kid)
        if key is None:
            raise InvalidToken("token 'kid' is not in the issuer's key set")
        return key.for_algorithm(alg)

    def _usable_snapshot(self, now: float) -> _Snapshot | None:
        snapshot = self._snapshot
        if snapshot is None or now - snapshot.fetched_at > self._policy.max_stale:
            return None
        return snapshot

    def _start_refresh(self, now: float) -> _Refresh | None:
        """The running refresh, or a new one if none runs and the rate limit allows it."""
        with self._lock:
            if self._refresh is not None:
                return self._refresh  # shared: concurrent requests cause one fetch
            if now < self._next_attempt_at:
                return None
            refresh = _Refresh(threading.Event(), time.monotonic() + self._policy.max_wait)
            self._refresh = refresh
        try:
            threading.Thread(
                target=self._run_refresh, args=(refresh,), name="keyset-refresh", daemon=True
            ).start()
        except RuntimeError:
            # No thread to be had (the process is out of them): a failed fetch, recorded
            # as one, or this issuer would wait for its running refresh forever.
            log.error("key set refresh for issuer %s could not start a thread", self._issuer)
            with self._lock:
                self._refresh = None
                self._next_attempt_at = now + self._policy.failure_backoff
            refresh.done.set()
            return None
        return refresh

    def _run_refresh(self, refresh: _Refresh) -> None:
        try:
            keys = self._fetcher.fetch(self._issuer)
        except Exception as exc:
            # Any failure, not only KeySetFetchError: a refresh thread that dies without
            # recording it would leave the issuer without refreshes for good.
            if not isinstance(exc, KeySetFetchError):
                log.exception("key set refresh crashed for issuer %s", self._issuer)
            else:
                log.warning("key set refresh failed for issuer %s: %s", self._issuer, exc)
            labelled(metrics().key_set_refreshes, self._provider, "error").inc()
            with self._lock:
                self._next_attempt_at = self._clock() + self._policy.failure_backoff
        else:
            labelled(metrics().key_set_refreshes, self._provider, "success").inc()
            now = self._clock()
            with self._lock:
                self._snapshot = _Snapshot(keys=keys, fetched_at=now)
                self._next_attempt_at = now + self._policy.min_refresh_interval
            if keys:
                log.info("key set refreshed for issuer %s: %d key(s)", self._issuer, len(keys))
            else:
                log.warning(
                    "key set of issuer %s lists no usable signing key: its tokens are refused",
                    self._issuer,
                )
        finally:
            with self._lock:
                self._refresh = None
            refresh.done.set()


class HttpKeySetFetcher:
    """Discovery, then JWKS, over HTTPS with timeouts, a size cap and a total deadline."""

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout: float = 2.0,
        deadline: float = 4.0,
        max_bytes: int = 256 * 1024,
        key_origins: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._session = session
        watch_sockets(session)  # the deadline ends a read in progress (app.oidc.fetch_deadline)
        # An issuer's cookies are kept by no one: requests' jar has no bound, and a failing
        # issuer could add megabytes with every answer, sent back with every fetch.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # By issuer: the origins besides its own that may serve its keys.
        self._key_origins = dict(key_origins or {})
        self._timeout = timeout
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._jwks_uris: dict[str, str] = {}

    def fetch(self, issuer: str) -> Mapping[str, IssuerKey]:
        deadline = time.monotonic() + self._deadline
        jwks_uri = self._jwks_uris.get(issuer) or self._discover(issuer, deadline)
        try:
            keys = parse_jwks(self._get_json(jwks_uri, deadline))
        except KeySetFetchError:
            self._jwks_uris.pop(issuer, None)  # rediscover next time: the URI may have moved
            raise
        self._jwks_uris[issuer] = jwks_uri
        return keys

    def _discover(self, issuer: str, deadline: float) -> str:
        document = self._get_json(f"{issuer}/.well-known/openid-configuration", deadline)
        if document.get("issuer") != issuer:
            raise KeySetFetchError("discovery document names a different issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeySetFetchError("discovery document has no jwks_uri")
        # Keys come from the issuer's own origin or one configured for it: a compromised
        # or spoofed discovery document must not point the verifier at an arbitrary host.
        # Judged on the URL as requests sends it, which is then the URL fetched: urlsplit
        # and requests read some spellings as two hosts ("https://other.example\@issuer/"
        # is the issuer's to urlsplit, other.example's to requests).
        jwks_uri = _as_sent(jwks_uri)
        allowed = {_origin(issuer), *map(_origin, self._key_origins.get(issuer, ()))}
        if _origin(jwks_uri) not in allowed:
            raise KeySetFetchError("jwks_uri is not on an origin allowed for the issuer")
        return jwks_uri

    def _get_json(self, url: str, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KeySetFetchError("deadline exceeded")
        timeout = min(self._timeout, remaining)
        cut_off = SocketDeadline(remaining)
        try:
            with (
                cut_off,
                self._session.get(
                    url,
                    timeout=(timeout, timeout),
                    stream=True,
                    allow_redirects=False,
                    # The body is read raw, undecoded, and capped in bytes: asked for as is,
                    # or the session's default "gzip, deflate" lets an issuer's CDN answer
                    # bytes that no parser here reads, and every fetch fails.
                    headers={"Accept": "application/json", "Accept-Encoding": "identity"},
                ) as response,
            ):
                if response.status_code != 200:
                    raise KeySetFetchError(f"{url} answered HTTP {response.status_code}")
                encoding = response.headers.get("Content-Encoding", "identity")
                if encoding.strip().lower() != "identity":
                    raise KeySetFetchError(f"{url} answered an encoded body nobody asked for")
                body = bytearray()
                # read1: what one read brings, so the deadline is checked after every
                # read (each within the timeout) where a chunk of 16 KiB could take a
                # trickled body past it many times over.
                while chunk := response.raw.read1(16 * 1024):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise KeySetFetchError(f"{url} answered more than {self._max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise KeySetFetchError(f"{url}: was too slow")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # Ended by its deadline (its socket shut down), or by a failure of its own.
            reason = "was too slow" if cut_off.expired else type(exc).__name__
            raise KeySetFetchError(f"{url}: {reason}") from exc
        if cut_off.expired:
            # What was read ends where the socket was shut, wherever http.client was: in
            # the headers, in the trailers. A truncated answer may still parse.
            raise KeySetFetchError(f"{url}: was too slow")
        try:
            document = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise KeySetFetchError(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise KeySetFetchError(f"{url} did not answer a JSON object")
        return document


def parse_jwks(document: Mapping[str, Any]) -> dict[str, IssuerKey]:
    """Public signing keys by `kid`; keys that are unusable or ambiguous are skipped.

    A set that lists none is the issuer's answer, not a failure: it replaces the cached
    set like any other, so an issuer that withdraws every key (a compromise) is believed
    at the next refresh, rather than its old keys trusted for `max_stale`."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise KeySetFetchError("key set has no 'keys' list")
    keys: dict[str, IssuerKey] = {}
    ambiguous: set[str] = set()
    for entry in entries[:MAX_KEYS]:
        key = _signing_key(entry)
        if key is None:
            continue
        kid = entry["kid"]
        if keys.get(kid, key) != key:
            # Which of two keys a token's kid means cannot be known; guessing would make
            # the verdict depend on the order of the set. (The same key twice is one key.)
            ambiguous.add(kid)
        keys[kid] = key
    for kid in ambiguous:
        log.warning("key set names more than one signing key %r: none of them is used", kid[:64])
        del keys[kid]
    return keys


def _signing_key(entry: object) -> IssuerKey | None:
    """The public signing key an entry of a key set holds, or None if it holds none."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
        return None
    alg = entry.get("alg")
    if alg is not None and not isinstance(alg, str):
        return None
    if any(private in entry for private in ("d", "p", "q")):
        return None  # never treat a leaked private key document as a key set
    try:
        key = jwt.PyJWK(entry).key
    # NotImplementedError: an entry with "alg": "none".
    except (
        jwt.PyJWKError,
        jwt.InvalidKeyError,
        ValueError,
        TypeError,
        KeyError,
        NotImplementedError,
    ):
        return None
    # Symmetric ("oct") entries parse too; they are never a signing key of a CI issuer.
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Ed25519PublicKey):
        return IssuerKey(key, alg)
    return None


def _as_sent(url: str) -> str:
    """`url` as requests prepares it for the wire: one host for every parser."""
    try:
        prepared = requests.Request("GET", url).prepare().url
    except (requests.RequestException, ValueError):
        raise KeySetFetchError("discovery document's jwks_uri is not a URL") from None
    if prepared is None:
        raise KeySetFetchError("discovery document's jwks_uri is not a URL")
    return prepared


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port
