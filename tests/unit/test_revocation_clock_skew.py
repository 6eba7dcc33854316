"""Revocations hold whichever replica's clock minted, revoked or checks a token.

Replicas' clocks may differ by up to CLOCK_SKEW_SECONDS, which introspection tolerates
(a token minted by one is usable at another at once). Two replicas here share one
store, one clock the whole skew ahead of the other; the store's own clock (Redis's, for
TTLs) is half way between, as far from each as `app.clocks` lets a replica be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.audit import AuditTrail
from app.clocks import CLOCK_SKEW_SECONDS
from app.private_files import write_private_file
from app.stores.memory import MemoryStore
from app.tokens.keys import KeyRing, generate_signing_key_pem, load_key_ring
from app.tokens.mint import MintedToken, UploadTokenMinter
from app.tokens.revocation import TokenIntrospector, TokenRevoker
from app.tokens.verify import UploadTokenVerifier

ISSUER, AUDIENCE, TTL, NOW = "urn:trustpub:t", "urn:trustpub:upload:t", 900, 1_800_000_000
SKEW = CLOCK_SKEW_SECONDS
ISSUER_OF_CI = "https://token.actions.githubusercontent.com"
PUBLISHER = {
    "provider": "github",
    "issuer": ISSUER_OF_CI,
    "repository": "octo-org/demo",
    "workflow": "release.yml",
}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    clock: Clock
    minter: UploadTokenMinter
    revoker: TokenRevoker
    introspector: TokenIntrospector

    def active(self, token: MintedToken) -> bool:
        return self.introspector.introspect(token.token) is not None


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    write_private_file(tmp_path / "key.pem", generate_signing_key_pem())
    return load_key_ring(tmp_path)


@pytest.fixture
def cluster(keys: KeyRing) -> tuple[Clock, MemoryStore, dict[str, Replica]]:
    real = Clock(NOW + SKEW // 2)  # each replica within half the skew of Redis's clock
    store = MemoryStore(clock=real)

    def replica(offset: int) -> Replica:
        clock = Clock(NOW + offset)
        verifier = UploadTokenVerifier(keys, ISSUER, AUDIENCE, "pypi-")
        return Replica(
            clock,
            UploadTokenMinter(keys, ISSUER, AUDIENCE, TTL, "pypi-"),
            TokenRevoker(
                verifier, store, clock, 3600, AuditTrail(store, clock), {ISSUER_OF_CI: "github"}
            ),
            TokenIntrospector(verifier, store, clock),
        )

    return real, store, {"ahead": replica(SKEW), "behind": replica(0)}


Revoke = Callable[[TokenRevoker, MintedToken], object]

REVOCATIONS: dict[str, Revoke] = {
    "token": lambda revoker, token: revoker.revoke_token(token.token, actor="t"),
    "jti": lambda revoker, token: revoker.revoke_jti(token.jti, actor="t"),
    "project": lambda revoker, token: revoker.revoke_project("demo-pkg", actor="t"),
    "repository": lambda revoker, token: revoker.revoke_publisher(
        PUBLISHER["issuer"], "octo-org/demo", None, actor="t"
    ),
}


@pytest.mark.parametrize("scope", REVOCATIONS)
@pytest.mark.parametrize(
    ("minted_by", "revoked_by"),
    [("ahead", "behind"), ("behind", "ahead")],
    ids=["minted-ahead-revoked-behind", "minted-behind-revoked-ahead"],
)
def test_an_acknowledged_revocation_holds_on_every_replica_until_the_token_expires(
    cluster: tuple[Clock, MemoryStore, dict[str, Replica]],
    minted_by: str,
    revoked_by: str,
    scope: str,
) -> None:
    real, store, replicas = cluster
    minter = replicas[minted_by]
    token = minter.minter.mint(
        frozenset({"demo-pkg"}), PUBLISHER, store.current_epoch().id, int(minter.clock())
    )
    assert all(replica.active(token) for replica in replicas.values())

    REVOCATIONS[scope](replicas[revoked_by].revoker, token)

    assert not any(replica.active(token) for replica in replicas.values())
    # Up to the last second any replica still takes the token for unexpired.
    last_second = token.expires_at - 1 - replicas["behind"].clock()
    for clock in (real, *(replica.clock for replica in replicas.values())):
        clock.now += last_second
    assert not replicas["behind"].active(token)


@pytest.mark.parametrize("scope", REVOCATIONS)
def test_a_revocation_in_a_tokens_last_seconds_holds_where_a_slower_clock_still_takes_it(
    cluster: tuple[Clock, MemoryStore, dict[str, Replica]], scope: str
) -> None:
    real, store, replicas = cluster
    behind, ahead = replicas["behind"], replicas["ahead"]
    token = behind.minter.mint(
        frozenset({"demo-pkg"}), PUBLISHER, store.current_epoch().id, int(behind.clock())
    )
    # Past `exp` on the faster replica's clock, not yet on the slower one's.
    step = token.expires_at - SKEW // 2 - behind.clock()
    for clock in (real, *(replica.clock for replica in replicas.values())):
        clock.now += step
    assert behind.active(token)
    assert not ahead.active(token)

    REVOCATIONS[scope](ahead.revoker, token)  # /oauth/revoke answers 200 either way

    assert not behind.active(token)


def test_the_revocation_answer_in_the_docs_is_the_revokers() -> None:
    endpoints = (Path(__file__).parents[2] / "docs" / "endpoints.md").read_text()
    documented = re.search(r'Answer: `(\{"revoked": .*?\})`', endpoints)
    assert documented is not None
    answer = json.loads(documented.group(1))["revoked"]
    clock = Clock(answer["before"] + 60)
    store = MemoryStore(clock=clock)
    revoker = TokenRevoker(None, store, clock, 3600, AuditTrail(store, clock), {})

    revocation = revoker.revoke_project("demo-pkg", answer["before"], actor="t")

    assert {"scope": "project", **revocation.as_dict()} == answer
