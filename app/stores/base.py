"""Store Protocols. Implementations raise `StoreUnavailable` when they cannot answer.

The epoch is how data loss is noticed: one value, created once, embedded in every
upload token and returned with every replay claim. If the store loses its data
(flush, restart without persistence, failover to an empty replica) the epoch is gone;
the next operation creates a new one, and every token minted or exchanged before it
is treated as revoked or replayed (see `app.tokens.introspection` and `app.exchange`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


def new_epoch_id() -> str:
    """A new epoch's id: 64 random bits, hex. The Redis store offers one with every
    replay claim (used only if it has none), so it is made on every mint: `os.urandom`,
    what `secrets.token_hex` reads, without its three Python-level calls."""
    return os.urandom(8).hex()


@dataclass(frozen=True)
class Epoch:
    id: str
    # Unix seconds when this epoch began; nothing issued before it can be vouched for.
    created_at: int

    def encode(self) -> str:
        return f"{self.id}:{self.created_at}"

    @classmethod
    def decode(cls, value: str) -> Epoch:
        epoch_id, _, created_at = value.rpartition(":")
        return cls(id=epoch_id, created_at=int(created_at))


@dataclass(frozen=True)
class Declaration:
    """What declaring projects did: how many names were new, and the epoch they were
    written in, which the confirmation that every project is declared must name."""

    created: int
    epoch: Epoch


@dataclass(frozen=True)
class ClaimResult:
    first: bool
    epoch: Epoch


@dataclass(frozen=True)
class RevocationState:
    """The current epoch (None: lost) and, per requested key, the revocation moment."""

    epoch: Epoch | None
    revoked_before: tuple[int | None, ...]
    # The store's clock when it answered, Unix seconds: the caller checks its own.
    server_time: float


class ReplayStore(Protocol):
    def claim_once(
        self,
        key: str,
        claimant: str,
        ttl_seconds: int,
        audit: Mapping[str, str] | None = None,
        epoch_began_before: int | None = None,
        clock: int | None = None,
    ) -> ClaimResult:
        """Atomically record `key` for `claimant` and `ttl_seconds`, in one round trip
        with the epoch; when the claim is the first, append `audit` to the audit log in
        the same trip, unless the epoch began at or after `epoch_began_before` (unix
        seconds): the exchange then refuses the token as predating a data loss, and a
        mint record would name a token never minted.

        `clock`: the caller's clock now, Unix seconds. When it is further from the store's
        than STORE_CLOCK_TOLERANCE_SECONDS, nothing is claimed and ClockOffStore is raised.

        `first` is also true when `claimant` already holds `key` (its audit record is not
        appended again): an exchange whose claim ran but whose reply was lost, and which
        sends it again, finds its own claim instead of a replay. So `claimant` must be new
        for every exchange and known to nobody else before the claim (the upload token's
        random jti): any other value would let a second exchange pass as the first.
        """
        ...


class RevocationStore(Protocol):
    def revoke_before(
        self, key: str, moment: int, ttl_seconds: int, audit: Mapping[str, str] | None = None
    ) -> None:
        """Record that what `key` covers is revoked if issued at or before `moment`, and
        append `audit` in the same atomic step.

        Keeps the latest moment when called again; expires after `ttl_seconds`, when
        every token it covers has expired anyway.
        """
        ...

    def revocation_state(self, keys: Sequence[str]) -> RevocationState:
        """The epoch and the moments recorded for `keys`, in one round trip."""
        ...

    def current_epoch(self) -> Epoch:
        """The epoch, created if missing."""
        ...

    def server_time(self) -> float:
        """The store's clock, Unix seconds."""
        ...


class RateLimiter(Protocol):
    def hit(self, key: str) -> int | None:
        """Count one request for `key`: None if allowed, else seconds until it would be."""
        ...

    def refund(self, key: str) -> None:
        """Give back one request that `hit` allowed for `key`."""
        ...


class HealthCheck(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...


@dataclass(frozen=True)
class StoredRegistration:
    """A publisher registered through the API: its policy entry plus who, when, pending.

    `entry` is exactly a policy file's `[[publisher]]` table (with `projects` = [project]):
    one model, two sources. `unique_key` identifies (publisher identity, project), so the
    store can refuse a duplicate that two processes try to add at once.
    """

    id: str
    project: str
    entry: Mapping[str, Any]
    created_by: str
    created_at: int
    unique_key: str
    # Set for a pending publisher only: unix seconds after which it is ignored and purged.
    expires_at: int | None = None

    @property
    def pending(self) -> bool:
        return self.expires_at is not None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def converted(self) -> StoredRegistration:
        return replace(self, expires_at=None)

    def encode(self) -> str:
        """The immutable part; pending state is kept apart so converting rewrites nothing."""
        return json.dumps(
            {
                "id": self.id,
                "project": self.project,
                "entry": dict(self.entry),
                "created_by": self.created_by,
                "created_at": self.created_at,
                "unique_key": self.unique_key,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str, expires_at: int | None) -> StoredRegistration:
        data = json.loads(value)
        # Typed before use: a field of the wrong type (a hand-written record) must be
        # refused here, as a TypeError the store's loader leaves out, not crash later.
        for name in ("id", "project", "created_by", "unique_key"):
            if not isinstance(data[name], str):
                raise TypeError(f"registration field {name!r} is not a string")
        if not isinstance(data["entry"], dict):
            raise TypeError("registration field 'entry' is not an object")
        return cls(
            id=data["id"],
            project=data["project"],
            entry=data["entry"],
            created_by=data["created_by"],
            created_at=int(data["created_at"]),
            unique_key=data["unique_key"],
            expires_at=expires_at,
        )


@dataclass(frozen=True)
class RegistrationState:
    """Everything registered, read at once: `version` changes with every change."""

    version: int
    registrations: tuple[StoredRegistration, ...]
    # Projects that exist for trustpub: declared by the index, or that had a
    # non-pending publisher registered (sticky: removing publishers frees no name).
    projects: frozenset[str]
    # Claims pinned on first use, by pin key (a registration's id, or a policy-file
    # publisher's key): what the publisher's first token carried.
    pins: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Whether an admin confirmed, since the store's epoch began, that `projects` holds
    # every project of the index: a store that lost its data (or a new one) has not.
    projects_confirmed: bool = False


# What `add_registration` answers for a pending registration while the projects are not
# confirmed complete (no registration id looks like it).
UNCONFIRMED = "-"


@dataclass(frozen=True)
class ExpiryRecords:
    """The audit records of the expired pending registrations a change may delete, each
    stored with its deletion: a registration's own (`by_id`, prepared from what the
    caller read), or for any other (one the caller did not read, or could not: written
    by hand, by a bug) `other`, with its `publisher_id` added by the store."""

    other: Mapping[str, str]
    by_id: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def of(self, registration_id: str) -> dict[str, str]:
        """The record stored with the deletion of `registration_id`, as the store named it."""
        own = self.by_id.get(registration_id)
        if own is not None:
            return dict(own)
        return {**self.other, "publisher_id": registration_id}


class RegistrationStore(Protocol):
    def registrations_version(self) -> int:
        """One cheap read: pollers reload only when it changed."""
        ...

    def load_registrations(self) -> RegistrationState: ...

    # Each change below appends its `audit` record in the same atomic step, and only when
    # it changed something: no change without its record, no record without its change.

    def add_registration(
        self,
        registration: StoredRegistration,
        now: int,
        audit: Mapping[str, str] | None = None,
        expired: ExpiryRecords | None = None,
    ) -> tuple[str | None, str | None]:
        """Add it atomically: (refused, replaced). `refused` is None if added (also when
        this very registration, by its id, was added already: an add sent again after a
        lost reply, its record not appended again), else the id of the registration that
        holds its `unique_key` already, "" when a pending one names an existing project,
        or UNCONFIRMED when a pending one comes before the projects were confirmed in
        this epoch. `replaced` names the expired pending registration that held its
        `unique_key`, which an add deletes in its place, with its record from `expired`
        (see `ExpiryRecords.of`); None if there was none."""
        ...

    def remove_registration(
        self,
        registration_id: str,
        audit: Mapping[str, str] | None = None,
        *,
        pending_only: bool = False,
    ) -> StoredRegistration | None:
        """Remove it; what was removed, or None. A `pending` field of `audit` is set to
        what the store held: the caller's view may predate a conversion. `pending_only`:
        only if it is still pending (None otherwise), for a caller whose right to remove
        it rests on that."""
        ...

    def convert_pending(
        self, registration_id: str, project: str, now: int, audit: Mapping[str, str] | None = None
    ) -> str:
        """Make a pending registration a normal one if it still is pending, has not
        expired and its project still does not exist: "converted", "normal" (it is not
        pending: another exchange converted it first), "exists", "expired" or "gone"."""
        ...

    def declare_projects(
        self, projects: Sequence[str], audit: Mapping[str, str] | None = None
    ) -> Declaration:
        """Record that each of `projects` exists, with `audit` when any did not yet, in
        one write: how many did not, and in which epoch (one begins if none has)."""
        ...

    def purge_expired(self, now: int, expired: ExpiryRecords | None = None) -> tuple[str, ...]:
        """Remove expired pending registrations, each with its record from `expired`;
        their ids, as the records name them (see `ExpiryRecords.of`). Concurrent purges
        remove (and record) each once: the call that removed it answers it."""
        ...

    def pin_on_first_use(
        self, key: str, values: Mapping[str, str], audit: Mapping[str, str] | None = None
    ) -> tuple[Mapping[str, str], bool]:
        """Pin `values` under `key`, with `audit`, unless something is pinned there
        already: what is pinned after the call, and whether this call pinned it. Removing
        a registration removes the pins under its id."""
        ...

    def confirm_projects(
        self, audit: Mapping[str, str] | None = None, declared_in: Epoch | None = None
    ) -> bool:
        """Record that `projects` holds every project of the index, for the current epoch
        (a data loss forgets it with the projects), with `audit`; whether it was not yet.

        `declared_in`: the epoch the declarations began in. Unless it is the current
        one, the store lost its data since, and raises DeclarationsLost: confirming then
        would vouch for a set that lost the names declared before."""
        ...

    def projects_status(self) -> tuple[Epoch, bool]:
        """The current epoch (one begins if none has), and whether `projects` was
        confirmed complete in it."""
        ...


@dataclass(frozen=True)
class AuditRecord:
    id: str
    # Unix milliseconds when it was recorded (the stream id's time).
    at_ms: int
    fields: Mapping[str, str]


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    # Where a further read goes on, passed as its `before`: the id of the last record
    # scanned when the page filled or the scan reached its bound; None when nothing is
    # left in the window.
    next_before: str | None


def stream_position(record_id: str) -> tuple[int, int]:
    """A record id (`MILLISECONDS-SEQUENCE`) as what orders it."""
    milliseconds, _, sequence = record_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class AuditLog(Protocol):
    def append_audit(self, fields: Mapping[str, str], *, refusal: bool = False) -> str:
        """Append a record (only strings, never a token or secret); its id. A `refusal`
        (of a token that verified: anyone can get one for this audience, so as many as
        a caller wants) goes to a trail of its own, with its own bound, so that refusals
        can never trim the changes and mints out of theirs."""
        ...

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
        """The newest `limit` records in [since, until] and older than the record id
        `before` that `accept` keeps, newest first, looking at `scan_limit` records at
        most; and where to go on. Of the refusals' trail when `refusals`."""
        ...
