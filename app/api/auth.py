"""Authenticating API callers: the one function views use."""

from __future__ import annotations

from flask import request

from app.api.services import services
from app.auth.clients import Client
from app.errors import Forbidden, Unauthenticated


def require_client(scope: str) -> Client:
    client = services().clients.authenticate(request.headers.get("Authorization"))
    if client is None:
        raise Unauthenticated("client authentication failed")
    if not client.allows(scope):
        raise Forbidden(f"this client lacks the {scope!r} scope")
    return client


def optional_client() -> Client | None:
    return services().clients.authenticate(request.headers.get("Authorization"))


def authenticated_client() -> Client:
    """Any valid client; the use case decides what its scopes and projects allow."""
    client = optional_client()
    if client is None:
        raise Unauthenticated("client authentication failed")
    return client
