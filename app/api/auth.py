"""Authenticating API callers: the functions views (and the hot paths) use."""

from __future__ import annotations

from flask import request

from app.api.services import services
from app.auth.clients import Client, ClientRegistry
from app.errors import Forbidden, Unauthenticated


def require_client(scope: str) -> Client:
    return client_with_scope(services().clients, request.headers.get("Authorization"), scope)


def client_with_scope(clients: ClientRegistry, authorization: str | None, scope: str) -> Client:
    client = clients.authenticate(authorization)
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
