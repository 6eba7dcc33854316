"""In-process stores for development and unit tests: one process only, lost on restart.

Losing everything on restart is exactly the data loss the epoch detects: a new process
has a new epoch (a forked one too: a gunicorn worker forked again from its master), so
tokens minted by an earlier one are no longer vouched for.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from app.clocks import check_store_clock
from app.errors import DeclarationsLost
from app.stores.base import (
    UNCONFIRMED,
    AuditPage,
    AuditRecord,
    ClaimResult,
    Declaration,
    Epoch,
    ExpiryRecords,
    RegistrationState,
    RevocationState,
    StoredRegistration,
    new_epoch_id,
    stream_position,
)


class MemoryStore:
    def __init__(
        self, clock: Callable[[], float] = time.time, audit_max_length: int = 100_000
    ) -> None:
        self._clock = clock
        self._registrations: dict[str, StoredRegistration] = {}
        self._unique: dict[str, str] = {}
        self._projects: set[str] = set()
        self._pins: dict[str, Mapping[str, str]] = {}
        self._projects_confirmed = False
        self._version = 0
        self._audit: deque[AuditRecord] = deque(maxlen=audit_max_length)
        self._refusals: deque[AuditRecord] = deque(maxlen=audit_max_length)
        self._audit_sequence = 0
        self._audit_last_ms = 0
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}
        # Who made each replay claim in `_values`, removed with it.
        self._claimants: dict[str, str] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._epoch = Epoch(id=new_epoch_id(), created_at=int(clock()))
        _STORES.add(self)

    def _forked(self) -> None:
        """In a forked child (a gunicorn worker, and every worker forked again after a
        crash or a SIGHUP): what the child changes is its own and dies with it, so it
        is a process of its own with an epoch of its own. Sharing its parent's would let
        the next child vouch for tokens an earlier one revoked, and mint again for OIDC
        tokens an earlier one exchanged."""
        self._lock = threading.Lock()  # another thread of the parent may have held it
        self._epoch = Epoch(id=new_epoch_id(), created_at=int(self._clock()))

    def claim_once(
        self,
        key: str,
        claimant: str,
        ttl_seconds: int,
        audit: Mapping[str, str] | None = None,
        epoch_began_before: int | None = None,
        clock: int | None = None,
    ) -> ClaimResult:
        now = self._clock()
        if clock is not None:
            check_store_clock(clock, now)
        with self._lock:
            self._purge(now)
            if key in self._values:
                return ClaimResult(first=self._claimants.get(key) == claimant, epoch=self._epoch)
            self._set(key, 1, now + ttl_seconds)
            self._claimants[key] = claimant
            if audit is not None and (
                epoch_began_before is None or self._epoch.created_at < epoch_began_before
            ):
                self._append_audit_locked(audit)
        return ClaimResult(first=True, epoch=self._epoch)

    def revoke_before(
        self, key: str, moment: int, ttl_seconds: int, audit: Mapping[str, str] | None = None
    ) -> None:
        now = self._clock()
        with self._lock:
            self._purge(now)
            current = self._values.get(key)
            if current is None or current[0] < moment:
                self._set(key, moment, now + ttl_seconds)
            elif current[1] < now + ttl_seconds:
                # An older moment keeps the entry but must not outlive it: it lives as
                # long as the longer of the two asks, as Redis's script does.
                self._set(key, current[0], now + ttl_seconds)
            if audit is not None:
                self._append_audit_locked(audit)

    def revocation_state(self, keys: Sequence[str]) -> RevocationState:
        with self._lock:
            now = self._clock()
            self._purge(now)
            values = tuple(entry[0] if (entry := self._values.get(k)) else None for k in keys)
        return RevocationState(epoch=self._epoch, revoked_before=values, server_time=now)

    def current_epoch(self) -> Epoch:
        return self._epoch

    def server_time(self) -> float:
        return self._clock()

    def ping(self) -> None:
        return None

    # -- registrations -----------------------------------------------------------------

    def registrations_version(self) -> int:
        with self._lock:
            return self._version

    def load_registrations(self) -> RegistrationState:
        with self._lock:
            return RegistrationState(
                self._version,
                tuple(self._registrations.values()),
                frozenset(self._projects),
                dict(self._pins),
                self._projects_confirmed,
            )

    def add_registration(
        self,
        registration: StoredRegistration,
        now: int,
        audit: Mapping[str, str] | None = None,
        expired: ExpiryRecords | None = None,
    ) -> tuple[str | None, str | None]:
        with self._lock:
            holder = self._unique.get(registration.unique_key)
            if holder == registration.id and holder in self._registrations:
                return None, None  # this very registration, added already
            held = None if holder is None else self._registrations.get(holder)
            if held is not None and not held.expired(now):
                return holder, None
            if registration.pending and registration.project in self._projects:
                return "", None
            if registration.pending and not self._projects_confirmed:
                return UNCONFIRMED, None
            replaced = None
            if holder is not None:
                self._registrations.pop(holder, None)
                self._pins.pop(holder, None)
                if held is not None:  # an expired pending one: deleted, with its record
                    replaced = holder
                    if expired is not None:
                        self._append_audit_locked(expired.of(holder))
            self._registrations[registration.id] = registration
            self._unique[registration.unique_key] = registration.id
            if not registration.pending:
                self._projects.add(registration.project)
            self._version += 1
            if audit is not None:
                self._append_audit_locked(audit)
            return None, replaced

    def remove_registration(
        self,
        registration_id: str,
        audit: Mapping[str, str] | None = None,
        *,
        pending_only: bool = False,
    ) -> StoredRegistration | None:
        with self._lock:
            registration = self._registrations.get(registration_id)
            if registration is None or (pending_only and not registration.pending):
                return None
            del self._registrations[registration_id]
            if self._unique.get(registration.unique_key) == registration_id:
                del self._unique[registration.unique_key]
            self._pins.pop(registration_id, None)
            self._version += 1
            if audit is not None:
                if "pending" in audit:
                    # What was removed, as the store held it (as the Redis script does).
                    audit = {**audit, "pending": "true" if registration.pending else "false"}
                self._append_audit_locked(audit)
            return registration

    def convert_pending(
        self, registration_id: str, project: str, now: int, audit: Mapping[str, str] | None = None
    ) -> str:
        with self._lock:
            registration = self._registrations.get(registration_id)
            if registration is None:
                return "gone"
            if not registration.pending:
                return "normal"
            if registration.expired(now):
                return "expired"
            if project in self._projects:
                return "exists"
            self._registrations[registration_id] = registration.converted()
            self._projects.add(project)
            self._version += 1
            if audit is not None:
                self._append_audit_locked(audit)
            return "converted"

    def declare_projects(
        self, projects: Sequence[str], audit: Mapping[str, str] | None = None
    ) -> Declaration:
        with self._lock:
            new = set(projects) - self._projects
            if not new:
                return Declaration(0, self._epoch)
            self._projects |= new
            self._version += 1
            if audit is not None:
                self._append_audit_locked(audit)
            return Declaration(len(new), self._epoch)

    def confirm_projects(
        self, audit: Mapping[str, str] | None = None, declared_in: Epoch | None = None
    ) -> bool:
        if declared_in is not None and declared_in != self._epoch:
            raise DeclarationsLost()
        with self._lock:
            if self._projects_confirmed:
                return False
            self._projects_confirmed = True
            self._version += 1
            if audit is not None:
                self._append_audit_locked(audit)
            return True

    def projects_status(self) -> tuple[Epoch, bool]:
        with self._lock:
            return self._epoch, self._projects_confirmed

    def purge_expired(self, now: int, expired: ExpiryRecords | None = None) -> tuple[str, ...]:
        with self._lock:
            gone = [r for r in self._registrations.values() if r.expired(now)]
            for registration in gone:
                del self._registrations[registration.id]
                if self._unique.get(registration.unique_key) == registration.id:
                    del self._unique[registration.unique_key]
                self._pins.pop(registration.id, None)
                if expired is not None:
                    self._append_audit_locked(expired.of(registration.id))
            if gone:
                self._version += 1
            return tuple(registration.id for registration in gone)

    def pin_on_first_use(
        self, key: str, values: Mapping[str, str], audit: Mapping[str, str] | None = None
    ) -> tuple[Mapping[str, str], bool]:
        with self._lock:
            pinned = self._pins.get(key)
            if pinned is not None:
                return pinned, False
            self._pins[key] = dict(values)
            self._version += 1
            if audit is not None:
                self._append_audit_locked(audit)
            return self._pins[key], True

    # -- audit trail -------------------------------------------------------------------

    def append_audit(self, fields: Mapping[str, str], *, refusal: bool = False) -> str:
        with self._lock:
            return self._append_audit_locked(fields, self._refusals if refusal else None)

    def read_audit(
        self,
        *,
        since_ms: int | None,
        until_ms: int | None,
        limit: int,
        accept: Callable[[Mapping[str, str]], bool],
        before: str | None = None,
        scan_limit: int | None = None,
        refusals: bool = False,
    ) -> AuditPage:
        with self._lock:
            records = list(self._refusals if refusals else self._audit)
        below = None if before is None else stream_position(before)
        found = []
        scanned = 0
        for record in reversed(records):
            if until_ms is not None and record.at_ms > until_ms:
                continue
            if below is not None and stream_position(record.id) >= below:
                continue
            if since_ms is not None and record.at_ms < since_ms:
                break
            scanned += 1
            if accept(record.fields):
                found.append(record)
                if len(found) >= limit:
                    return AuditPage(found, record.id)
            if scan_limit is not None and scanned >= scan_limit:
                return AuditPage(found, record.id)
        return AuditPage(found, None)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._values)

    def _append_audit_locked(
        self, fields: Mapping[str, str], trail: deque[AuditRecord] | None = None
    ) -> str:
        # With the lock held: a change and its record are seen together or not at all.
        self._audit_sequence += 1
        # Never before the last record, as Redis's stream ids: after the clock steps back,
        # a read `since` would stop at the first older record, and one `before` skip some.
        at_ms = self._audit_last_ms = max(int(self._clock() * 1000), self._audit_last_ms)
        record = AuditRecord(f"{at_ms}-{self._audit_sequence}", at_ms, dict(fields))
        (self._audit if trail is None else trail).append(record)
        return record.id

    def _set(self, key: str, value: int, expires: float) -> None:
        self._values[key] = (value, expires)
        heapq.heappush(self._expiry_heap, (expires, key))

    def _purge(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self._values.get(key)
            if entry is not None and entry[1] == expires:
                del self._values[key]
                self._claimants.pop(key, None)


_STORES: weakref.WeakSet[MemoryStore] = weakref.WeakSet()


def _begin_new_epochs() -> None:
    for store in list(_STORES):
        store._forked()


os.register_at_fork(after_in_child=_begin_new_epochs)
