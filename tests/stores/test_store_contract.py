"""One contract, two stores: the in-memory store and a real Redis behave the same."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.ports import free_port
from support.redis_server import RedisServer

from app.clocks import STORE_CLOCK_TOLERANCE_SECONDS, ClockOffStore
from app.errors import DeclarationsLost, StoreUnavailable
from app.stores.base import UNCONFIRMED, Epoch, ExpiryRecords, StoredRegistration
from app.stores.memory import MemoryStore
from app.stores.redis import RedisStore, connect

Store = MemoryStore | RedisStore


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def make_store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[Callable[[], Store]]:
    if request.param == "memory":
        yield MemoryStore
        return
    request.getfixturevalue("redis_url")  # running and flushed
    redis_server.client().flushall()  # this suite starts with no epoch at all
    clients = []

    def make() -> RedisStore:
        client = connect(redis_server.url)
        clients.append(client)
        return RedisStore(client)

    yield make
    for client in clients:
        client.close()


def test_claim_once_is_true_once_then_false(make_store: Callable[[], Store]) -> None:
    store = make_store()

    first = store.claim_once("jti:a", "exchange-1", 60)
    second = store.claim_once("jti:a", "exchange-2", 60)

    assert (first.first, second.first) == (True, False)
    assert first.epoch == second.epoch
    assert store.claim_once("jti:b", "exchange-3", 60).first is True


def test_a_claims_record_is_stored_only_for_a_token_issued_after_the_epoch_began(
    make_store: Callable[[], Store],
) -> None:
    # The exchange refuses a token issued before `epoch_began_before` (it may predate a
    # data loss): its claim must not store a record of a mint that will not happen.
    store = make_store()
    began = store.current_epoch().created_at

    store.claim_once("jti:a", "exchange-1", 60, audit={"action": "a"}, epoch_began_before=began)
    store.claim_once("jti:b", "exchange-2", 60, audit={"action": "b"}, epoch_began_before=began + 1)
    store.claim_once("jti:c", "exchange-3", 60, audit={"action": "c"})

    stored = store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True)
    assert [record.fields["action"] for record in stored.records] == ["c", "b"]


def test_refusals_are_kept_apart_from_the_trail(make_store: Callable[[], Store]) -> None:
    store = make_store()

    store.append_audit({"action": "mint"})
    store.append_audit({"action": "mint-refused"}, refusal=True)

    def actions(refusals: bool) -> list[str]:
        page = store.read_audit(
            since_ms=None, until_ms=None, limit=10, accept=lambda f: True, refusals=refusals
        )
        return [record.fields["action"] for record in page.records]

    assert (actions(False), actions(True)) == (["mint"], ["mint-refused"])


def test_epoch_is_stable_and_starts_no_later_than_now(make_store: Callable[[], Store]) -> None:
    store = make_store()
    before = int(time.time())

    epoch = store.current_epoch()

    assert epoch == store.current_epoch() == store.claim_once("k", "exchange-1", 5).epoch
    assert before - 1 <= epoch.created_at <= int(time.time())
    assert store.revocation_state([]).epoch == epoch


def test_revocation_keeps_the_latest_moment(make_store: Callable[[], Store]) -> None:
    store = make_store()

    store.revoke_before("rev:project:x", 100, 60)
    store.revoke_before("rev:project:x", 50, 60)  # an older moment never shortens it
    store.revoke_before("rev:project:y", 7, 60)
    state = store.revocation_state(["rev:project:x", "rev:project:missing", "rev:project:y"])

    assert state.revoked_before == (100, None, 7)


def test_entries_expire() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.claim_once("jti:a", "exchange-1", 10)
    store.revoke_before("rev:a", 1, 10)

    clock.now += 11

    assert store.claim_once("jti:a", "exchange-2", 10).first is True
    assert store.revocation_state(["rev:a"]).revoked_before == (None,)
    assert len(store) == 1


def test_an_older_revocation_moment_lengthens_the_entry_it_keeps() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.revoke_before("rev:a", 1, 300)
    store.revoke_before("rev:a", 0, 600)  # as test_redis_entries_carry_ttls for Redis

    clock.now += 400

    assert store.revocation_state(["rev:a"]).revoked_before == (1,)


def test_redis_entries_carry_ttls(redis_server: RedisServer, redis_url: str) -> None:
    client = redis_server.client()
    store = RedisStore(connect(redis_url))

    store.claim_once("jti:a", "exchange-1", 120)
    store.revoke_before("rev:a", 1, 300)
    store.revoke_before("rev:a", 0, 600)  # older moment: kept, but lives long enough

    assert 118 <= client.ttl("trustpub:jti:a") <= 120
    assert 598 <= client.ttl("trustpub:rev:a") <= 600
    assert client.ttl("trustpub:epoch") == -1  # never expires: its loss is the signal


def test_concurrent_claims_have_exactly_one_winner(make_store: Callable[[], Store]) -> None:
    store = make_store()  # one Redis pool hands each thread its own connection

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda n: store.claim_once("jti:race", f"exchange-{n}", 60), range(32))
        )

    assert sum(result.first for result in results) == 1


def test_redis_store_down_raises_store_unavailable(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore(connect(redis_url))
    store.ping()
    redis_server.kill()

    for operation in (
        store.ping,
        lambda: store.claim_once("jti:a", "exchange-1", 5),
        lambda: store.revocation_state(["rev:a"]),
        lambda: store.revoke_before("rev:a", 1, 5),
        store.current_epoch,
    ):
        with pytest.raises(StoreUnavailable):
            operation()


def test_a_store_behind_sentinels_that_refuse_fails_closed_at_once() -> None:
    # Nothing listens on these ports. redis-py's default for a sentinel client retried
    # each one 10 times with backoff: ~25 s before the 503, close to gunicorn's worker
    # timeout. A fail-fast bound, not a performance measurement: 25 s before, ms after.
    sentinels = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    store = RedisStore(connect(f"redis+sentinel://{sentinels}/mymaster"))

    for operation in (
        store.ping,
        lambda: store.claim_once("jti:a", "exchange-1", 5),
        lambda: store.revocation_state(["rev:a"]),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            operation()
        assert time.monotonic() - started < 5.0


def test_redis_store_recovers_and_recreates_a_lost_epoch(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore(connect(redis_url))
    before = store.current_epoch()

    redis_server.kill()
    redis_server.restart()  # no persistence: the data is gone

    state = store.revocation_state([])
    assert state.epoch is None  # loss is visible to introspection
    after = store.claim_once("jti:a", "exchange-1", 5).epoch
    assert after.id != before.id
    assert store.current_epoch() == after


# -- registrations and the audit trail ----------------------------------------------------


def _registration(
    registration_id: str,
    project: str = "demo-pkg",
    unique: str = "u1",
    expires_at: int | None = None,
) -> StoredRegistration:
    return StoredRegistration(
        id=registration_id,
        project=project,
        entry={"provider": "github", "repository": "octo-org/demo", "projects": [project]},
        created_by="admin",
        created_at=100,
        unique_key=unique,
        expires_at=expires_at,
    )


def test_registrations_round_trip_and_bump_the_version(make_store: Callable[[], Store]) -> None:
    store = make_store()
    start = store.registrations_version()

    assert store.add_registration(_registration("rp_1"), 100) == (None, None)
    assert store.add_registration(_registration("rp_2", unique="u1"), 100) == ("rp_1", None)
    state = store.load_registrations()

    assert state.version == store.registrations_version() == start + 1
    assert state.registrations == (_registration("rp_1"),)
    assert state.projects == {"demo-pkg"}
    assert store.remove_registration("rp_1") == _registration("rp_1")
    assert store.remove_registration("rp_1") is None
    assert store.load_registrations().registrations == ()
    # Its unique key is free again.
    assert store.add_registration(_registration("rp_3"), 100) == (None, None)


@pytest.mark.parametrize("expires_at", [None, 10_000], ids=["normal", "pending"])
def test_a_registration_added_again_by_its_own_id_is_added_once(
    make_store: Callable[[], Store], expires_at: int | None
) -> None:
    # An add sent again after its reply was lost: the id is new for every add, so the
    # store holding it means this very add went through, not that another one did.
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    start = store.registrations_version()
    registration = _registration("rp_1", "new-pkg", expires_at=expires_at)

    assert store.add_registration(registration, 100) == (None, None)
    assert store.add_registration(registration, 100) == (None, None)

    state = store.load_registrations()
    assert state.registrations == (registration,)
    assert state.version == start + 1
    assert store.add_registration(_registration("rp_2", "new-pkg"), 100) == ("rp_1", None)


def test_pending_registrations_convert_once_and_never_for_an_existing_project(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    now = int(time.time())
    store.add_registration(_registration("rp_a", "new-pkg", "a", expires_at=now + 60), now)
    store.add_registration(_registration("rp_b", "new-pkg", "b", expires_at=now + 60), now)

    assert store.load_registrations().projects == frozenset()
    assert store.convert_pending("rp_a", "new-pkg", now) == "converted"
    assert store.convert_pending("rp_a", "new-pkg", now) == "normal"
    assert store.convert_pending("rp_b", "new-pkg", now) == "exists"
    assert store.convert_pending("rp_missing", "new-pkg", now) == "gone"
    state = store.load_registrations()
    assert {r.id: r.pending for r in state.registrations} == {"rp_a": False, "rp_b": True}
    assert state.projects == {"new-pkg"}
    # A pending registration for a project that exists is refused with "".
    late = _registration("rp_c", "new-pkg", "c", expires_at=now + 60)
    assert store.add_registration(late, now) == ("", None)


def test_expired_pending_registrations_are_purged_and_free_their_key(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    now = int(time.time())
    store.add_registration(_registration("rp_old", "new-pkg", "k", expires_at=now - 1), now - 100)

    assert store.convert_pending("rp_old", "new-pkg", now) == "expired"
    assert store.add_registration(
        _registration("rp_new", "new-pkg", "k", expires_at=now + 9), now
    ) == (None, "rp_old")
    store.add_registration(_registration("rp_x", "x-pkg", "x", expires_at=now - 1), now - 100)
    version = store.registrations_version()
    assert store.purge_expired(now) == ("rp_x",)
    assert store.registrations_version() == version + 1
    assert [r.id for r in store.load_registrations().registrations] == ["rp_new"]


def _convert_it(store: Store, now: int) -> object:
    return store.convert_pending("rp_old", "new-pkg", now)


def _add_with_its_key(store: Store, now: int) -> object:
    return store.add_registration(_registration("rp_new", "new-pkg", "k", expires_at=now + 60), now)


def _purge_expired(store: Store, now: int) -> object:
    return store.purge_expired(now)


@pytest.mark.parametrize(
    ("operation", "when_expired", "when_pending"),
    [
        (_convert_it, "expired", "converted"),
        (_add_with_its_key, (None, "rp_old"), ("rp_old", None)),
        (_purge_expired, ("rp_old",), ()),
    ],
    ids=["convert", "add-with-its-key", "purge"],
)
@pytest.mark.parametrize("expires_in", [0, 1], ids=["expires-now", "expires-next-second"])
def test_a_pending_registration_has_expired_from_its_expiry_second_on(
    make_store: Callable[[], Store],
    operation: Callable[[Store, int], object],
    when_expired: object,
    when_pending: object,
    expires_in: int,
) -> None:
    # As the snapshot judges it (StoredRegistration.expired): at `expires_at` it is over.
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    now = int(time.time())
    registration = _registration("rp_old", "new-pkg", "k", expires_at=now + expires_in)
    store.add_registration(registration, now - 100)

    assert operation(store, now) == (when_expired if registration.expired(now) else when_pending)


# The records a caller prepares for the expired pending registrations it may delete:
# the one it read, and the minimal one for any other (the store adds its id).
_EXPIRED_OWN = {
    "action": "publisher-expire",
    "actor": "trustpub",
    "project": "new-pkg",
    "publisher_id": "rp_old",
    "pending": "true",
    "repository": "octo-org/demo",
}
_EXPIRED_OTHER = {"action": "publisher-expire", "actor": "trustpub", "pending": "true"}
_NEW_RECORD = {"action": "publisher-add", "publisher_id": "rp_new", "pending": "true"}


def _purge(store: Store, expired: ExpiryRecords | None, now: int) -> object:
    return store.purge_expired(now, expired)


def _add_in_its_place(store: Store, expired: ExpiryRecords | None, now: int) -> object:
    replacement = _registration("rp_new", "new-pkg", "k", expires_at=now + 60)
    return store.add_registration(replacement, now, audit=_NEW_RECORD, expired=expired)


def _add_refused(store: Store, expired: ExpiryRecords | None, now: int) -> object:
    store.declare_projects(["new-pkg"])  # a pending add for it is refused: nothing changes
    return _add_in_its_place(store, expired, now)


_UNREAD = {**_EXPIRED_OTHER, "publisher_id": "rp_old"}
_ADDED = (None, None)  # this very add, sent again: added already


@pytest.mark.parametrize(
    ("delete", "own", "answers", "records", "left"),
    [
        (_purge, True, [("rp_old",), ()], [_EXPIRED_OWN], []),
        # Not read by the caller (written after its snapshot, or unreadable): the minimal one.
        (_purge, False, [("rp_old",), ()], [_UNREAD], []),
        (_purge, None, [("rp_old",), ()], [], []),  # no records given, none stored
        (
            _add_in_its_place,
            True,
            [(None, "rp_old"), _ADDED],
            [_EXPIRED_OWN, _NEW_RECORD],
            ["rp_new"],
        ),
        (_add_in_its_place, False, [(None, "rp_old"), _ADDED], [_UNREAD, _NEW_RECORD], ["rp_new"]),
        (_add_refused, True, [("", None), ("", None)], [], ["rp_old"]),  # left to the purge
    ],
    ids=["purge", "purge-unread", "purge-unrecorded", "add", "add-unread", "add-refused"],
)
def test_an_expired_pending_registration_is_deleted_with_its_one_record(
    make_store: Callable[[], Store],
    delete: Callable[[Store, ExpiryRecords | None, int], object],
    own: bool | None,
    answers: list[object],
    records: list[dict[str, str]],
    left: list[str],
) -> None:
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    now = int(time.time())
    store.add_registration(_registration("rp_old", "new-pkg", "k", expires_at=now - 1), now - 100)
    expired = None
    if own is not None:
        expired = ExpiryRecords(_EXPIRED_OTHER, {"rp_old": _EXPIRED_OWN} if own else {})

    # Twice: sent again (or by another process), it finds the deletion done, unrecorded.
    assert [delete(store, expired, now) for _ in range(2)] == answers

    stored = store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True)
    assert [dict(r.fields) for r in reversed(stored.records)] == records
    assert [r.id for r in store.load_registrations().registrations] == left
    if expired is not None and records:
        # What the caller logs, knowing the id the store answered, is what it stored.
        assert expired.of("rp_old") == records[0]


def test_concurrent_purges_delete_and_record_each_registration_once(
    make_store: Callable[[], Store],
) -> None:
    # Every process purges when its snapshot says a pending publisher expired: at once.
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    now = int(time.time())
    ids = [f"rp_{n}" for n in range(6)]
    for n, registration_id in enumerate(ids):
        expired_one = _registration(registration_id, f"pkg-{n}", f"k{n}", expires_at=now - 1)
        store.add_registration(expired_one, now - 100)
    expired = ExpiryRecords(_EXPIRED_OTHER, {})

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: store.purge_expired(now, expired), range(12)))

    assert sorted(i for answer in answers for i in answer) == ids  # each by one call
    stored = store.read_audit(since_ms=None, until_ms=None, limit=20, accept=lambda f: True)
    assert sorted(r.fields["publisher_id"] for r in stored.records) == ids
    assert store.load_registrations().registrations == ()


_IDS = {"namespace_id": "4231", "project_id": "58112"}
_OTHER_IDS = {"namespace_id": "9999", "project_id": "77777"}


def test_the_first_pin_wins_and_every_later_caller_learns_it(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    start = store.registrations_version()

    assert store.pin_on_first_use("rp_1", _IDS) == (_IDS, True)
    assert store.pin_on_first_use("rp_1", _OTHER_IDS) == (_IDS, False)
    assert store.pin_on_first_use("rp_1", _IDS) == (_IDS, False)
    assert store.pin_on_first_use("file:k", _OTHER_IDS) == (_OTHER_IDS, True)

    state = store.load_registrations()
    assert state.pins == {"rp_1": _IDS, "file:k": _OTHER_IDS}
    # Pollers reload on the version: once for each pin, never for a pin already held.
    assert state.version == store.registrations_version() == start + 2


def test_concurrent_pins_have_exactly_one_winner_that_all_learn(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    offers = [{"namespace_id": "1", "project_id": str(n)} for n in range(32)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda ids: store.pin_on_first_use("rp_race", ids), offers))

    assert sum(created for _, created in results) == 1
    assert len({tuple(pinned.items()) for pinned, _ in results}) == 1
    assert store.load_registrations().pins["rp_race"] in offers


# Each kind of write, on a store that must have it on a replica before acknowledging it.
_REPLICATED_WRITES: list[tuple[str, Callable[[RedisStore], object]]] = [
    ("claim", lambda store: store.claim_once("jti:a", "exchange-1", 60)),
    ("revoke", lambda store: store.revoke_before("rev:project:x", 100, 60)),
    ("add-registration", lambda store: store.add_registration(_registration("rp_1"), 100)),
    ("remove-registration", lambda store: store.remove_registration("rp_missing")),
    ("pin", lambda store: store.pin_on_first_use("rp_1", _IDS)),
    ("declare-projects", lambda store: store.declare_projects(["new-pkg"])),
    ("confirm-projects", lambda store: store.confirm_projects()),
]


@pytest.mark.parametrize(
    "write",
    [write for _, write in _REPLICATED_WRITES],
    ids=[name for name, _ in _REPLICATED_WRITES],
)
def test_a_write_no_replica_acknowledged_fails_closed(
    redis_url: str, write: Callable[[RedisStore], object]
) -> None:
    # An acknowledged revocation or replay claim must survive a failover: with no
    # replica to hold it, nothing is acknowledged.
    store = RedisStore(connect(redis_url), min_replicas=1)
    try:
        with pytest.raises(StoreUnavailable, match="could not replicate"):
            write(store)
    finally:
        store.close()


def test_pins_go_with_their_registration_and_no_other(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.confirm_projects()  # pending registrations may be added
    now = int(time.time())
    store.add_registration(_registration("rp_kept", "demo-pkg", "a"), now)
    store.add_registration(_registration("rp_removed", "demo-pkg", "b"), now)
    store.add_registration(_registration("rp_purged", "new-pkg", "c", expires_at=now - 1), now)
    store.add_registration(_registration("rp_replaced", "new-pkg", "d", expires_at=now - 1), now)
    for key in ("rp_kept", "rp_removed", "rp_purged", "rp_replaced", "file:k"):
        store.pin_on_first_use(key, _IDS)

    store.remove_registration("rp_removed")
    # An expired pending registration gives its unique key to a new one, and its pins go.
    replacement = _registration("rp_new", "new-pkg", "d", expires_at=now + 60)
    assert store.add_registration(replacement, now) == (None, "rp_replaced")
    assert store.purge_expired(now) == ("rp_purged",)

    assert set(store.load_registrations().pins) == {"rp_kept", "file:k"}
    # A registration added again under a removed one's id would start unpinned.
    assert store.pin_on_first_use("rp_removed", _OTHER_IDS) == (_OTHER_IDS, True)


def _change_records(store: Store) -> list[tuple[str, str, str]]:
    """(action, subject, pending) of every record, oldest first."""
    records = store.read_audit(
        since_ms=None, until_ms=None, limit=100, accept=lambda f: True
    ).records
    return [
        (
            r.fields["action"],
            r.fields.get("publisher_id", r.fields.get("project", "")),
            r.fields.get("pending", ""),
        )
        for r in reversed(records)
    ]


def _add(registration_id: str, unique: str, pending: bool = False) -> Callable[[Store], object]:
    def change(store: Store) -> object:
        expires_at = int(time.time()) + 600 if pending else None
        record = {
            "action": "publisher-add",
            "publisher_id": registration_id,
            "pending": "true" if pending else "false",
        }
        return store.add_registration(
            _registration(registration_id, "new-pkg", unique, expires_at=expires_at),
            int(time.time()),
            audit=record,
        )

    return change


def _remove(registration_id: str, pending_seen: str) -> Callable[[Store], object]:
    def change(store: Store) -> object:
        record = {
            "action": "publisher-remove",
            "publisher_id": registration_id,
            "pending": pending_seen,
        }
        return store.remove_registration(registration_id, audit=record) is not None

    return change


def _declare(project: str) -> Callable[[Store], object]:
    def change(store: Store) -> object:
        return store.declare_projects(
            [project], audit={"action": "project-declare", "project": project}
        ).created

    return change


def _pin(key: str, ids: dict[str, str]) -> Callable[[Store], object]:
    def change(store: Store) -> object:
        record = {"action": "publisher-pin", "publisher_id": key}
        pinned, created = store.pin_on_first_use(key, ids, audit=record)
        return dict(pinned), created

    return change


def _convert(registration_id: str) -> Callable[[Store], object]:
    def change(store: Store) -> object:
        record = {"action": "publisher-convert", "publisher_id": registration_id}
        return store.convert_pending(registration_id, "new-pkg", int(time.time()), audit=record)

    return change


@pytest.mark.parametrize(
    ("changes", "answers", "records"),
    [
        (
            [_add("rp_1", "u1"), _add("rp_2", "u1")],
            [(None, None), ("rp_1", None)],
            [("publisher-add", "rp_1", "false")],  # a duplicate leaves no record
        ),
        (
            [_declare("new-pkg"), _add("rp_1", "u1", pending=True)],
            [1, ("", None)],
            [("project-declare", "new-pkg", "")],  # a pending add for a project that exists
        ),
        (
            [_add("rp_1", "u1"), _remove("rp_1", "false"), _remove("rp_1", "false")],
            [(None, None), True, False],
            [("publisher-add", "rp_1", "false"), ("publisher-remove", "rp_1", "false")],
        ),
        (
            # The caller saw it pending; it was converted since: the record says what was
            # removed, as the store held it.
            [_add("rp_1", "u1", pending=True), _convert("rp_1"), _remove("rp_1", "true")],
            [(None, None), "converted", True],
            [
                ("publisher-add", "rp_1", "true"),
                ("publisher-convert", "rp_1", ""),
                ("publisher-remove", "rp_1", "false"),
            ],
        ),
        (
            [_add("rp_1", "u1", pending=True), _convert("rp_1"), _convert("rp_1")],
            [(None, None), "converted", "normal"],
            [("publisher-add", "rp_1", "true"), ("publisher-convert", "rp_1", "")],
        ),
        (
            [_declare("new-pkg"), _convert("rp_missing")],
            [1, "gone"],
            [("project-declare", "new-pkg", "")],
        ),
        (
            [_declare("new-pkg"), _declare("new-pkg")],
            [1, 0],
            [("project-declare", "new-pkg", "")],
        ),
        (
            [_pin("rp_1", _IDS), _pin("rp_1", _OTHER_IDS), _pin("rp_1", _IDS)],
            [(_IDS, True), (_IDS, False), (_IDS, False)],
            [("publisher-pin", "rp_1", "")],  # only the call that pinned is recorded
        ),
    ],
    ids=[
        "duplicate-add",
        "pending-add-refused",
        "remove-twice",
        "remove-converted",
        "convert-twice",
        "convert-gone",
        "declare-twice",
        "pin-thrice",
    ],
)
def test_a_registration_change_and_its_record_are_stored_together_or_not_at_all(
    make_store: Callable[[], Store],
    changes: list[Callable[[Store], object]],
    answers: list[object],
    records: list[tuple[str, str, str]],
) -> None:
    store = make_store()
    store.confirm_projects()  # pending registrations may be added

    assert [change(store) for change in changes] == answers
    assert _change_records(store) == records


def test_every_revocation_stores_its_record_with_it(make_store: Callable[[], Store]) -> None:
    store = make_store()

    for moment in (100, 50):  # the second keeps the first's moment, and is recorded too
        record = {"action": "revoke", "scope": "project", "before": str(moment)}
        store.revoke_before("rev:project:x", moment, 60, audit=record)
    store.revoke_before("rev:project:y", 7, 60)  # no record given, none stored

    assert store.revocation_state(["rev:project:x"]).revoked_before == (100,)
    records = store.read_audit(
        since_ms=None, until_ms=None, limit=10, accept=lambda f: True
    ).records
    assert [r.fields["before"] for r in reversed(records)] == ["100", "50"]


def test_the_store_tells_its_time(make_store: Callable[[], Store]) -> None:
    before = time.time()
    told = make_store().server_time()

    # Redis's clock is this machine's here.
    assert before - 1 <= told <= time.time() + 1


def test_a_claim_by_a_clock_off_the_stores_claims_nothing(make_store: Callable[[], Store]) -> None:
    store = make_store()
    now = int(time.time())  # Redis's clock is this machine's here
    record = {"action": "mint", "jti": "a" * 24}

    for off in (-STORE_CLOCK_TOLERANCE_SECONDS - 2, STORE_CLOCK_TOLERANCE_SECONDS + 2):
        with pytest.raises(ClockOffStore):
            store.claim_once("jti:k", "exchange-1", 60, audit=record, clock=now + off)
    assert store.claim_once("jti:k", "exchange-2", 60, clock=now + 3).first is True
    assert (
        store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True).records
        == []
    )


def test_revocation_state_tells_the_stores_time(make_store: Callable[[], Store]) -> None:
    before = time.time()
    told = make_store().revocation_state(["rev:a"]).server_time

    assert told is not None
    assert before - 1 <= told <= time.time() + 1


def test_declared_projects_exist(make_store: Callable[[], Store]) -> None:
    store = make_store()

    assert store.declare_projects(["new-pkg"]).created == 1
    assert store.declare_projects(["new-pkg"]).created == 0
    assert store.load_registrations().projects == {"new-pkg"}


def test_many_projects_are_declared_in_one_write_with_one_record(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    store.declare_projects(["pkg-7"])
    version = store.load_registrations().version
    # More names than Lua unpacks at once, one of them known already.
    names = [f"pkg-{index}" for index in range(9_000)]

    created = store.declare_projects(names, audit={"action": "projects-declare"}).created

    assert created == 8_999
    assert store.load_registrations().projects == set(names)
    assert store.load_registrations().version != version
    assert _change_records(store) == [("projects-declare", "", "")]
    assert store.declare_projects(names, audit={"action": "projects-declare"}).created == 0
    assert len(_change_records(store)) == 1  # nothing new, nothing recorded


def test_audit_records_read_newest_first_with_filters(make_store: Callable[[], Store]) -> None:
    store = make_store()
    for index in range(5):
        store.append_audit({"action": "mint", "n": str(index)})

    records = store.read_audit(since_ms=None, until_ms=None, limit=3, accept=lambda f: True).records
    odd = store.read_audit(
        since_ms=None, until_ms=None, limit=10, accept=lambda f: int(f["n"]) % 2 == 1
    ).records

    assert [r.fields["n"] for r in records] == ["4", "3", "2"]
    assert [r.fields["n"] for r in odd] == ["3", "1"]
    assert (
        store.read_audit(since_ms=None, until_ms=1, limit=10, accept=lambda f: True).records == []
    )


@pytest.mark.parametrize(
    ("limit", "scan_limit", "every", "reads"),
    [
        (3, None, 1, 9),  # 25 records, 3 a page: 9 pages, the last one short
        (5, None, 1, 6),  # full pages all along: a sixth, empty, says nothing is left
        (100, 7, 10, 4),  # 3 matches in 25 records, 7 looked at per read
        (1, 7, 10, 6),  # a full page stops the scan too
        (100, 500, 1, 1),
    ],
)
def test_audit_reads_go_on_where_the_last_one_stopped(
    make_store: Callable[[], Store], limit: int, scan_limit: int | None, every: int, reads: int
) -> None:
    store = make_store()
    ids = [store.append_audit({"action": "mint", "n": str(n)}) for n in range(25)]
    wanted = [record_id for n, record_id in enumerate(ids) if n % every == 0][::-1]

    found: list[str] = []
    pages = []
    before = None
    while True:
        page = store.read_audit(
            since_ms=None,
            until_ms=None,
            limit=limit,
            accept=lambda f: int(f["n"]) % every == 0,
            before=before,
            scan_limit=scan_limit,
        )
        pages.append(page)
        found += [record.id for record in page.records]
        assert len(page.records) <= limit
        if page.next_before is None:
            break
        before = page.next_before

    assert found == wanted  # newest first, none twice, none left out
    assert len(pages) == reads


def test_an_audit_read_before_a_record_keeps_its_time_window(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    ids = [store.append_audit({"action": "mint", "n": str(n)}) for n in range(4)]
    newest_ms = int(ids[-1].split("-")[0])

    def read(before: str, until_ms: int | None) -> list[str]:
        page = store.read_audit(
            since_ms=None, until_ms=until_ms, limit=10, accept=lambda f: True, before=before
        )
        return [record.id for record in page.records]

    assert read(ids[2], None) == [ids[1], ids[0]]
    assert read(ids[2], newest_ms) == [ids[1], ids[0]]
    assert read(ids[3], int(ids[0].split("-")[0]) - 1) == []  # the window ends first
    assert read("0-0", None) == []  # nothing precedes the first id a stream can hold


def test_the_audit_trail_is_bounded(redis_server: RedisServer, redis_url: str) -> None:
    for store in (
        MemoryStore(audit_max_length=1000),
        RedisStore(connect(redis_url), audit_max_length=1000),
    ):
        for index in range(3000):
            store.append_audit({"n": str(index)})
        kept = store.read_audit(
            since_ms=None, until_ms=None, limit=10_000, accept=lambda f: True
        ).records
        # Redis trims approximately (whole macro nodes), never below the length asked for.
        assert 1000 <= len(kept) <= 1200
        assert kept[0].fields["n"] == "2999"


def test_a_record_the_store_cannot_hold_fails_the_claim_before_it_is_made(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    try:
        record = {"action": "mint", "run_id": "\ud800"}
        claimed = store.claim_once("jti:x", "exchange-1", 60, audit=record).first
    except StoreUnavailable:
        claimed = False  # Redis cannot hold it: refused, and before the claim was written
    retry = store.claim_once("jti:x", "exchange-2", 60)
    # Exactly one of the two attempts claimed the key: a failed one burns nothing.
    assert [claimed, retry.first].count(True) == 1


def test_a_claim_stores_its_audit_record_once_fields_in_order(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    record = {
        "action": "mint",
        "actor": "github",
        "at": "1700000000",
        "projects": "demo-pkg,other",
        "jti": "a" * 32,
        "repository": "octo-org/démo",  # not ASCII: JSON escapes it, Redis keeps UTF-8
        "environment": "",
        "workflow": 'rel"ease.yml',
    }

    first = store.claim_once("jti:audited", "exchange-1", 60, audit=record)
    replay = store.claim_once("jti:audited", "exchange-2", 60, audit={**record, "jti": "b" * 32})

    (stored,) = store.read_audit(
        since_ms=None, until_ms=None, limit=10, accept=lambda f: True
    ).records
    assert (first.first, replay.first) == (True, False)
    assert list(stored.fields.items()) == list(record.items())


@pytest.mark.parametrize(
    ("claimants", "firsts"),
    [
        (["one", "one"], [True, True]),  # one exchange, sent again after a lost reply
        (["one", "two"], [True, False]),  # a replay
        (["one", "two", "one"], [True, False, True]),  # a replay takes nothing over
        (["one", "One"], [True, False]),  # compared exactly
        (["one", "one "], [True, False]),
    ],
    ids=["same", "other", "same-after-other", "case", "trailing-space"],
)
def test_the_claimant_holding_a_key_is_told_it_is_first_and_records_once(
    make_store: Callable[[], Store], claimants: list[str], firsts: list[bool]
) -> None:
    store = make_store()

    results = [
        store.claim_once("jti:k", claimant, 60, audit={"action": "mint", "jti": claimant}).first
        for claimant in claimants
    ]

    assert results == firsts
    records = store.read_audit(
        since_ms=None, until_ms=None, limit=10, accept=lambda f: True
    ).records
    assert [record.fields["jti"] for record in records] == ["one"]


def test_a_declaration_answers_its_epoch_which_a_confirmation_names(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()  # Redis's holds no epoch yet: the declaration begins one

    declared = store.declare_projects(["new-pkg"])
    before = store.projects_status()
    confirmed = store.confirm_projects(declared_in=declared.epoch)

    assert declared.epoch == store.current_epoch()
    assert before == (declared.epoch, False)
    assert confirmed is True
    assert store.projects_status() == (declared.epoch, True)
    assert store.load_registrations().projects_confirmed


def test_a_confirmation_naming_another_epoch_is_refused_and_not_recorded(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    current = store.declare_projects(["new-pkg"]).epoch
    left = Epoch(id="a-data-set-since-lost", created_at=current.created_at - 60)

    with pytest.raises(DeclarationsLost):
        store.confirm_projects(audit={"action": "projects-confirm"}, declared_in=left)

    assert store.projects_status() == (current, False)
    assert _change_records(store) == []


@pytest.mark.parametrize("epoch_now", [None, "a-later-epoch:1700000000"], ids=["lost", "replaced"])
def test_a_confirmation_of_an_epoch_the_store_left_confirms_nothing(
    redis_server: RedisServer, redis_url: str, epoch_now: str | None
) -> None:
    # The epoch gone without the confirmation (evicted, restored from another backup):
    # the set of projects it vouched for is not this epoch's.
    client = redis_server.client()
    store = RedisStore(connect(redis_url))
    store.confirm_projects()
    assert store.load_registrations().projects_confirmed
    client.delete("trustpub:epoch")
    if epoch_now is not None:
        client.set("trustpub:epoch", epoch_now)

    assert store.load_registrations().projects_confirmed is False
    pending = _registration("rp_p", "new-pkg", expires_at=int(time.time()) + 60)
    assert store.add_registration(pending, int(time.time())) == (UNCONFIRMED, None)
    assert store.projects_status()[1] is False


def test_projects_are_confirmed_once_with_their_record(make_store: Callable[[], Store]) -> None:
    store = make_store()
    unconfirmed = store.load_registrations()
    pending = _registration("rp_early", "new-pkg", expires_at=10_000)
    assert store.add_registration(pending, 100) == (UNCONFIRMED, None)  # asked in the write

    first = store.confirm_projects(audit={"action": "projects-confirm"})
    again = store.confirm_projects(audit={"action": "projects-confirm"})
    confirmed = store.load_registrations()

    assert (unconfirmed.projects_confirmed, confirmed.projects_confirmed) == (False, True)
    assert (first, again) == (True, False)
    assert confirmed.version != unconfirmed.version  # every process reloads
    records = store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True)
    assert [r.fields["action"] for r in records.records] == ["projects-confirm"]
    assert store.add_registration(pending, 100) == (None, None)
