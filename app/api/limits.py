"""Rate limits per source address and per API client, checked before a view runs.

Per-publisher limits on minting need the verified token, so they live in the exchange
(`app.exchange`); these are the cheap, early ones that stop a flood before any
signature is checked. A refusal is a `RateLimited` error, rendered like every other.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import RateLimited
from app.settings import Settings
from app.stores.base import RateLimiter

# (limit, namespace) -> a limiter: the composition root decides where counters live.
LimiterFactory = Callable[[str, str], RateLimiter]
KeyFunction = Callable[[], str]


def install_rate_limits(app: Flask, settings: Settings, make_limiter: LimiterFactory) -> None:
    if settings.trusted_proxies:
        # Without this every client would share the proxy's address (and one limit).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]

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
    ):
        limited[endpoint] = registration
    for endpoint, checks in limited.items():
        app.view_functions[endpoint] = _limited(app.view_functions[endpoint], checks)


def _limited(view: Callable[..., Any], checks: list[tuple[RateLimiter, KeyFunction]]) -> Any:
    @functools.wraps(view)
    def limited_view(*args: Any, **kwargs: Any) -> Any:
        for limiter, key in checks:
            retry_after = limiter.hit(key())
            if retry_after is not None:
                raise RateLimited(
                    "too many requests; retry after the time in Retry-After", retry_after
                )
        return view(*args, **kwargs)

    return limited_view


def _client_address() -> str:
    return request.remote_addr or "unknown"


def _api_client() -> str:
    """One bucket per credential (hashed: no secret in the limit store), else per address."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return "addr:" + _client_address()
    return "client:" + hashlib.sha256(authorization.encode("utf-8", "replace")).hexdigest()[:32]
