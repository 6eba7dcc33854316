"""Fixtures for the exchange's integration tests: a real app on a real Redis and issuer.

`create_app(Settings(...))` builds exactly what production builds; the only test
inputs are the settings, the policy files and the tokens. Key sets are fetched over
real HTTPS from the `oidc_issuer` fixture, replay records land in the real Redis.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from support.claims import github_claims
from support.oidc_issuer import OIDCIssuer
from support.redis_server import RedisServer

from app import create_app
from app.private_files import write_private_file
from app.settings import Settings
from app.tokens.keys import generate_signing_key_pem

from .exchange_api import AUDIENCE
from .handmade import rs256_jws
from .policies import github_publisher, write_policy

MakeApp = Callable[..., Flask]
MakeToken = Callable[..., str]
MakeClaims = Callable[..., dict[str, Any]]
SignRaw = Callable[..., str]


@pytest.fixture(scope="session")
def signing_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signing-keys") / "signing.pem"
    write_private_file(path, generate_signing_key_pem())
    return path


@pytest.fixture
def make_settings(
    tmp_path: Path, redis_url: str, signing_key_path: Path, oidc_issuer: OIDCIssuer
) -> Callable[..., Settings]:
    """Settings for a test app; `publishers` are written to a fresh policies directory.

    By default the one publisher of `github_publisher` is registered and only the
    `oidc_issuer` fixture is trusted.
    """
    counter = itertools.count()

    def make(
        publishers: Sequence[Mapping[str, Any]] | None = None,
        *,
        issuers: Sequence[str] | None = None,
        **overrides: Any,
    ) -> Settings:
        policies_dir = tmp_path / f"policies-{next(counter)}"
        if publishers is None:
            publishers = [github_publisher(oidc_issuer.url)]
        write_policy(policies_dir, publishers)
        values: dict[str, Any] = {
            "audience": AUDIENCE,
            "policies_dir": policies_dir,
            "redis_url": redis_url,
            "signing_keys": signing_key_path,
            "github_issuers": tuple(issuers) if issuers is not None else (oidc_issuer.url,),
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[MakeApp]:
    """A freshly built app (cold key cache) for the given publishers and settings."""
    made: list[Flask] = []

    def make(publishers: Sequence[Mapping[str, Any]] | None = None, **kwargs: Any) -> Flask:
        app = create_app(make_settings(publishers, **kwargs))
        app.testing = True
        made.append(app)
        return app

    yield make
    for app in made:
        stop_polling(app)


def stop_polling(app: Flask) -> None:
    """End the app's registrations poller: left running, it would reload (and record its
    policy files' projects) into the store of the tests that follow."""
    app.extensions["trustpub"].registrations.publishers.stop_polling()


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def module_app(
    redis_server: RedisServer,
    oidc_issuer_server: OIDCIssuer,
    signing_key_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flask]:
    """One app per module, registering the default publisher only.

    For table-driven modules that only send tokens: building an app and warming its key
    cache cost more than such a test. Use it through `shared_client`, which gives each
    test what `client` gives it (an empty store, a reset issuer) except a cold cache.
    """
    app = create_app(
        module_settings(
            tmp_path_factory,
            redis_server,
            oidc_issuer_server,
            signing_key_path,
            # Rate limits count per process: a module's worth of requests from the one
            # test address would hit the per-address limit meant for production.
            mint_rate_limit="100000/minute",
            publisher_rate_limit="100000/minute",
        )
    )
    app.testing = True
    yield app
    stop_polling(app)


def module_settings(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    oidc_issuer_server: OIDCIssuer,
    signing_key_path: Path,
    **overrides: Any,
) -> Settings:
    """Settings of an app shared by a module: the default publisher, the real Redis and
    the loopback issuer, and `overrides`."""
    policies_dir = tmp_path_factory.mktemp("module-policies")
    write_policy(policies_dir, [github_publisher(oidc_issuer_server.url)])
    return Settings(
        audience=AUDIENCE,
        policies_dir=policies_dir,
        redis_url=redis_server.url,
        signing_keys=signing_key_path,
        github_issuers=(oidc_issuer_server.url,),
        **overrides,
    )


@pytest.fixture
def shared_client(module_app: Flask, redis_url: str, oidc_issuer: OIDCIssuer) -> FlaskClient:
    """A client of `module_app`, after the store was emptied and the issuer reset."""
    return module_app.test_client()


@pytest.fixture
def make_claims(oidc_issuer: OIDCIssuer) -> MakeClaims:
    """GitHub claims for octo-org/demo that match the default publisher unless overridden."""

    def make(*, now: int | None = None, **overrides: Any) -> dict[str, Any]:
        return github_claims(oidc_issuer.url, AUDIENCE, now=now, **overrides)

    return make


@pytest.fixture
def make_token(oidc_issuer: OIDCIssuer, make_claims: MakeClaims) -> MakeToken:
    """A token signed by the `oidc_issuer` fixture; claim overrides as in github_claims.

    `kid`, `alg`, `headers`, `key` and `omit_kid` go to OIDCIssuer.sign.
    """

    def make(
        *,
        kid: str | None = None,
        alg: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        key: object | None = None,
        omit_kid: bool = False,
        now: int | None = None,
        **overrides: Any,
    ) -> str:
        return oidc_issuer.sign(
            make_claims(now=now, **overrides),
            kid=kid,
            alg=alg,
            headers=headers,
            key=key,
            omit_kid=omit_kid,
        )

    return make


@pytest.fixture
def sign_raw(oidc_issuer: OIDCIssuer) -> SignRaw:
    """RS256-sign exact header and payload (dicts or bytes) with the issuer's current key."""

    def sign(
        payload: Mapping[str, Any] | bytes,
        header: Mapping[str, Any] | bytes | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        kid = oidc_issuer.current_kid
        if header is None:
            header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        return rs256_jws(header, payload, key or oidc_issuer.private_key(kid))

    return sign


@pytest.fixture
def store(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    """A client on the app's Redis, to look at what the exchange wrote."""
    client = redis_server.client()
    try:
        yield client
    finally:
        client.close()
