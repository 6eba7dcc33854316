"""Publishers registered through the API, next to those of policy files: one model, two sources.

A registration is a policy file's `[[publisher]]` table (validated by the same JSON
Schema and parsed by the same `Provider.parse_publisher`) for one project, plus who
registered it and when. The effective set of publishers is the union of both sources;
policy-file publishers are read-only through the API.

The mint path never reads Redis for publishers: every process keeps a snapshot
(`LivePublishers`, a `PublisherRegistry` of files + registrations, O(1) lookups) and a
daemon thread re-reads one version counter every `poll_interval` seconds, reloading
the registrations only when it changed. A change therefore takes effect on every
process within about that delay, and at once in the process that made it (the API
answers after reloading). If the store is unreachable the last good snapshot stays in
use; nothing is minted then anyway, since the replay claim fails closed.

Pending publishers register a trusted publisher for a project that does not exist yet.
They match only while their project does not exist; the first exchange that matches one
converts it into a normal publisher, atomically in the store (which checks that it is
still pending and that its project still does not exist). They expire after
`pending_ttl` seconds (ignored at once, purged from the store by the first poll after,
with a `publisher-expire` audit record) and never reserve a name: until converted, other
pending publishers may name the same project, and the first exchange wins.

A publisher that names none of its provider's immutable IDs (a GitLab project or group
can be deleted and its path taken by someone else) pins them from the first token it
matches, in the store, under its registration's id (removed with it) or, for a policy
file's, a digest of its provider, issuer and repository. Every snapshot applies the pins
it read; a mint whose snapshot has none yet pins, or learns what an earlier mint pinned,
in the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from app.audit import AuditQuery, AuditTrail
from app.auth.clients import Client
from app.errors import (
    ClaimMismatch,
    DuplicatePublisher,
    Forbidden,
    InvalidPendingPublisher,
    InvalidPublisher,
    InvalidRegistration,
    InvalidRequest,
    NotFound,
    ProjectExists,
    ProjectForbidden,
    ProjectsUnconfirmed,
    ReadOnlyPublisher,
    StoreUnavailable,
    TooManyPublishers,
)
from app.explain import public_source
from app.observability import REQUEST_ID
from app.publishers.model import Provider, ProviderClaims, Publisher, pinned_on_first_use
from app.publishers.policy_files import (
    PROJECT_NAME_MAX,
    normalized_project,
    policy_schema_errors,
)
from app.publishers.registry import PublisherMatch, PublisherRegistry, PublisherReport, choose
from app.stores.base import (
    UNCONFIRMED,
    Declaration,
    Epoch,
    ExpiryRecords,
    RegistrationState,
    RegistrationStore,
    StoredRegistration,
)

log = logging.getLogger(__name__)

SOURCE_PREFIX = "registered: "
ID_PREFIX = "rp_"
# Registered ids are 19 characters, policy-file ones a path and an index.
MAX_QUOTED_ID_LENGTH = 200
# Pin keys of policy-file publishers; a registered publisher's is its id (ID_PREFIX).
FILE_PIN_PREFIX = "file:"
# Project names one declaration takes: an index of 600,000 projects declares them in 60
# calls, two minutes of the default registration rate limit (`trustpub projects declare`
# waits when it is limited).
MAX_DECLARED_PROJECTS = 10_000
# An epoch as a declaration answers it ("<id>:<unix seconds>") is some 40 characters.
MAX_EPOCH_LENGTH = 100
# Its body, were every name of the longest length: above the app's usual body limit.
MAX_DECLARATION_BYTES = MAX_DECLARED_PROJECTS * (PROJECT_NAME_MAX + len('"", ')) + 64
# Registered publishers (pending ones too) one project may hold. Every process loads
# every registration after each change, and a listing answers all of a project's: without
# a bound, one project's key could grow both without end (30 adds a minute, each up to
# some 16 kB of refs). Checked against the snapshot, so concurrent adds may pass it by a
# few.
MAX_PUBLISHERS_PER_PROJECT = 100
# The actor of the audit records of trustpub's own changes, no client's: an expired
# pending publisher's deletion, the policy files' projects declared.
SERVICE_ACTOR = "trustpub"

IdentityKey = tuple[tuple[str, ...], str]


def registration_source(registration_id: str) -> str:
    return SOURCE_PREFIX + registration_id


@dataclass(frozen=True)
class PublisherSnapshot:
    """The effective publishers at one registrations version."""

    version: int | None  # None: the store has not been read yet (files only)
    registry: PublisherRegistry
    file_publishers: tuple[Publisher, ...]
    # Registered publishers and their registration, by publisher source.
    registered: Mapping[str, tuple[Publisher, StoredRegistration]]
    # Registrations that no longer parse (their issuer was removed since), by id, with
    # why: matched by nothing, but still listed and removable by their maintainers.
    ignored: Mapping[str, tuple[StoredRegistration, str]]
    # Projects that exist for trustpub: named by a policy file or known to the store.
    existing: frozenset[str]
    # Whether `existing` is known complete since the store began: until an admin says
    # so, a pending publisher could name a project of the index the store never heard of.
    projects_confirmed: bool
    # (identity key, project) -> source of the publisher that holds it.
    identities: Mapping[IdentityKey, str]
    # Claims pinned on first use, by pin key.
    pins: Mapping[str, Mapping[str, str]]
    # Whether any publisher has yet to pin claims from its first token: when none has,
    # a match does not look (the mint path).
    unpinned: bool
    # When the first pending registration read expires (unix seconds), if any does.
    next_expiry: int | None
    # Every pending registration read, expired ones too: the audit record of an expired
    # one's deletion (by a purge, or an add in its place) is prepared from it.
    pending: tuple[StoredRegistration, ...] = ()


class LivePublishers(PublisherRegistry):
    """The publisher registry of the exchange and of explain: files + registrations.

    A `PublisherRegistry` whose contents follow the store; see the module docstring.
    """

    def __init__(
        self,
        file_publishers: Sequence[Publisher],
        store: RegistrationStore,
        providers: Mapping[str, Provider],
        trusted_issuers: Mapping[str, frozenset[str]],
        clock: Callable[[], float],
        poll_interval: float = 1.0,
        audit: AuditTrail | None = None,
    ) -> None:
        super().__init__(())
        self._files = tuple(file_publishers)
        # By source: the pin keys of the policy-file publishers that pin on first use.
        self._file_pin_keys = {
            p.source: file_pin_key(p) for p in self._files if p.pins_on_first_use
        }
        self._file_projects = frozenset().union(*(p.projects for p in self._files))
        self._store = store
        self._providers = providers
        self._trusted_issuers = trusted_issuers
        self._clock = clock
        self._poll_interval = poll_interval
        self._audit = audit
        self._reload_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._poller_pid: int | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        # Parsed registrations by (id, stored JSON): a reload parses only what changed.
        self._parsed: dict[tuple[str, str], Publisher] = {}
        self._snapshot = self._build(None, RegistrationState(0, (), frozenset()))

    # -- what the exchange and explain use (no store access) -----------------------------

    def current(self) -> PublisherSnapshot:
        self._ensure_poller()
        return self._snapshot

    def __len__(self) -> int:
        return len(self.current().registry)

    def explain(self, claims: ProviderClaims) -> tuple[PublisherReport, ...]:
        return self._explain(self.current(), claims)

    def _explain(
        self, snapshot: PublisherSnapshot, claims: ProviderClaims
    ) -> tuple[PublisherReport, ...]:
        reports = snapshot.registry.explain(claims)
        if not snapshot.registered:  # policy files only: nothing expires
            return reports
        now = self._clock()
        return tuple(report for report in reports if not _expired(snapshot, report.publisher, now))

    def match(self, claims: ProviderClaims) -> PublisherMatch:
        """As `PublisherRegistry.match`, but a pending publisher whose project exists
        now is no candidate; if only such publishers match: invalid-pending-publisher."""
        snapshot = self.current()
        reports = self._explain(snapshot, claims)
        if not snapshot.registered:  # policy files only: nothing is pending
            return self._with_first_use(snapshot, choose(claims, reports))
        usable: list[PublisherReport] = []
        clashing: list[PublisherReport] = []
        for report in reports:
            pending = pending_registration(snapshot, report.publisher)
            if pending is not None and pending.project in snapshot.existing:
                clashing.append(report)
            else:
                usable.append(report)
        try:
            # Each project's maintainers declare its publishers: a more specific one
            # registered for another project must not take this one's away.
            match = choose(claims, usable, authority=partial(_declared_by, snapshot))
        except InvalidPublisher:
            if any(report.matches for report in clashing):
                raise InvalidPendingPublisher(
                    "this token matches a pending publisher, but its project exists now: "
                    "ask the project's maintainers to register the publisher"
                ) from None
            raise
        # From this snapshot, not a later one: a pending publisher removed after the
        # match must still fail its conversion, never mint as if it were a normal one.
        pending_winners = tuple(
            registration
            for publisher in match.publishers
            if (registration := pending_registration(snapshot, publisher)) is not None
        )
        if pending_winners:
            match = replace(match, pending=pending_winners)
        return self._with_first_use(snapshot, match)

    def _with_first_use(self, snapshot: PublisherSnapshot, match: PublisherMatch) -> PublisherMatch:
        if not snapshot.unpinned:
            return match
        first_use = tuple(
            (publisher, key)
            for publisher in match.publishers
            if publisher.pins_on_first_use
            and (key := self._pin_key(snapshot, publisher)) is not None
        )
        return replace(match, first_use=first_use) if first_use else match

    def _pin_key(self, snapshot: PublisherSnapshot, publisher: Publisher) -> str | None:
        """Where `publisher`'s first-use pins are kept: its registration's id, or its
        file key (None for a policy file's that names its IDs)."""
        entry = snapshot.registered.get(publisher.source)
        return entry[1].id if entry is not None else self._file_pin_keys.get(publisher.source)

    def pins_of(
        self, snapshot: PublisherSnapshot, publisher: Publisher
    ) -> Mapping[str, str] | None:
        """What `publisher` pinned from its first token, if it pinned anything yet."""
        key = self._pin_key(snapshot, publisher)
        return None if key is None else snapshot.pins.get(key)

    def pin_on_first_use(
        self,
        publisher: Publisher,
        key: str,
        claims: ProviderClaims,
        audit: Mapping[str, str] | None = None,
    ) -> bool:
        """Pin the claims `publisher` pins on first use to `claims`' values, under `key`
        (one of `match.first_use`), with `audit`; or, if a token pinned them first (the
        match's snapshot predates it), check `claims` against those. Raises
        InvalidPublisher if they differ; returns whether this call pinned them."""
        wanted: dict[str, str] = {}
        for claim in publisher.pins_on_first_use:
            value = claims.values.get(claim)
            if value is None:
                raise InvalidPublisher(
                    "token is missing a claim its publisher pins",
                    (ClaimMismatch(claim, "a string", None),),
                )
            wanted[claim] = value
        pinned, created = self._store.pin_on_first_use(key, wanted, audit=audit)
        differing = tuple(
            ClaimMismatch(claim, pinned_on_first_use(pinned.get(claim)), value)
            for claim, value in wanted.items()
            if pinned.get(claim) != value
        )
        if differing:
            raise InvalidPublisher("no trusted publisher matches this token", differing)
        return created

    def convert_matched(
        self,
        match: PublisherMatch,
        now: int,
        records: Mapping[str, Mapping[str, str]] | None = None,
    ) -> tuple[frozenset[str], list[StoredRegistration]]:
        """Convert the pending publishers among `match`'s winners, atomically in the store,
        each with its audit record in `records` (by registration id), if any.

        Returns the projects to mint for (a pending publisher that lost, because its
        project exists now or another pending publisher was converted first, drops its
        project) and the registrations this call converted.
        """
        pending = match.pending
        if not pending:
            return match.projects, []
        pending_sources = {registration_source(r.id) for r in pending}
        granted = frozenset().union(
            *(p.projects for p in match.publishers if p.source not in pending_sources)
        )
        # Decided after every conversion, not one by one: two tied pending publishers of
        # one project both win, and the second finds the project the first just created
        # ("exists"); that project is still granted, by the first.
        kept = set(granted)
        converted = []
        for registration in pending:
            outcome = self._store.convert_pending(
                registration.id,
                registration.project,
                now,
                audit=records.get(registration.id) if records else None,
            )
            if outcome == "converted":
                converted.append(registration)
            if outcome in ("converted", "normal"):
                kept.add(registration.project)
        projects = match.projects & kept
        if not projects:
            raise InvalidPendingPublisher(
                "this token matches a pending publisher, but its project exists now "
                "(or another pending publisher created it first)"
            )
        return frozenset(projects), converted

    # -- keeping the snapshot current ------------------------------------------------

    def refresh(self) -> PublisherSnapshot:
        """Reload if the store's version changed, once expired pending publishers are
        purged; raises StoreUnavailable."""
        expiry = self._snapshot.next_expiry
        if expiry is not None and expiry <= self._clock():
            self._purge(int(self._clock()))
        version = self._store.registrations_version()
        if version == self._snapshot.version:
            return self._snapshot
        with self._reload_lock:
            if self._store.registrations_version() != self._snapshot.version:
                state = self._store.load_registrations()
                if not self._file_projects <= state.projects:
                    state = self._record_file_projects(state)
                self._snapshot = self._build(state.version, state)
        return self._snapshot

    def _record_file_projects(self, state: RegistrationState) -> RegistrationState:
        # A project a policy file names exists, and must go on existing once the file no
        # longer names it (its publisher removed after a compromise, say): the set never
        # shrinks, so no pending publisher can take the name then. Recorded as an index's
        # declaration is, with actor "trustpub": the count, not the names, which the
        # policy files' history in Git holds. If the write fails, this process still
        # counts its files' projects, and its next reload tries again.
        missing = sorted(self._file_projects - state.projects)
        try:
            with _no_request_id():
                self._declare_file_projects(missing)
            return self._store.load_registrations()
        except StoreUnavailable:
            log.warning("registrations: the policy files' projects could not be recorded yet")
            return state

    def _declare_file_projects(self, missing: Sequence[str]) -> None:
        for first in range(0, len(missing), MAX_DECLARED_PROJECTS):
            batch = missing[first : first + MAX_DECLARED_PROJECTS]
            if self._audit is None:
                self._store.declare_projects(batch)
                continue
            record = self._audit.prepare(
                "projects-declare", SERVICE_ACTOR, {"count": str(len(batch))}
            )
            # The store appends the record only when it added a name: of processes
            # loading the same files at once, the first records them.
            if self._store.declare_projects(batch, audit=record).created:
                self._audit.log(record)

    def _purge(self, now: int) -> None:
        # Any process may purge: the store removes each registration once, with its audit
        # record, and changes the version (so every process reloads) only when it removed
        # one. The process whose purge removed it logs the record.
        if self._audit is None:
            self._store.purge_expired(now)
            return
        # An add in place of an expired publisher keeps the add's request id.
        with _no_request_id():
            expired = _expiry_records(
                self._audit, (r for r in self._snapshot.pending if r.expired(now))
            )
            for registration_id in self._store.purge_expired(now, expired):
                self._audit.log(expired.of(registration_id))

    def try_refresh(self) -> None:
        try:
            self.refresh()
        except StoreUnavailable:
            log.warning("registrations: store unreachable; serving the last loaded set")

    def _ensure_poller(self) -> None:
        # Started lazily, in the process that serves: a thread started before
        # gunicorn forks its workers would not exist in them.
        pid = os.getpid()
        if self._poller_pid == pid:
            return
        with self._start_lock:
            if self._poller_pid == pid:
                return
            # This process's first request. A gunicorn worker (also one forked again
            # after a crash or a SIGHUP) holds the snapshot its master loaded at start-up,
            # maybe days ago: a publisher removed since must not match until the poller's
            # first reload. Reloaded now; StoreUnavailable if it cannot be, and the next
            # request tries again.
            self.refresh()
            poller = threading.Thread(
                target=_poll,
                args=(weakref.ref(self), self._poll_interval, self._stop_polling),
                name="trustpub-registrations",
                daemon=True,
            )
            try:
                poller.start()
            except RuntimeError:
                # No thread to be had (a pids limit): each request reloads for itself
                # until one starts, rather than serve this snapshot for good.
                log.error("registrations: the poller could not start a thread")
                return
            self._poller_pid = pid
            self._poller = poller

    def stop_polling(self) -> None:
        """End this process's poller, once its reload under way (if any) is done.

        A server's poller lives as long as its process. Tests build an app per test on
        one Redis: an earlier test's poller would reload, and write its files' projects,
        into the next test's store."""
        self._stop_polling.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=10)  # a reload under way waits at most a few timeouts

    def _build(self, version: int | None, state: RegistrationState) -> PublisherSnapshot:
        now = self._clock()
        registered: dict[str, tuple[Publisher, StoredRegistration]] = {}
        ignored: dict[str, tuple[StoredRegistration, str]] = {}
        parsed: dict[tuple[str, str], Publisher] = {}
        pins = state.pins
        for registration in state.registrations:
            if registration.expired(now):
                continue
            key = (registration.id, registration.encode())
            publisher = self._parsed.get(key)
            if publisher is None:
                try:
                    publisher = parse_registration(
                        registration, self._providers, self._trusted_issuers
                    )
                except InvalidRegistration as exc:
                    # Valid when registered; the issuer may have been removed since.
                    log.warning("registration %s ignored: %s", registration.id, exc.description)
                    ignored[registration.id] = (registration, exc.description)
                    continue
            parsed[key] = publisher
            registered[publisher.source] = (
                _with_pins(publisher, pins.get(registration.id)),
                registration,
            )
        self._parsed = parsed
        files = self._files
        if pins and self._file_pin_keys:
            files = tuple(
                _with_pins(p, pins.get(self._file_pin_keys.get(p.source, ""))) for p in files
            )
        identities: dict[IdentityKey, str] = {}
        for publisher in files:
            for project in publisher.projects:
                identities.setdefault((publisher.identity_key, project), publisher.source)
        for publisher, registration in registered.values():
            identities.setdefault((publisher.identity_key, registration.project), publisher.source)
        everything = [*files, *(publisher for publisher, _ in registered.values())]
        return PublisherSnapshot(
            version=version,
            registry=PublisherRegistry(everything),
            file_publishers=files,
            registered=registered,
            ignored=ignored,
            existing=self._file_projects | state.projects,
            projects_confirmed=state.projects_confirmed,
            identities=identities,
            pins=pins,
            unpinned=any(publisher.pins_on_first_use for publisher in everything),
            next_expiry=min(
                (r.expires_at for r in state.registrations if r.expires_at is not None),
                default=None,
            ),
            pending=tuple(r for r in state.registrations if r.pending),
        )


@contextlib.contextmanager
def _no_request_id() -> Iterator[None]:
    """For trustpub's own changes (an expiry purged, the policy files' projects recorded):
    a request's refresh may set them off, but they are no request's doing, so their audit
    records and log lines carry no request id, which would send whoever follows it to the
    wrong caller."""
    outside = REQUEST_ID.set("-")
    try:
        yield
    finally:
        REQUEST_ID.reset(outside)


def _poll(owner_ref: weakref.ref[LivePublishers], interval: float, stop: threading.Event) -> None:
    # Holds its owner weakly between polls: an app that is dropped (tests build many)
    # takes its poller with it.
    while not stop.wait(interval):
        owner = owner_ref()
        if owner is None:
            return
        try:
            owner.refresh()
        except StoreUnavailable:
            pass  # keep serving the last good set; the next poll tries again
        except Exception:
            log.exception("registrations: reload failed; serving the last loaded set")
        del owner


def _with_pins(publisher: Publisher, pins: Mapping[str, str] | None) -> Publisher:
    return (
        publisher.with_pins(pins) if pins is not None and publisher.pins_on_first_use else publisher
    )


def file_pin_key(publisher: Publisher) -> str:
    """Where a policy-file publisher's first-use pins are kept: one key for every
    policy-file publisher of one repository at one issuer, which its IDs belong to, so
    that no edit of the files but pinning them explicitly lets another repository in."""
    identity = [publisher.provider, publisher.issuer, publisher.lookup_key]
    material = json.dumps(identity).encode("utf-8")
    return FILE_PIN_PREFIX + hashlib.blake2b(material, digest_size=16).hexdigest()


def pending_registration(
    snapshot: PublisherSnapshot, publisher: Publisher
) -> StoredRegistration | None:
    entry = snapshot.registered.get(publisher.source)
    if entry is None or not entry[1].pending:
        return None
    return entry[1]


def _ignored(snapshot: PublisherSnapshot, registration_id: str) -> StoredRegistration | None:
    entry = snapshot.ignored.get(registration_id)
    return None if entry is None else entry[0]


def _publishers_held(snapshot: PublisherSnapshot, project: str, now: int) -> int:
    """The project's registered publishers, pending and ignored ones too; not expired
    pending ones, which the purge is about to delete."""
    registrations = [r for _, r in snapshot.registered.values()]
    registrations += [r for r, _ in snapshot.ignored.values()]
    return sum(r.project == project and not r.expired(now) for r in registrations)


def _declared_by(snapshot: PublisherSnapshot, publisher: Publisher) -> str | None:
    """Who declared `publisher`: its project's maintainers, or the operator (None) for
    the policy files."""
    entry = snapshot.registered.get(publisher.source)
    return None if entry is None else entry[1].project


def _expired(snapshot: PublisherSnapshot, publisher: Publisher, now: float) -> bool:
    entry = snapshot.registered.get(publisher.source)
    return entry is not None and entry[1].expired(now)


def parse_registration(
    registration: StoredRegistration,
    providers: Mapping[str, Provider],
    trusted_issuers: Mapping[str, frozenset[str]],
) -> Publisher:
    return parse_entry(
        registration.entry, registration_source(registration.id), providers, trusted_issuers
    )


def parse_entry(
    entry: Mapping[str, Any],
    source: str,
    providers: Mapping[str, Provider],
    trusted_issuers: Mapping[str, frozenset[str]],
) -> Publisher:
    """Exactly what a policy file's loader does with one `[[publisher]]` table."""
    errors = policy_schema_errors({"publisher": [dict(entry)]})
    if errors:
        raise InvalidRegistration(
            "invalid publisher: "
            + "; ".join(f"{_field(e.absolute_path)}: {e.message}" for e in errors)
        )
    try:
        publisher = providers[entry["provider"]].parse_publisher(entry, source)
    except (ValueError, KeyError) as exc:
        raise InvalidRegistration(f"invalid publisher: {exc}") from None
    if publisher.issuer not in trusted_issuers.get(publisher.provider, frozenset()):
        raise InvalidRegistration(
            f"invalid publisher: issuer: {publisher.issuer!r} is not a configured "
            f"{publisher.provider} issuer of this service"
        )
    return publisher


def _field(path: Iterable[Any]) -> str:
    parts = [str(part) for part in list(path)[2:]]  # below publisher[0]
    return ".".join(parts) or "(body)"


def unique_key(publisher: Publisher, project: str) -> str:
    material = json.dumps([list(publisher.identity_key), project]).encode("utf-8")
    return hashlib.blake2b(material, digest_size=16).hexdigest()


@dataclass(frozen=True)
class PublisherRegistrations:
    """The management use cases: list, add, remove, declare a project, read the audit."""

    publishers: LivePublishers
    store: RegistrationStore
    providers: Mapping[str, Provider]
    trusted_issuers: Mapping[str, frozenset[str]]
    audit: AuditTrail
    pending_ttl: int
    clock: Callable[[], float]

    def list_publishers(self, client: Client, project_name: str) -> list[dict[str, Any]]:
        project = normalized_project(project_name)
        self._require_manager(client, project)
        snapshot = self.publishers.refresh()
        now = self.clock()
        pins_of = partial(self.publishers.pins_of, snapshot)
        listed = [
            _file_dict(publisher, project, pins_of(publisher))
            for publisher in snapshot.file_publishers
            if project in publisher.projects
        ]
        listed += [
            _registration_dict(publisher, registration, pins_of(publisher))
            for publisher, registration in snapshot.registered.values()
            if registration.project == project and not registration.expired(now)
        ]
        listed += [
            _ignored_dict(registration, reason, snapshot.pins.get(registration.id))
            for registration, reason in snapshot.ignored.values()
            if registration.project == project
        ]
        return listed

    def add(self, client: Client, project_name: str, body: Any) -> dict[str, Any]:
        project = normalized_project(project_name)
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object: a policy entry")
        pending = body.get("pending", False)
        if not isinstance(pending, bool):
            raise InvalidRegistration("invalid publisher: pending: must be true or false")
        if pending:
            if not (client.allows("pending") or client.manages(project)):
                if "manage" in client.scopes:  # as for every other change of a project
                    raise ProjectForbidden(f"this client does not manage {project!r}")
                raise Forbidden("registering a pending publisher needs the 'pending' scope")
        else:
            self._require_manager(client, project)
        if "projects" in body:
            raise InvalidRegistration(
                "invalid publisher: projects: not allowed; the project comes from the URL"
            )
        entry = {key: value for key, value in body.items() if key != "pending"}
        entry["projects"] = [project]
        registration_id = ID_PREFIX + secrets.token_hex(8)
        publisher = parse_entry(
            entry, registration_source(registration_id), self.providers, self.trusted_issuers
        )
        snapshot = self.publishers.refresh()
        if pending and not snapshot.projects_confirmed:
            raise ProjectsUnconfirmed(_UNCONFIRMED_MESSAGE)
        if pending and project in snapshot.existing:
            raise ProjectExists(
                f"project {project!r} exists: its maintainers register publishers for it"
            )
        holder = snapshot.identities.get((publisher.identity_key, project))
        if holder is not None:
            raise DuplicatePublisher(_duplicate_message(project, holder))
        now = int(self.clock())
        held = _publishers_held(snapshot, project, now)
        if held >= MAX_PUBLISHERS_PER_PROJECT:
            raise TooManyPublishers(
                f"{project!r} has {held} registered publishers, the most one project may "
                "hold: remove those it no longer uses"
            )
        registration = StoredRegistration(
            id=registration_id,
            project=project,
            entry=entry,
            created_by=client.name,
            created_at=now,
            unique_key=unique_key(publisher, project),
            expires_at=now + self.pending_ttl if pending else None,
        )
        # Stored with the registration, in the same script: never one without the other.
        record = self.audit.prepare(
            "publisher-add",
            client.name,
            {
                "project": project,
                "publisher_id": registration_id,
                "pending": "true" if pending else "false",
                **_identity_fields(entry),
            },
        )
        # An expired pending publisher of the same identity that holds its key still (one
        # this process read after its expiry, before a purge) is deleted in its place.
        expired = _expiry_records(
            self.audit,
            (
                r
                for r in snapshot.pending
                if r.unique_key == registration.unique_key and r.expired(now)
            ),
            project=project,
        )
        refused, replaced = self.store.add_registration(
            registration, now, audit=record, expired=expired
        )
        if refused == UNCONFIRMED:
            raise ProjectsUnconfirmed(_UNCONFIRMED_MESSAGE)
        if refused == "":
            raise ProjectExists(
                f"project {project!r} exists: its maintainers register publishers for it"
            )
        if refused is not None:
            raise DuplicatePublisher(_duplicate_message(project, registration_source(refused)))
        if replaced is not None:
            self.audit.log(expired.of(replaced))
        self.audit.log(record)
        self.publishers.try_refresh()  # answer once this process uses it
        return _registration_dict(publisher, registration, None)

    def remove(self, client: Client, project_name: str, registration_id: str) -> dict[str, Any]:
        project = normalized_project(project_name)
        snapshot = self.publishers.refresh()
        found = snapshot.registered.get(registration_source(registration_id))
        registration = found[1] if found is not None else _ignored(snapshot, registration_id)
        if registration is None or registration.project != project:
            if any(
                project in p.projects and _file_id(p) == registration_id
                for p in snapshot.file_publishers
            ):
                self._require_manager(client, project)
                raise ReadOnlyPublisher(
                    "this publisher comes from a policy file: remove it there (in Git)"
                )
            self._require_manager(client, project)
            raise NotFound(f"no registered publisher {_quoted_id(registration_id)} for {project!r}")
        own_pending = (
            not client.manages(project)
            and registration.pending
            and client.allows("pending")
            and registration.created_by == client.name
        )
        if not own_pending:
            self._require_manager(client, project)
        record = self.audit.prepare(
            "publisher-remove",
            client.name,
            {
                "project": project,
                "publisher_id": registration_id,
                "pending": "true" if registration.pending else "false",  # the store sets it
                **_identity_fields(registration.entry),
            },
        )
        removed = self.store.remove_registration(
            registration_id, audit=record, pending_only=own_pending
        )
        if removed is None:
            if own_pending and registration_source(registration_id) in (
                self.publishers.refresh().registered
            ):
                # Converted since the snapshot: a normal publisher now, its project's own.
                self._require_manager(client, project)
            raise NotFound(f"no registered publisher {_quoted_id(registration_id)} for {project!r}")
        self.audit.log({**record, "pending": "true" if removed.pending else "false"})
        self.publishers.try_refresh()
        return {"removed": registration_id, "project": project}

    def declare_project(self, client: Client, project_name: str) -> dict[str, Any]:
        project = normalized_project(project_name)
        _require_admin(client, "declaring a project")
        record = self.audit.prepare("project-declare", client.name, {"project": project})
        declared = self._declare([project], record)
        return {
            "project": project,
            "created": bool(declared.created),
            "epoch": declared.epoch.encode(),
        }

    def declare_projects(self, client: Client, body: Any) -> dict[str, Any]:
        """Many projects at once: an index declares all of its own in a few calls (on a
        first deployment, and after a data loss) before it confirms them."""
        _require_admin(client, "declaring projects")
        names = body.get("projects") if isinstance(body, dict) and len(body) == 1 else None
        if not isinstance(names, list) or not 1 <= len(names) <= MAX_DECLARED_PROJECTS:
            raise InvalidRequest(
                'the body must be {"projects": [...]}, with 1 to '
                f"{MAX_DECLARED_PROJECTS:,} project names"
            )
        if not all(isinstance(name, str) for name in names):
            raise InvalidRequest("every project name must be a string")
        projects = sorted({normalized_project(name) for name in names})
        record = self.audit.prepare("projects-declare", client.name, {"count": str(len(projects))})
        declared = self._declare(projects, record)
        return {
            "declared": len(projects),
            "created": declared.created,
            "epoch": declared.epoch.encode(),
        }

    def _declare(self, projects: Sequence[str], record: Mapping[str, str]) -> Declaration:
        declared = self.store.declare_projects(projects, audit=record)
        if declared.created:
            self.audit.log(record)
        self.publishers.try_refresh()
        return declared

    def projects_status(self, client: Client) -> dict[str, Any]:
        """The store's epoch, which a confirmation names, and whether it is confirmed."""
        _require_admin(client, "reading whether the projects are confirmed")
        epoch, confirmed = self.store.projects_status()
        return {"epoch": epoch.encode(), "confirmed": confirmed}

    def confirm_projects(self, client: Client, body: Any) -> dict[str, Any]:
        """An admin's word that every project of the index is declared, naming the epoch
        the declarations began in: one the store left (a data loss since) is refused,
        for the names declared before the loss are gone."""
        _require_admin(client, "confirming the projects")
        declared_in = _declared_epoch(body)
        record = self.audit.prepare("projects-confirm", client.name, {})
        confirmed = self.store.confirm_projects(audit=record, declared_in=declared_in)
        if confirmed:
            self.audit.log(record)
        self.publishers.try_refresh()
        return {"confirmed": True, "changed": confirmed, "epoch": declared_in.encode()}

    def read_audit(self, client: Client, query: AuditQuery) -> dict[str, Any]:
        if query.project is not None:
            query = replace(query, project=normalized_project(query.project))
        if not client.allows("admin"):
            if "manage" not in client.scopes:
                raise Forbidden("reading the audit trail needs the 'manage' or 'admin' scope")
            if query.refusals:
                raise Forbidden("reading refused mints (they name no project) needs 'admin'")
            if query.project is None:
                raise ProjectForbidden(
                    "name one of your projects (?project=; `trustpub audit --project`)"
                )
            self._require_manager(client, query.project)
        return self.audit.read(query)

    def _require_manager(self, client: Client, project: str) -> None:
        if client.manages(project):
            return
        if "manage" in client.scopes:
            raise ProjectForbidden(f"this client does not manage {project!r}")
        raise Forbidden("managing publishers needs the 'manage' or 'admin' scope")


def _require_admin(client: Client, doing: str) -> None:
    if not client.allows("admin"):
        raise Forbidden(f"{doing} needs the 'admin' scope")


_UNCONFIRMED_MESSAGE = (
    "pending publishers wait until an admin confirms that trustpub knows every project of "
    "the index (a new store, or one that lost its data): declare them, then PUT /api/v1/projects"
)


def _declared_epoch(body: Any) -> Epoch:
    value = body.get("epoch") if isinstance(body, dict) and len(body) == 1 else None
    epoch: Epoch | None = None
    if isinstance(value, str) and len(value) <= MAX_EPOCH_LENGTH:
        with contextlib.suppress(ValueError):  # no ":<seconds>" at its end
            epoch = Epoch.decode(value)
    if epoch is None or not epoch.id:
        raise InvalidRequest(
            'the body must be {"epoch": "..."}: the epoch the first declaration answered '
            "(or GET /api/v1/projects, for an index without projects)"
        )
    return epoch


def _duplicate_message(project: str, holder: str) -> str:
    where = (
        f"registered publisher {holder.removeprefix(SOURCE_PREFIX)}"
        if holder.startswith(SOURCE_PREFIX)
        else f"policy file entry {public_source(holder)!r} (read-only)"
    )
    return f"an identical publisher for {project!r} exists already: {where}"


def _expiry_records(
    audit: AuditTrail, registrations: Iterable[StoredRegistration], **known: str
) -> ExpiryRecords:
    """The `publisher-expire` records of deleting `registrations` as expired, with the
    fields a removal's record has; and for any other registration the store deletes as
    expired (one this process did not read, or could not), a minimal one: `known`, and
    the id the store adds."""
    own = {
        registration.id: audit.prepare(
            "publisher-expire",
            SERVICE_ACTOR,
            {
                "project": registration.project,
                "publisher_id": registration.id,
                "pending": "true",
                **_identity_fields(registration.entry),
            },
        )
        for registration in registrations
    }
    other = audit.prepare("publisher-expire", SERVICE_ACTOR, {**known, "pending": "true"})
    return ExpiryRecords(other, own)


def _identity_fields(entry: Mapping[str, Any]) -> dict[str, str | None]:
    fields = {
        "provider": entry.get("provider"),
        "issuer": entry.get("issuer"),
        "repository": entry.get("repository") or entry.get("project_path"),
        "workflow": entry.get("workflow") or entry.get("workflow_filepath"),
        "environment": entry.get("environment"),
        "email": entry.get("email"),
    }
    return {key: value if isinstance(value, str) else None for key, value in fields.items()}


def _quoted_id(registration_id: str) -> str:
    # The id is the request's own path segment: quoted back only when it is id-sized.
    if len(registration_id) <= MAX_QUOTED_ID_LENGTH:
        return repr(registration_id)
    return f"with that id ({len(registration_id)} characters)"


def _file_id(publisher: Publisher) -> str:
    return public_source(publisher.source)


def _file_dict(
    publisher: Publisher, project: str, pins: Mapping[str, str] | None
) -> dict[str, Any]:
    return {
        "id": _file_id(publisher),
        "project": project,
        "source": "file",
        "pending": False,
        "expires_at": None,
        "created_by": None,
        "created_at": None,
        "publisher": {
            "provider": publisher.provider,
            "issuer": publisher.issuer,
            "identity": publisher.lookup_key,
        },
        "pinned_on_first_use": _pins_dict(pins),
    }


def _pins_dict(pins: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if pins is None else dict(pins)


def _ignored_dict(
    registration: StoredRegistration, reason: str, pins: Mapping[str, str] | None
) -> dict[str, Any]:
    return {**_stored_dict(registration, pins), "ignored": reason}


def _registration_dict(
    publisher: Publisher, registration: StoredRegistration, pins: Mapping[str, str] | None
) -> dict[str, Any]:
    listed = _stored_dict(registration, pins)
    listed["publisher"].setdefault("issuer", publisher.issuer)
    return listed


def _stored_dict(
    registration: StoredRegistration, pins: Mapping[str, str] | None
) -> dict[str, Any]:
    entry = {key: value for key, value in registration.entry.items() if key != "projects"}
    return {
        "id": registration.id,
        "project": registration.project,
        "source": "registered",
        "pending": registration.pending,
        "expires_at": registration.expires_at,
        "created_by": registration.created_by,
        "created_at": registration.created_at,
        "publisher": entry,
        "pinned_on_first_use": _pins_dict(pins),
    }
