"""An OIDC token mints once, whichever replica's clock judges it and across a data loss:
the replay record outlives every replica's acceptance window, and the epoch refuses
a token its issuer's clock, running ahead, may have dated after the loss.

In process, on in-memory stores with clocks the tests move (Redis's behaviour is in
tests/integration/test_replay.py and test_revocation.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from support.claims import github_claims

from app.clocks import STORE_CLOCK_TOLERANCE_SECONDS
from app.errors import InvalidReuseToken
from app.exchange import EPOCH_MARGIN_SECONDS, TokenExchange
from app.oidc.keysets import StaticKeySet
from app.oidc.verify import LEEWAY_SECONDS, IssuerConfig, TrustedIssuers
from app.private_files import write_private_file
from app.publishers.github import GitHubProvider, GitHubPublisher
from app.publishers.registry import PublisherRegistry
from app.stores.memory import MemoryStore
from app.stores.rate_limits import MemoryRateLimiter
from app.tokens.keys import generate_signing_key_pem, load_key_ring
from app.tokens.mint import UploadTokenMinter

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "pypi.example.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUED_AT = 1_700_000_000  # GitHub: exp = iat + 300
EXPIRES_AT = ISSUED_AT + 300


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _token() -> str:
    claims = github_claims(ISSUER, AUDIENCE, now=ISSUED_AT)
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1", "typ": "JWT"})


@pytest.fixture
def replica(tmp_path: Path) -> Any:
    write_private_file(tmp_path / "signing.pem", generate_signing_key_pem())
    issuers = TrustedIssuers()
    issuers.add(IssuerConfig(url=ISSUER, provider="github"), StaticKeySet({"k1": KEY.public_key()}))
    publisher = GitHubPublisher(
        issuer=ISSUER,
        repository="octo-org/demo",
        repository_owner_id="65",
        workflow="release.yml",
        projects=frozenset({"demo-pkg"}),
        source="demo.toml: publisher[0]",
    )

    def make(store: MemoryStore, clock: Clock) -> TokenExchange:
        return TokenExchange(
            issuers=issuers,
            providers={"github": GitHubProvider()},
            publishers=PublisherRegistry([publisher]),
            replay=store,
            publisher_limits=MemoryRateLimiter("1000/minute"),
            minter=UploadTokenMinter(
                keys=load_key_ring(tmp_path),
                issuer="urn:t",
                audience="urn:t:u",
                ttl=900,
                prefix="pypi-",
            ),
            audience=AUDIENCE,
            enabled=True,
            clock=clock,
        )

    return make


def _store_since(clock: Clock) -> MemoryStore:
    """A store whose epoch begins at `clock`'s now."""
    store = MemoryStore(clock=clock)
    store.current_epoch()
    return store


@pytest.mark.parametrize("off", [0, 10, STORE_CLOCK_TOLERANCE_SECONDS])
def test_the_replay_record_outlives_a_replica_whose_clock_is_behind(replica: Any, off: int) -> None:
    # The replica that claims is `off` seconds ahead of Redis, the one that sees the
    # token again `off` behind: 2 * off apart, CLOCK_SKEW_SECONDS at most.
    store_clock = Clock(ISSUED_AT - 3600)  # Redis's: a record's EX counts by it
    store = _store_since(store_clock)
    store_clock.now = ISSUED_AT + 5
    token = _token()
    replica(store, Clock(ISSUED_AT + 5 + off)).exchange(token)  # the CI job's exchange
    # The last second the slow replica still accepts the token.
    store_clock.now = EXPIRES_AT + LEEWAY_SECONDS + off
    slow = replica(store, Clock(store_clock.now - off))

    with pytest.raises(InvalidReuseToken, match="already been exchanged"):
        slow.exchange(token)  # a leaked copy of the used token


@pytest.mark.parametrize("ahead", [0, 30, LEEWAY_SECONDS])
def test_a_token_exchanged_before_a_data_loss_is_refused_after_it(replica: Any, ahead: int) -> None:
    # The issuer's clock is `ahead` seconds fast: the token was issued at real time
    # ISSUED_AT - ahead, exchanged, and the store lost its data a second later.
    clock = Clock(ISSUED_AT - 3600)
    store = _store_since(clock)
    clock.now = ISSUED_AT - ahead + 1
    token = _token()
    replica(store, clock).exchange(token)
    clock.now += 1
    emptied = _store_since(clock)  # its epoch begins now
    clock.now += 5

    with pytest.raises(InvalidReuseToken, match="predates a reset"):
        replica(emptied, clock).exchange(token)


@pytest.mark.parametrize("replica_ahead", [0, 10, STORE_CLOCK_TOLERANCE_SECONDS])
def test_a_token_exchanged_before_a_data_loss_is_refused_by_a_replica_ahead_of_redis(
    replica: Any, replica_ahead: int
) -> None:
    # The epoch is dated by Redis's clock; the replica that exchanged the token runs
    # `replica_ahead` seconds ahead of it, and accepted an `iat` the full leeway ahead of
    # its own: up to the leeway and the skew after Redis's now.
    redis_clock = Clock(ISSUED_AT - 3600)
    store = _store_since(redis_clock)
    redis_clock.now = ISSUED_AT - LEEWAY_SECONDS - replica_ahead
    replica_clock = Clock(redis_clock.now + replica_ahead)
    token = _token()
    replica(store, replica_clock).exchange(token)
    redis_clock.now += 1
    replica_clock.now += 1
    emptied = _store_since(redis_clock)  # the loss: a new epoch, by Redis's clock
    redis_clock.now += 1
    replica_clock.now += 1

    with pytest.raises(InvalidReuseToken, match="predates a reset"):
        replica(emptied, replica_clock).exchange(token)


@pytest.mark.parametrize(
    ("epoch_began", "refused"),
    [
        (ISSUED_AT - EPOCH_MARGIN_SECONDS, True),
        (ISSUED_AT - EPOCH_MARGIN_SECONDS - 1, False),
    ],
    ids=["margin-ends-at-iat", "margin-ends-a-second-before-iat"],
)
def test_a_token_issued_at_the_end_of_the_epochs_margin_is_refused(
    replica: Any, epoch_began: int, refused: bool
) -> None:
    # `iat` has whole seconds: a token of the margin's last second may predate the loss.
    clock = Clock(epoch_began)
    store = _store_since(clock)
    clock.now = ISSUED_AT + 5
    exchange = replica(store, clock)

    if refused:
        with pytest.raises(InvalidReuseToken, match="predates a reset"):
            exchange.exchange(_token())
    else:
        assert exchange.exchange(_token()).projects == ("demo-pkg",)
