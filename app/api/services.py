"""The services a view may use, wired once by `create_app` and fetched by views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import current_app

from app.auth.clients import ClientRegistry
from app.exchange import TokenExchange
from app.explain import TokenExplainer
from app.registrations import PublisherRegistrations
from app.settings import Settings
from app.stores.base import HealthCheck
from app.tokens.keys import KeyRing
from app.tokens.revocation import TokenIntrospector, TokenRevoker

EXTENSION_KEY = "trustpub"


@dataclass(frozen=True)
class Services:
    settings: Settings
    exchange: TokenExchange
    explainer: TokenExplainer
    introspector: TokenIntrospector
    revoker: TokenRevoker
    clients: ClientRegistry
    key_ring: KeyRing
    health_checks: tuple[HealthCheck, ...]
    audience: str
    publisher_count: int
    enabled: bool
    registrations: PublisherRegistrations


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION_KEY])
