"""`MemoryStore.claim_once`: first claim wins, records expire on the injected clock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.stores.memory import MemoryStore


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_claim_once_then_refused() -> None:
    store = MemoryStore(clock=Clock())

    first = store.claim_once("jti:a", "exchange-1", 60)
    second = store.claim_once("jti:a", "exchange-2", 60)

    assert first.first is True
    assert second.first is False
    assert store.claim_once("jti:b", "exchange-3", 60).first is True  # keys are independent
    assert len(store) == 2


def test_every_claim_reports_the_same_epoch() -> None:
    store = MemoryStore(clock=Clock())

    epochs = {store.claim_once(key, f"exchange-{n}", 60).epoch for n, key in enumerate("aba")}

    assert epochs == {store.current_epoch()}


@pytest.mark.parametrize(
    ("ttl", "elapsed", "claimable_again"),
    [
        (60, 0, False),
        (60, 59.999, False),
        (60, 60, True),
        (60, 61, True),
        (1, 0.5, False),
        (1, 1, True),
        (3600, 3599, False),
    ],
    ids=[
        "immediately",
        "just-before-expiry",
        "at-expiry",
        "after-expiry",
        "1s-half",
        "1s-end",
        "hour",
    ],
)
def test_claim_expires_with_the_clock(ttl: int, elapsed: float, claimable_again: bool) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert store.claim_once("jti:x", "exchange-1", ttl).first is True

    clock.advance(elapsed)

    assert store.claim_once("jti:x", "exchange-2", ttl).first is claimable_again


@pytest.mark.parametrize(
    ("elapsed", "remaining"),
    [(0, 3), (4.9, 3), (5, 2), (9, 2), (10, 1), (19.5, 1), (20, 0), (1000, 0)],
    ids=["t0", "t4.9", "t5", "t9", "t10", "t19.5", "t20", "t1000"],
)
def test_len_counts_only_live_records(elapsed: float, remaining: int) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    for key, ttl in (("a", 5), ("b", 10), ("c", 20)):
        store.claim_once(key, "exchange-" + key, ttl)

    clock.advance(elapsed)

    assert len(store) == remaining


def test_reclaimed_key_is_not_purged_by_its_old_expiry() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.claim_once("k", "exchange-1", 5)
    clock.advance(5)
    assert store.claim_once("k", "exchange-2", 100).first is True  # the old record expired

    clock.advance(1)  # the old heap entry (t=5) is long gone; the new record lives on

    assert store.claim_once("k", "exchange-3", 100).first is False
    assert len(store) == 1


def test_concurrent_claims_of_one_key_have_exactly_one_winner() -> None:
    store = MemoryStore(clock=Clock())
    workers = 16
    barrier = threading.Barrier(workers)

    def claim(exchange: int) -> bool:
        barrier.wait()
        return store.claim_once("jti:race", f"exchange-{exchange}", 60).first

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(claim, range(workers)))

    assert results.count(True) == 1
    assert len(store) == 1


def test_ping_answers() -> None:
    MemoryStore(clock=Clock()).ping()  # never raises: there is nothing to reach


def _actions(
    store: MemoryStore, *, since_ms: int | None = None, before: str | None = None
) -> list[str]:
    page = store.read_audit(
        since_ms=since_ms, until_ms=None, limit=10, accept=lambda _: True, before=before
    )
    return [record.fields["action"] for record in page.records]


def test_the_audit_trail_keeps_its_order_when_the_clock_steps_back() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.append_audit({"action": "first"})
    clock.advance(-60)  # an NTP step
    newest = store.append_audit({"action": "second"})

    assert _actions(store) == ["second", "first"]
    assert _actions(store, since_ms=int((clock.now + 30) * 1000)) == ["second", "first"]
    assert _actions(store, before=newest) == ["first"]
