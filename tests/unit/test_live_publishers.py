"""`LivePublishers`: a match and the conversion of its pending publishers are decided on one
snapshot of the registrations, whatever the store holds by the time the exchange converts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.claims import github_claims

from app.audit import AuditTrail
from app.errors import InvalidPendingPublisher, InvalidPublisher
from app.publishers.github import GitHubClaims, GitHubProvider
from app.publishers.providers import PROVIDERS
from app.registrations import LivePublishers, parse_entry, registration_source, unique_key
from app.settings import PUBLIC_GITHUB_ISSUER
from app.stores.base import StoredRegistration
from app.stores.memory import MemoryStore

NOW = 1_700_000_000
PROJECT = "new-pkg"
TRUSTED = {"github": frozenset({PUBLIC_GITHUB_ISSUER})}
ENTRY: dict[str, Any] = {
    "provider": "github",
    "issuer": PUBLIC_GITHUB_ISSUER,
    "repository": "octo-org/demo",
    "repository_owner_id": "65",
    "workflow": "release.yml",
    "projects": [PROJECT],
}


def registered(
    store: MemoryStore, *, pending: bool, name: str = "", changes: Mapping[str, str] | None = None
) -> StoredRegistration:
    registration_id = "tp-" + (name or ("pending" if pending else "normal"))
    entry = {**ENTRY, **(changes or {})}
    publisher = parse_entry(entry, registration_source(registration_id), PROVIDERS, TRUSTED)
    registration = StoredRegistration(
        id=registration_id,
        project=PROJECT,
        entry=entry,
        created_by="test",
        created_at=NOW,
        unique_key=unique_key(publisher, PROJECT),
        expires_at=NOW + 86400 if pending else None,
    )
    assert store.add_registration(registration, NOW) == (None, None)
    return registration


def live_publishers(store: MemoryStore) -> LivePublishers:
    publishers = LivePublishers((), store, PROVIDERS, TRUSTED, clock=lambda: NOW)
    publishers.refresh()
    return publishers


def token_claims() -> GitHubClaims:
    return GitHubProvider().parse_claims(
        PUBLIC_GITHUB_ISSUER, github_claims(PUBLIC_GITHUB_ISSUER, "pypi", now=NOW)
    )


@pytest.mark.parametrize("pending", [True, False], ids=["pending", "normal"])
def test_a_match_names_the_pending_registrations_among_its_winners(pending: bool) -> None:
    store = MemoryStore(clock=lambda: NOW)
    store.confirm_projects()  # pending registrations may be added
    registration = registered(store, pending=pending)

    match = live_publishers(store).match(token_claims())

    assert match.projects == frozenset({PROJECT})
    assert match.pending == ((registration,) if pending else ())


def _removed(store: MemoryStore, registration: StoredRegistration) -> None:
    assert store.remove_registration(registration.id) is not None


def _converted_elsewhere(store: MemoryStore, registration: StoredRegistration) -> None:
    assert store.convert_pending(registration.id, PROJECT, NOW) == "converted"


def _expired(store: MemoryStore, registration: StoredRegistration) -> None:
    assert store.purge_expired(NOW + 86400) == (registration.id,)


# What another process may do to the pending publisher between the match and the
# conversion, once this process's poller has loaded it (a newer snapshot).
STORE_CHANGES: list[tuple[str, Callable[[MemoryStore, StoredRegistration], None], bool]] = [
    ("removed", _removed, False),
    ("purged-as-expired", _expired, False),
    # The same publisher converted by another exchange: its project is its own.
    ("converted-elsewhere", _converted_elsewhere, True),
]


@pytest.mark.parametrize(
    ("change", "minted"),
    [(change, minted) for _, change, minted in STORE_CHANGES],
    ids=[name for name, _, _ in STORE_CHANGES],
)
def test_the_conversion_follows_the_snapshot_the_match_was_decided_on(
    change: Callable[[MemoryStore, StoredRegistration], None], minted: bool
) -> None:
    store = MemoryStore(clock=lambda: NOW)
    store.confirm_projects()  # pending registrations may be added
    registration = registered(store, pending=True)
    publishers = live_publishers(store)
    match = publishers.match(token_claims())

    change(store, registration)
    publishers.refresh()  # the poller swapped snapshots after the match

    if minted:
        assert publishers.convert_matched(match, NOW) == (frozenset({PROJECT}), [])
    else:
        # Read again from the newer snapshot, the publisher would not look pending
        # and the token would be minted for a project nobody created.
        with pytest.raises(InvalidPendingPublisher):
            publishers.convert_matched(match, NOW)
        assert PROJECT not in store.load_registrations().projects


def test_expired_pending_publishers_are_purged_by_the_first_refresh_after_they_expire() -> None:
    clock = [float(NOW)]
    store = MemoryStore(clock=lambda: clock[0])
    store.confirm_projects()  # pending registrations may be added
    registered(store, pending=True)  # expires a day after NOW
    publishers = LivePublishers((), store, PROVIDERS, TRUSTED, clock=lambda: clock[0])
    publishers.refresh()
    unexpired = store.registrations_version()

    publishers.refresh()
    clock[0] = NOW + 86400 - 1
    publishers.refresh()
    assert store.registrations_version() == unexpired  # nothing expired, nothing purged

    clock[0] = NOW + 86400
    publishers.refresh()

    assert store.load_registrations().registrations == ()
    assert publishers.current().registered == {}
    assert publishers.current().next_expiry is None
    purged = store.registrations_version()
    assert purged == unexpired + 1
    publishers.refresh()
    assert store.registrations_version() == purged  # once


def test_a_pending_publisher_matches_nothing_from_its_expiry_before_any_reload() -> None:
    clock = [float(NOW)]
    store = MemoryStore(clock=lambda: clock[0])
    store.confirm_projects()  # pending registrations may be added
    registered(store, pending=True)  # expires a day after NOW
    publishers = LivePublishers(
        (), store, PROVIDERS, TRUSTED, clock=lambda: clock[0], poll_interval=3600
    )
    try:
        assert publishers.match(token_claims()).projects == frozenset({PROJECT})
        clock[0] = NOW + 86400  # the poller has not run since: the snapshot still holds it

        with pytest.raises(InvalidPublisher, match="no trusted publisher is registered"):
            publishers.match(token_claims())
        assert publishers.explain(token_claims()) == ()
    finally:
        publishers.stop_polling()


def test_two_tied_pending_publishers_of_one_project_convert_once_and_mint() -> None:
    # Two pending publishers for one new project, equally specific, both matching the
    # token (one names the environment, the other pins the repository id): the first
    # converts and creates the project, the second then finds it existing. The project
    # was created by this very exchange for a publisher that matched: it must be minted,
    # not refused after the store already converted it (and the token was used up).
    store = MemoryStore(clock=lambda: NOW)
    store.confirm_projects()
    registered(store, pending=True, name="env", changes={"environment": "pypi"})
    registered(store, pending=True, name="id", changes={"repository_id": "74"})
    publishers = live_publishers(store)
    match = publishers.match(token_claims())
    assert len(match.pending) == 2  # a tie: both win

    projects, converted = publishers.convert_matched(match, NOW)

    assert projects == frozenset({PROJECT})
    assert len(converted) == 1


@dataclass(frozen=True)
class LoggedTrail(AuditTrail):
    """An audit trail that keeps the records it logs."""

    logged: list[dict[str, str]] = field(default_factory=list)

    def log(self, entry: Mapping[str, str]) -> None:
        self.logged.append(dict(entry))


def test_an_expired_pending_publisher_purged_by_two_processes_is_recorded_and_logged_once() -> None:
    clock = [float(NOW)]
    store = MemoryStore(clock=lambda: clock[0])
    store.confirm_projects()  # pending registrations may be added
    registration = registered(store, pending=True)  # expires a day after NOW
    trails = [LoggedTrail(store, lambda: clock[0]) for _ in range(2)]
    processes = [
        LivePublishers((), store, PROVIDERS, TRUSTED, clock=lambda: clock[0], audit=trail)
        for trail in trails
    ]
    for process in processes:
        process.refresh()

    clock[0] = NOW + 86400
    for process in processes:
        process.refresh()

    stored = store.read_audit(since_ms=None, until_ms=None, limit=10, accept=lambda f: True)
    record = {
        "action": "publisher-expire",
        "actor": "trustpub",
        "at": str(NOW + 86400),
        "project": PROJECT,
        "publisher_id": registration.id,
        "pending": "true",
        "provider": "github",
        "issuer": PUBLIC_GITHUB_ISSUER,
        "repository": "octo-org/demo",
        "workflow": "release.yml",
    }
    assert [r.fields for r in stored.records] == [record]
    # Logged by the first, whose purge deleted it; the second found nothing to delete.
    assert [trail.logged for trail in trails] == [[record], []]


def test_a_poller_that_could_not_start_leaves_no_snapshot_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No thread to be had (a pids limit). Before, the request got a 500 and the process
    # never polled again: a publisher removed later matched for as long as it lived.
    store = MemoryStore(clock=lambda: NOW)
    registration = registered(store, pending=False)
    publishers = LivePublishers((), store, PROVIDERS, TRUSTED, clock=lambda: NOW, poll_interval=60)
    start = threading.Thread.start

    def no_thread(thread: threading.Thread) -> None:
        if thread.name == "trustpub-registrations":
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    assert publishers.match(token_claims()).projects  # served, from a fresh load
    assert store.remove_registration(registration.id) is not None
    with pytest.raises(InvalidPublisher):  # each request loads for itself meanwhile
        publishers.match(token_claims())
    monkeypatch.undo()

    assert store.add_registration(registration, NOW) == (None, None)
    try:
        assert publishers.match(token_claims()).projects  # and a poller starts
        assert publishers._poller is not None
        assert publishers._poller.is_alive()
    finally:
        publishers.stop_polling()
