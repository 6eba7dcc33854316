"""A replica whose clock left the bound of `app.clocks` (an NTP step, a VM resumed).

The store's clock (Redis's, which expires replay records and revocations) stays right;
one replica's steps. Whatever that replica then does must fail closed: refuse, or 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import REGISTRY
from support.claims import github_claims

from app import clocks
from app.audit import AuditTrail
from app.clocks import CLOCK_SKEW_SECONDS, STORE_CLOCK_TOLERANCE_SECONDS, ClockOffStore
from app.exchange import TokenExchange
from app.oidc.keysets import StaticKeySet
from app.oidc.verify import IssuerConfig, TrustedIssuers
from app.private_files import write_private_file
from app.publishers.github import GitHubProvider, GitHubPublisher
from app.publishers.registry import PublisherRegistry
from app.stores.memory import MemoryStore
from app.stores.rate_limits import MemoryRateLimiter
from app.tokens.keys import KeyRing, generate_signing_key_pem, load_key_ring
from app.tokens.mint import MintedToken, UploadTokenMinter
from app.tokens.revocation import TokenIntrospector, TokenRevoker
from app.tokens.verify import UploadTokenVerifier

ISSUER, AUDIENCE, TTL, NOW = "urn:trustpub:t", "urn:trustpub:upload:t", 900, 1_800_000_000
CI = "https://token.actions.githubusercontent.com"
PUBLISHER = {"provider": "github", "issuer": CI, "repository": "octo-org/demo"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    write_private_file(tmp_path / "key.pem", generate_signing_key_pem())
    return load_key_ring(tmp_path)


def _replica(
    keys: KeyRing, store: MemoryStore, clock: Clock
) -> tuple[TokenRevoker, TokenIntrospector]:
    verifier = UploadTokenVerifier(keys, ISSUER, AUDIENCE, "pypi-")
    return (
        TokenRevoker(verifier, store, clock, 3600, AuditTrail(store, clock), {CI: "github"}),
        TokenIntrospector(verifier, store, clock),
    )


OIDC_AUDIENCE = "pypi.example.com"
CI_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
STEP = 300  # well beyond CLOCK_SKEW_SECONDS


def _oidc_token(issued_at: int) -> str:
    claims = github_claims(CI, OIDC_AUDIENCE, now=issued_at)
    return jwt.encode(claims, CI_KEY, algorithm="RS256", headers={"kid": "k1", "typ": "JWT"})


def _exchange(keys: KeyRing, store: MemoryStore, clock: Clock) -> TokenExchange:
    issuers = TrustedIssuers()
    issuers.add(IssuerConfig(url=CI, provider="github"), StaticKeySet({"k1": CI_KEY.public_key()}))
    publisher = GitHubPublisher(
        issuer=CI,
        repository="octo-org/demo",
        repository_owner_id="65",
        workflow="release.yml",
        projects=frozenset({"demo-pkg"}),
        source="demo.toml: publisher[0]",
    )
    return TokenExchange(
        issuers=issuers,
        providers={"github": GitHubProvider()},
        publishers=PublisherRegistry([publisher]),
        replay=store,
        publisher_limits=MemoryRateLimiter("1000/minute"),
        minter=UploadTokenMinter(keys, ISSUER, AUDIENCE, TTL, "pypi-"),
        audience=OIDC_AUDIENCE,
        enabled=True,
        clock=clock,
        epoch_margin=0,
    )


def _store(real: Clock) -> MemoryStore:
    """A store whose epoch began an hour before NOW, so the tests' tokens postdate it."""
    real.now = NOW - 3600
    store = MemoryStore(clock=real)
    real.now = NOW
    return store


def _upload_token(keys: KeyRing, store: MemoryStore) -> MintedToken:
    minter = UploadTokenMinter(keys, ISSUER, AUDIENCE, TTL, "pypi-")
    return minter.mint(frozenset({"demo-pkg"}), PUBLISHER, store.current_epoch().id, NOW)


def test_a_replica_whose_clock_stepped_back_never_exchanges_a_used_oidc_token_again(
    keys: KeyRing,
) -> None:
    real = Clock(NOW)
    store = _store(real)
    token = _oidc_token(NOW)  # GitHub: exp = iat + 300
    _exchange(keys, store, Clock(NOW)).exchange(token)
    real.now = NOW + 300 + 60 + 200  # the replay record is gone by the store's clock
    stepped_back = Clock(real.now - STEP)  # would judge the token unexpired

    with pytest.raises(ClockOffStore):
        _exchange(keys, store, stepped_back).exchange(token)
    assert len(store) == 0  # nothing claimed


def test_a_replica_whose_clock_stepped_back_never_revives_a_revoked_token(keys: KeyRing) -> None:
    real = Clock(NOW)
    store = _store(real)
    token = _upload_token(keys, store)
    revoker, _ = _replica(keys, store, Clock(NOW))
    revoker.revoke_token(token.token, actor="t")
    real.now = token.expires_at + 100  # the entry is gone by the store's clock
    _, stepped_back = _replica(keys, store, Clock(real.now - STEP - 100))

    with pytest.raises(ClockOffStore):
        stepped_back.introspect(token.token)


def test_a_replica_whose_clock_stepped_back_revokes_nothing_it_would_date_too_early(
    keys: KeyRing,
) -> None:
    real = Clock(NOW)
    store = _store(real)
    token = _upload_token(keys, store)
    real.now = NOW + 5
    stepped_back, _ = _replica(keys, store, Clock(real.now - STEP))

    with pytest.raises(ClockOffStore):
        stepped_back.revoke_project("demo-pkg", actor="operator")  # "everything so far"
    _, right = _replica(keys, store, Clock(real.now))
    assert right.introspect(token.token) is not None  # 503, not an acknowledged no-op


def test_a_replica_whose_clock_jumped_ahead_mints_nothing(keys: KeyRing) -> None:
    real = Clock(NOW)
    store = _store(real)
    jumped = Clock(NOW + STEP)  # within exp + leeway of a fresh GitHub token

    with pytest.raises(ClockOffStore):
        _exchange(keys, store, jumped).exchange(_oidc_token(NOW))
    assert len(store) == 0


Operation = Callable[[KeyRing, MemoryStore, Clock], object]

OPERATIONS: dict[str, Operation] = {
    "mint": lambda keys, store, clock: _exchange(keys, store, clock).exchange(
        _oidc_token(int(store.server_time()))
    ),
    "introspect": lambda keys, store, clock: _replica(keys, store, clock)[1].introspect(
        _upload_token(keys, store).token
    ),
    "revoke token": lambda keys, store, clock: _replica(keys, store, clock)[0].revoke_token(
        _upload_token(keys, store).token, actor="t"
    ),
    "revoke jti": lambda keys, store, clock: _replica(keys, store, clock)[0].revoke_jti(
        "A" * 24, actor="t"
    ),
    "revoke project": lambda keys, store, clock: _replica(keys, store, clock)[0].revoke_project(
        "demo-pkg", actor="t"
    ),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("offset", "refused"),
    [
        (0, False),
        (STORE_CLOCK_TOLERANCE_SECONDS, False),
        (-STORE_CLOCK_TOLERANCE_SECONDS, False),
        (STORE_CLOCK_TOLERANCE_SECONDS + 1, True),
        (-STORE_CLOCK_TOLERANCE_SECONDS - 1, True),
    ],
)
def test_a_replica_within_half_the_skew_of_the_stores_clock_works_beyond_it_is_refused(
    keys: KeyRing, operation: str, offset: int, refused: bool
) -> None:
    # Half: two replicas on either side of Redis are then CLOCK_SKEW_SECONDS apart at most.
    assert 2 * STORE_CLOCK_TOLERANCE_SECONDS <= CLOCK_SKEW_SECONDS
    store = _store(Clock(NOW))

    def run() -> object:
        return OPERATIONS[operation](keys, store, Clock(NOW + offset))

    if refused:
        with pytest.raises(ClockOffStore):
            run()
    else:
        assert run() is not None


def test_a_clock_off_the_stores_is_logged_every_few_seconds_not_per_request(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clocks, "_next_log_at", 0.0)
    refused = _clock_errors()

    with caplog.at_level(logging.ERROR, logger="app.clocks"):
        errors = [clocks.clock_off(-300.4) for _ in range(3)]

    assert all(isinstance(error, ClockOffStore) for error in errors)
    assert [record.getMessage() for record in caplog.records] == [
        "this replica's clock is -300 s off the token store's (at most 15 s allowed): "
        "no token is minted, introspected or revoked here until the clock is right"
    ]
    assert _clock_errors() == refused + 3


def _clock_errors() -> float:
    sample = REGISTRY.get_sample_value("trustpub_store_errors_total", {"operation": "clock"})
    return sample or 0.0
