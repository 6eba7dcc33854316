"""Rate limits per source address and per API client, checked before a view runs.

Per-publisher limits on minting need the verified token, so they live in the exchange
(`app.exchange`); these are the cheap, early ones that stop a flood before any
signature is checked. A refusal is a `RateLimited` error, rendered like every other.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.auth.clients import presented_credential
from app.errors import RateLimited
from app.settings import Settings
from app.stores.base import RateLimiter

# (limit, namespace) -> a limiter: the composition root decides where counters live.
LimiterFactory = Callable[[str, str], RateLimiter]
# A budget's key for a request, from its WSGI environ (the one thing Flask views and the
# hot paths both have).
KeyFunction = Callable[[Mapping[str, Any]], str]
# Charges a request to its endpoint's budgets; raises RateLimited when one is spent.
RateCheck = Callable[[Mapping[str, Any]], None]


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Take the client's address from X-Forwarded-For when a trusted proxy set it.

    Install it outside every middleware that reads the address (the hot paths).
    """
    if settings.trusted_proxies:
        # Without this every client would share the proxy's address (and one limit).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]


def install_rate_limits(
    app: Flask, settings: Settings, make_limiter: LimiterFactory
) -> dict[str, RateCheck]:
    """Wrap the limited views in their checks; returns the checks by endpoint."""

    def own_budget(limit: str, endpoint: str, key: KeyFunction) -> tuple[RateLimiter, KeyFunction]:
        return make_limiter(limit, endpoint), key

    limited: dict[str, list[tuple[RateLimiter, KeyFunction]]] = {
        "oidc.mint_token": [own_budget(settings.mint_rate_limit, "mint", _client_address)],
        # Unauthenticated and verifies signatures like mint-token: its own budget, same size.
        "explain.explain": [own_budget(settings.mint_rate_limit, "explain", _client_address)],
        "oauth.introspect": [own_budget(settings.introspect_rate_limit, "introspect", _api_client)],
        "oauth.revoke": [own_budget(settings.revoke_rate_limit, "revoke", _client_address)],
        "revocations.create_revocation": [
            own_budget(settings.revoke_rate_limit, "revocations", _api_client)
        ],
    }
    # Registration changes: one budget per client key and another per source address,
    # each shared by the three endpoints, so neither a leaked key nor one address with
    # many keys can churn the registry.
    registration = [
        own_budget(settings.registration_rate_limit, "registration-address", _client_address),
        own_budget(settings.registration_rate_limit, "registration-client", _api_client),
    ]
    for endpoint in (
        "projects.add_publisher",
        "projects.remove_publisher",
        "projects.declare_project",
        "projects.declare_projects",
        "projects.confirm_projects",
    ):
        limited[endpoint] = registration
    reads = [
        own_budget(settings.read_rate_limit, "read-address", _client_address),
        own_budget(settings.read_rate_limit, "read-client", _api_client),
    ]
    for endpoint in ("projects.list_publishers", "projects.read_audit", "projects.projects_status"):
        limited[endpoint] = reads
    checks = {endpoint: _rate_check(budgets) for endpoint, budgets in limited.items()}
    for endpoint, check in checks.items():
        app.view_functions[endpoint] = _limited(app.view_functions[endpoint], check)
    return checks


def _rate_check(budgets: list[tuple[RateLimiter, KeyFunction]]) -> RateCheck:
    def check(environ: Mapping[str, Any]) -> None:
        for limiter, key in budgets:
            retry_after = limiter.hit(key(environ))
            if retry_after is not None:
                raise RateLimited(
                    "too many requests; retry after the time in Retry-After", retry_after
                )

    return check


def _limited(view: Callable[..., Any], check: RateCheck) -> Any:
    @functools.wraps(view)
    def limited_view(*args: Any, **kwargs: Any) -> Any:
        check(request.environ)
        return view(*args, **kwargs)

    return limited_view


_RATE_KEY_DOMAIN = b"trustpub rate-limit key\x00"


# An IPv6 client is usually handed a whole /64 (RFC 6177), so a budget per address would
# give it 2**64 budgets: it counts by its /64 instead, and an IPv4-mapped address as the
# IPv4 address it is.
_IPV6_BUDGET_PREFIX = 64


def _client_address(environ: Mapping[str, Any]) -> str:
    address = str(environ.get("REMOTE_ADDR") or "unknown")
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, _IPV6_BUDGET_PREFIX), strict=False))


def _api_client(environ: Mapping[str, Any]) -> str:
    """One bucket per credential, else per address."""
    authorization = environ.get("HTTP_AUTHORIZATION")
    key = _credential_key(authorization) if authorization else None
    return key or "addr:" + _client_address(environ)


# Bucket keys by a digest of the header: an index sends the same header with every
# introspection, read once; the cache holds no credential (security.md: hashes only).
# "" for a header that holds no secret. One lookup, not `in` then `[]`: another thread
# may clear the cache between the two.
_CREDENTIAL_KEYS: dict[bytes, str] = {}
_CREDENTIAL_KEYS_MAX = 256


def _credential_key(authorization: str) -> str | None:
    header_digest = hashlib.sha256(authorization.encode("utf-8", "replace")).digest()
    cached = _CREDENTIAL_KEYS.get(header_digest)
    if cached is not None:
        return cached or None
    if len(_CREDENTIAL_KEYS) >= _CREDENTIAL_KEYS_MAX:
        _CREDENTIAL_KEYS.clear()  # wrong secrets by the thousand must not grow it
    key = _key_of_secret(authorization)
    _CREDENTIAL_KEYS[header_digest] = key or ""
    return key


def _key_of_secret(authorization: str) -> str | None:
    """Keyed by the secret however the header spells it (scheme case, spaces, Basic or
    Bearer), or each spelling of one leaked key would get a budget of its own; hashed
    apart from the clients file's digests, so that the limit store holds no secret, nor
    a copy of a digest."""
    presented = presented_credential(authorization)
    if presented is None:
        return None
    secret = presented[1].encode("utf-8", "replace")
    return "client:" + hashlib.sha256(_RATE_KEY_DOMAIN + secret).hexdigest()[:32]
