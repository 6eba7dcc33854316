"""A write whose reply is lost after Redis ran it, against a real Redis.

trustpub sends a write once more on a new connection when a connection it had used
before breaks (a Redis restart, a failover, an idle timeout). When the break came
after Redis ran the write, the second send finds it already made: a replay claim must
know its own claim from a replay, or a CI job is told its token was already exchanged;
a registration must know itself from a duplicate, or the maintainer is refused and the
add goes unrecorded in the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.lossy_proxy import LossyProxy
from support.redis_server import RedisServer

from app.stores.base import StoredRegistration
from app.stores.redis import RedisStore, connect

_RECORD = {"action": "mint", "jti": "exchange-1", "repository": "octo-org/demo"}


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[LossyProxy]:
    with LossyProxy(redis_server.port) as proxy:
        yield proxy


@pytest.fixture
def store(proxy: LossyProxy) -> Iterator[RedisStore]:
    store = RedisStore(connect(proxy.url))
    # Redis holds the claim script (a lost NOSCRIPT reply would prove nothing), and this
    # thread's connection has answered once, so a break is sent again.
    store.claim_once("jti:warm-up", "warm-up", 60)
    store.revoke_before("rev:jti:warm-up", 1, 60)
    store.pin_on_first_use("warm-up", {"project_id": "1"})
    yield store
    store.close()


def test_a_claim_whose_reply_was_lost_is_still_the_first(
    proxy: LossyProxy, store: RedisStore, redis_server: RedisServer
) -> None:
    proxy.lose_reply_to(b"trustpub:jti:lost")

    claim = store.claim_once("jti:lost", "exchange-1", 60, audit=_RECORD)

    assert proxy.replies_lost == 1  # Redis ran the claim; its reply never arrived
    assert claim.first is True
    direct = redis_server.client()
    try:
        assert direct.get("trustpub:jti:lost") == b"exchange-1"
        assert 0 < direct.ttl("trustpub:jti:lost") <= 60  # written again, expiry kept
    finally:
        direct.close()
    records = store.read_audit(
        since_ms=None, until_ms=None, limit=10, accept=lambda f: True
    ).records
    assert [record.fields for record in records] == [_RECORD]  # stored once
    # Anyone else is still refused.
    assert store.claim_once("jti:lost", "exchange-2", 60).first is False


def test_the_claim_found_again_is_written_again_so_a_wait_after_it_covers_it(
    proxy: LossyProxy, store: RedisStore, redis_server: RedisServer
) -> None:
    # WAIT counts the replicas holding the writes of the connection it is sent on: the
    # second send's connection wrote nothing unless the script writes the claim again.
    proxy.lose_reply_to(b"trustpub:jti:lost")

    def claims() -> None:
        store.claim_once("jti:lost", "exchange-1", 60)
        store.claim_once("jti:lost", "exchange-2", 60)  # a replay: writes nothing

    writes = _commands_during(redis_server, claims, ("SET ",))

    assert proxy.replies_lost == 1
    assert writes == [
        "SET trustpub:jti:lost exchange-1 NX EX 60",  # the first send
        "SET trustpub:jti:lost exchange-1 NX EX 60",  # the second: not first...
        "SET trustpub:jti:lost exchange-1 XX KEEPTTL",  # ...but its own: written again
        "SET trustpub:jti:lost exchange-2 NX EX 60",  # the replay
    ]


def _commands_during(
    redis_server: RedisServer, action: Callable[[], None], prefixes: tuple[str, ...]
) -> list[str]:
    """The commands starting with `prefixes` that Redis ran during `action` (MONITOR)."""
    monitor_client = redis_server.client()
    try:
        with monitor_client.monitor() as monitor:
            action()
            monitor_client.ping()
            seen: list[str] = []
            while (command := monitor.next_command()["command"]) != "PING":
                if command.startswith(prefixes):
                    seen.append(command)
    finally:
        monitor_client.close()
    return seen


def _registration(registration_id: str, unique_key: str) -> StoredRegistration:
    return StoredRegistration(
        id=registration_id,
        project="demo-pkg",
        entry={"provider": "github", "repository": "octo-org/demo", "projects": ["demo-pkg"]},
        created_by="admin",
        created_at=100,
        unique_key=unique_key,
        expires_at=None,
    )


def test_a_registration_whose_reply_was_lost_is_added_not_refused_as_a_duplicate(
    proxy: LossyProxy, store: RedisStore
) -> None:
    # Redis holds the script first: a lost NOSCRIPT reply would prove nothing.
    assert store.add_registration(_registration("rp_warm-up", "warm-up"), 100) == (None, None)
    assert store.remove_registration("rp_warm-up") is not None
    registration = _registration("rp_lost", "github:octo-org/demo:demo-pkg")
    proxy.lose_reply_to(b"rp_lost")

    refused, _ = store.add_registration(registration, 100)

    assert proxy.replies_lost == 1
    assert refused is None  # not "held by rp_lost already": the caller records its add
    assert store.load_registrations().registrations == (registration,)


def test_a_removal_or_declaration_whose_reply_was_lost_keeps_its_one_record(
    proxy: LossyProxy, store: RedisStore
) -> None:
    # Sent again, each finds its work done and answers as if another client had done it
    # (not found; not created): the record, written with the change, is there once.
    store.add_registration(_registration("rp_gone", "github:octo-org/demo:demo-pkg"), 100)
    # The scripts loaded: a lost NOSCRIPT reply would prove nothing.
    store.remove_registration("rp_warm-up")
    store.declare_projects(["warm-up"])
    proxy.lose_reply_to(b"rp_gone")
    removed = store.remove_registration("rp_gone", audit={"action": "publisher-remove"})
    proxy.lose_reply_to(b"new-pkg")
    created = store.declare_projects(["new-pkg"], audit={"action": "project-declare"}).created

    assert proxy.replies_lost == 2
    assert (removed, created) == (None, 0)
    records = store.read_audit(
        since_ms=None, until_ms=None, limit=10, accept=lambda f: True
    ).records
    assert [record.fields["action"] for record in records] == [
        "project-declare",
        "publisher-remove",
    ]
    assert store.load_registrations().registrations == ()


def test_a_revocation_whose_reply_was_lost_keeps_its_one_record(
    proxy: LossyProxy, store: RedisStore, redis_server: RedisServer
) -> None:
    proxy.lose_reply_to(b"trustpub:rev:jti:lost")

    store.revoke_before("rev:jti:lost", 100, 60, audit={"action": "revoke", "jti": "lost"})

    assert proxy.replies_lost == 1
    records = store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True)
    assert [r.fields for r in records.records] == [{"action": "revoke", "jti": "lost"}]
    direct = redis_server.client()
    try:
        requests = list(direct.scan_iter(match="trustpub:rev:request:*"))
        # Each call's nonce, the one sent again too, expires: none is a lasting key.
        assert len(requests) == 2
        assert all(0 < direct.ttl(key) <= 60 for key in requests)
    finally:
        direct.close()


def test_an_audit_record_on_its_own_whose_reply_was_lost_is_stored_once(
    proxy: LossyProxy, store: RedisStore
) -> None:
    # A conversion's mint, a refusal, a revocation of expired tokens: records appended
    # without a claim or a revocation entry around them.
    proxy.lose_reply_to(b"lost-record-jti")
    record = {"action": "mint", "jti": "lost-record-jti", "projects": "demo-pkg"}

    store.append_audit(record)

    assert proxy.replies_lost == 1
    records = store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True)
    assert [r.fields for r in records.records] == [record]


def test_a_pin_found_again_is_written_again_so_that_a_wait_after_it_counts(
    proxy: LossyProxy, store: RedisStore, redis_server: RedisServer
) -> None:
    # As the replay claim is: the second send's connection would otherwise have written
    # nothing, and the WAIT after it acknowledge a pin no replica may hold.
    proxy.lose_reply_to(b"pin-lost")
    answers = []

    def pin() -> None:
        answers.append(store.pin_on_first_use("pin-lost", {"project_id": "58112"}))

    commands = _commands_during(redis_server, pin, ("HSET ", "INCR ", "XADD "))
    ((pinned, created),) = answers
    writes = [command.split(" ")[0] for command in commands]

    assert proxy.replies_lost == 1
    assert (dict(pinned), created) == ({"project_id": "58112"}, False)
    assert writes == ["HSET", "INCR", "HSET"]  # the first send's, then the second's
