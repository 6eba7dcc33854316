"""The composition root: the only place that picks concrete stores, builds HTTP
sessions for key sets, loads files and wires services together."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import requests
from flask import Flask

from app.api import explain as explain_api
from app.api import meta, oauth, observe, oidc, projects, revocations
from app.api.errors import register_error_handlers
from app.api.hot_paths import HotPaths
from app.api.limits import install_rate_limits, trust_proxies
from app.api.observe import install_request_hooks
from app.api.services import EXTENSION_KEY, Services
from app.audit import AuditTrail
from app.auth.clients import ClientRegistry, load_clients_file
from app.errors import ConfigurationError, StoreMayEvict, StoreUnavailable
from app.exchange import EPOCH_MARGIN_SECONDS, TokenExchange
from app.explain import TokenExplainer
from app.oidc.dev_issuer import (
    dev_issuer_config,
    dev_issuer_keyset,
    load_or_create_dev_issuer_key,
)
from app.oidc.keysets import CachedKeySet, HttpKeySetFetcher
from app.oidc.verify import TrustedIssuers
from app.private_files import write_private_file
from app.publishers.policy_files import load_policy_dir
from app.publishers.providers import PROVIDERS
from app.registrations import LivePublishers, PublisherRegistrations
from app.settings import MAX_TOKEN_TTL, Settings, load_settings
from app.stores.base import (
    AuditLog,
    HealthCheck,
    RegistrationStore,
    ReplayStore,
    RevocationStore,
)
from app.stores.memory import MemoryStore
from app.stores.rate_limits import rate_limiter
from app.stores.redis import RedisStore, connect
from app.tokens.keys import KeyRing, generate_signing_key_pem, load_key_ring
from app.tokens.mint import UploadTokenMinter
from app.tokens.revocation import TokenIntrospector, TokenRevoker
from app.tokens.verify import UploadTokenVerifier

log = logging.getLogger(__name__)

# The whole request body limit; endpoints may set tighter ones.
MAX_REQUEST_BYTES = 64 * 1024


@dataclass(frozen=True)
class Stores:
    replay: ReplayStore
    revocations: RevocationStore
    registrations: RegistrationStore
    audit: AuditLog
    health: tuple[HealthCheck, ...]
    in_memory: bool


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings(os.environ)
    issuers = build_trusted_issuers(settings)
    trusted_issuers = {name: issuers.urls(name) for name in PROVIDERS}
    publishers = load_policy_dir(settings.policies_dir, trusted_issuers)
    key_ring = build_key_ring(settings)
    clients = (
        load_clients_file(settings.clients_file) if settings.clients_file else ClientRegistry()
    )
    stores = build_stores(settings)
    try:
        # Start the epoch now rather than at the first exchange: a new deployment
        # refuses the tokens of its epoch's first 90 s (app.exchange), which then pass
        # while it starts rather than after its first request.
        stores.revocations.current_epoch()
        for check in stores.health:
            check.ping()
        if stores.in_memory:
            # Development only: no index declared projects to a store that lives and dies
            # with this process, and pending publishers should work in `make run`.
            stores.registrations.confirm_projects()
    except StoreMayEvict as exc:
        # Found at start-up, it stops the deployment as a bad policy file does; found
        # later (a change of Redis's settings), readiness reports it (app.api.meta).
        raise ConfigurationError(
            f"Redis may evict trustpub's keys ({exc.detail}): a revocation or a replay "
            "record could vanish before its time. Set maxmemory-policy to noeviction "
            "(docs/kubernetes.md, Persistence)"
        ) from None
    except StoreUnavailable:
        log.warning("the store is unreachable at start-up; requests will fail until it is back")
    if settings.dev:
        log.warning(
            "DEVELOPMENT SETUP: %s stores, signing keys from %s, the local development issuer "
            "is trusted; never expose this service",
            "in-memory" if stores.in_memory else "Redis",
            settings.signing_keys or settings.dev_dir,
        )

    audit = AuditTrail(stores.audit, time.time)
    # Policy files and registered publishers, one snapshot per process (see
    # app.registrations): the exchange and explain read it without touching the store.
    registry = LivePublishers(
        publishers,
        stores.registrations,
        PROVIDERS,
        trusted_issuers,
        clock=time.time,
        poll_interval=settings.registrations_poll_ms / 1000,
        audit=audit,  # records the purge of expired pending publishers
    )
    registry.try_refresh()
    exchange = TokenExchange(
        issuers=issuers,
        providers=dict(PROVIDERS),
        publishers=registry,
        replay=stores.replay,
        publisher_limits=rate_limiter(
            settings.rate_limit_storage, settings.publisher_rate_limit, "trustpub/publisher"
        ),
        minter=UploadTokenMinter(
            keys=key_ring,
            issuer=settings.token_issuer,
            audience=settings.upload_audience,
            ttl=settings.token_ttl,
            prefix=settings.token_prefix,
        ),
        audience=settings.audience,
        enabled=settings.enabled,
        clock=time.time,
        registrations=registry,
        audit=audit,
        epoch_margin=0 if stores.in_memory else EPOCH_MARGIN_SECONDS,
    )
    # The same issuers, providers and registry as the exchange: its report cannot
    # differ from what the exchange decides.
    explainer = TokenExplainer(
        issuers=issuers,
        providers=dict(PROVIDERS),
        publishers=registry,
        audience=settings.audience,
        enabled=settings.enabled,
        clock=time.time,
    )

    verifier = build_upload_verifier(settings, key_ring)
    app = Flask(__name__)
    # Before any route exists (each takes the map's setting when added): a doubled slash
    # names no route. Merged, it would get Werkzeug's HTML 308 to the merged path, which a
    # client may follow with its token in the body.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = Services(
        settings=settings,
        exchange=exchange,
        explainer=explainer,
        introspector=TokenIntrospector(verifier, stores.revocations, time.time),
        revoker=TokenRevoker(
            verifier, stores.revocations, time.time, MAX_TOKEN_TTL, audit, issuers.providers()
        ),
        clients=clients,
        key_ring=key_ring,
        health_checks=stores.health,
        audience=settings.audience,
        publisher_count=len(publishers),
        enabled=settings.enabled,
        registrations=PublisherRegistrations(
            publishers=registry,
            store=stores.registrations,
            providers=PROVIDERS,
            trusted_issuers=trusted_issuers,
            audit=audit,
            pending_ttl=settings.pending_publisher_days * 86400,
            clock=time.time,
        ),
    )
    app.extensions[EXTENSION_KEY] = services
    for module in (oidc, oauth, revocations, meta, observe, projects):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(explain_api.blueprint)
    rate_checks = install_rate_limits(
        app,
        settings,
        lambda limit, name: rate_limiter(settings.rate_limit_storage, limit, "trustpub/" + name),
    )
    app.wsgi_app = HotPaths(app.wsgi_app, services, rate_checks, MAX_REQUEST_BYTES)  # type: ignore[method-assign]
    trust_proxies(app, settings)  # outside the hot paths: they limit by the client's address
    install_request_hooks(app)  # after: a rate-limited request is measured by its endpoint
    register_error_handlers(app)
    return app


def build_revoker(settings: Settings, *, verify_tokens: bool = True) -> TokenRevoker:
    """The revocation service alone, for the CLI: keys, store and the issuers' names,
    no policies and no key sets. Without `verify_tokens`, no key is loaded: revoking a
    project, a publisher or a jti needs none, and the operator's machine then need not
    hold the private signing keys.

    Its clock is the store's. The replicas' clocks are within CLOCK_SKEW_SECONDS of each
    other; an operator's laptop is not: one 5 minutes behind would leave the last 5
    minutes' tokens out of a default `before`, one ahead would let a token's entry expire
    before the token."""
    verifier = build_upload_verifier(settings, build_key_ring(settings)) if verify_tokens else None
    stores = build_stores(settings)
    clock = stores.revocations.server_time
    audit = AuditTrail(stores.audit, clock)
    issuers = build_trusted_issuers(settings).providers()
    return TokenRevoker(verifier, stores.revocations, clock, MAX_TOKEN_TTL, audit, issuers)


def build_upload_verifier(settings: Settings, key_ring: KeyRing) -> UploadTokenVerifier:
    return UploadTokenVerifier(
        keys=key_ring,
        issuer=settings.token_issuer,
        audience=settings.upload_audience,
        prefix=settings.token_prefix,
    )


def build_trusted_issuers(settings: Settings) -> TrustedIssuers:
    issuers = TrustedIssuers()
    configs = [
        # A kill switch covers every issuer of its provider, custom ones included.
        PROVIDERS[name].issuer_config(url, enabled=name not in settings.disabled_providers)
        for name, urls in settings.provider_issuers.items()
        for url in urls
    ]
    key_origins = {config.url: config.key_origins for config in configs}
    fetcher = HttpKeySetFetcher(requests.Session(), key_origins=key_origins)
    for config in configs:
        issuers.add(config, CachedKeySet(config.url, fetcher, provider=config.provider))
    if settings.dev:
        key = load_or_create_dev_issuer_key(settings.dev_dir)
        config = dev_issuer_config(enabled="github" not in settings.disabled_providers)
        issuers.add(config, dev_issuer_keyset(key))
    return issuers


def build_key_ring(settings: Settings) -> KeyRing:
    if settings.signing_keys is not None:
        return load_key_ring(settings.signing_keys, settings.signing_kid)
    # Development only (settings refuse a missing key otherwise): one generated key,
    # kept in the development directory so tokens survive a restart.
    key_dir = settings.dev_dir / "signing-keys"
    write_private_file(key_dir / "dev-signing-key.pem", generate_signing_key_pem())
    return load_key_ring(key_dir, settings.signing_kid)


def build_stores(settings: Settings) -> Stores:
    if settings.redis_url is None:
        memory = MemoryStore(audit_max_length=settings.audit_max_length)
        return Stores(
            replay=memory,
            revocations=memory,
            registrations=memory,
            audit=memory,
            health=(memory,),
            in_memory=True,
        )
    redis_store = RedisStore(
        connect(settings.redis_url),
        min_replicas=settings.redis_min_replicas,
        audit_max_length=settings.audit_max_length,
    )
    return Stores(
        replay=redis_store,
        revocations=redis_store,
        registrations=redis_store,
        audit=redis_store,
        health=(redis_store,),
        in_memory=False,
    )
