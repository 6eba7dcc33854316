"""Shared fixtures: a real Redis, a test CA and a real HTTPS OIDC issuer.

Servers are session-scoped because starting them dominates test time; the
function-scoped fixtures put them back into a known state before every test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from support.oidc_issuer import OIDCIssuer
from support.redis_server import RedisServer
from support.tls import TestCA

pytest_plugins = ["support.sigterm"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of a running Redis (restarted if an earlier test killed it) holding only an epoch.

    The epoch is what a deployment that has run for an hour has: tokens issued before
    it began are refused as possibly replayed (app.stores.base), so without it every
    token a test issues in the app's first second would be. Tests of data loss flush it.
    """
    if not redis_server.running:
        redis_server.restart()
    client = redis_server.client()
    try:
        client.flushall()
        epoch = f"running-for-an-hour:{int(time.time()) - 3600}"
        client.set(EPOCH_KEY, epoch)
        # Its index confirmed its projects in that epoch (pending publishers may register).
        client.set("trustpub:projects:confirmed", epoch)
        # And it recorded its policy file's project when it started (app.registrations):
        # an app on the default publisher records nothing more, nor audits it.
        client.sadd("trustpub:projects", DEFAULT_PROJECT)
    finally:
        client.close()
    return redis_server.url


EPOCH_KEY = "trustpub:epoch"
# The project of the tests' default publisher (tests/integration/policies.py).
DEFAULT_PROJECT = "demo-pkg"


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def oidc_issuer_server(test_ca: TestCA) -> Iterator[OIDCIssuer]:
    """The one session issuer; tests should use ``oidc_issuer``, which resets it."""
    with OIDCIssuer(test_ca) as issuer:
        yield issuer


@pytest.fixture
def oidc_issuer(oidc_issuer_server: OIDCIssuer, monkeypatch: pytest.MonkeyPatch) -> OIDCIssuer:
    """A healthy issuer with its single initial key and zeroed request counts.

    REQUESTS_CA_BUNDLE makes every ``requests`` call in the process (the app's too)
    trust the test CA, so the app needs no test-only TLS switch.
    """
    issuer = oidc_issuer_server
    issuer.start()  # a test may have stopped it to make it unreachable
    issuer.healthy()
    issuer.reset_keys()
    issuer.reset_counts()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(issuer.ca.ca_path))
    return issuer


@pytest.fixture
def make_oidc_issuer(
    test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., OIDCIssuer]]:
    """Factory for extra started issuers (a second provider, an enterprise path)."""
    issuers: list[OIDCIssuer] = []

    def make(path: str = "") -> OIDCIssuer:
        issuer = OIDCIssuer(test_ca, path)
        issuers.append(issuer)
        issuer.start()
        return issuer

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(test_ca.ca_path))
    try:
        yield make
    finally:
        for issuer in issuers:
            issuer.stop()
