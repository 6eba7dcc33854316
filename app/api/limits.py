"""Rate limits per source address and per API client, with flask-limiter.

Per-publisher limits on minting need the verified token, so they live in the exchange
(`app.exchange`); these are the cheap, early ones that stop a flood before any
signature is checked.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter, RequestLimit
from werkzeug.middleware.proxy_fix import ProxyFix

from app.api.errors import render
from app.errors import RateLimited
from app.settings import Settings


def install_rate_limits(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        # Without this every client would share the proxy's address (and one limit).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    limiter = Limiter(
        _client_address,
        app=app,
        storage_uri=settings.rate_limit_storage,
        strategy="fixed-window",
        # Its headers would also stamp Retry-After on 200s and stretch a 503's;
        # `_breached` sets the one Retry-After that matters.
        headers_enabled=False,
        on_breach=_breached,
        # A shared limit store that is down must not take publishing down with it:
        # fall back to per-process counting (the replay store still fails closed).
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="trustpub",
    )
    limited = {
        "oidc.mint_token": (settings.mint_rate_limit, _client_address),
        # Unauthenticated and verifies signatures like mint-token: its own budget, same size.
        "explain.explain": (settings.mint_rate_limit, _client_address),
        "oauth.introspect": (settings.introspect_rate_limit, _api_client),
        "oauth.revoke": (settings.revoke_rate_limit, _client_address),
        "revocations.create_revocation": (settings.revoke_rate_limit, _api_client),
    }
    for endpoint, (limit, key) in limited.items():
        view = app.view_functions[endpoint]
        wrapped: Any = limiter.limit(limit, key_func=key)(view)
        app.view_functions[endpoint] = wrapped
    # Registration changes: one budget per client key and another per source address,
    # so neither a leaked key nor one address with many keys can churn the registry.
    for endpoint in (
        "projects.add_publisher",
        "projects.remove_publisher",
        "projects.declare_project",
    ):
        view = app.view_functions[endpoint]
        per_client = limiter.limit(
            settings.registration_rate_limit, key_func=_api_client, scope="registration-client"
        )
        per_address = limiter.limit(
            settings.registration_rate_limit,
            key_func=_client_address,
            scope="registration-address",
        )
        limited_view: Any = per_address(per_client(view))
        app.view_functions[endpoint] = limited_view


def _breached(limit: RequestLimit) -> Response:
    return render(
        "rate-limited",
        "too many requests; retry after the time in Retry-After",
        429,
        retry_after=max(1, math.ceil(limit.reset_at - time.time())),
        oauth_error=RateLimited.oauth_error,
    )


def _client_address() -> str:
    return request.remote_addr or "unknown"


def _api_client() -> str:
    """One bucket per credential (hashed: no secret in the limit store), else per address."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return "addr:" + _client_address()
    return "client:" + hashlib.sha256(authorization.encode("utf-8", "replace")).hexdigest()[:32]
