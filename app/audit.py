"""The audit trail: who did what, when, for every mint, refusal of a verified token,
registration change and revocation.

Each record is a flat map of strings, appended to a bounded store (a Redis stream
trimmed to `audit_max_length`) and written as one structured log line (logger
`app.audit`), so a log pipeline keeps what the stream trims. Records never hold a token
or a secret: callers pass names, identities, jtis and projects only, and `prepare`
accepts only the fields listed in `FIELDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from app.observability import REQUEST_ID, log_fields
from app.stores.base import AuditLog, AuditRecord

log = logging.getLogger("app.audit")

# Every field a record may carry. A closed list, so nothing (a token, a request body)
# can end up in the trail by accident.
FIELDS = frozenset(
    {
        "action",
        "actor",
        "project",
        "projects",
        "publisher_id",
        "publisher_source",
        "pending",
        "provider",
        "issuer",
        "repository",
        "workflow",
        "environment",
        "email",
        "run_id",
        "sha",
        "jti",
        "scope",
        "before",
        # A refused mint: the error's code and description, and the token's `sub`.
        "code",
        "reason",
        "subject",
        # Claims a publisher pinned from its first token: `claim=value,...`.
        "pins",
        # How many projects one declaration named.
        "count",
    }
)

MAX_READ = 1000
# The records one read looks at, at most: a filtered read of a long stream would
# otherwise decode all of it in one request (100,000 records, ~0.5 s of a worker's
# thread). Its answer's `next_before` goes on from where it stopped.
SCAN_LIMIT = 10_000


@dataclass(frozen=True)
class AuditQuery:
    project: str | None = None
    repository: str | None = None
    since: int | None = None  # unix seconds, inclusive
    until: int | None = None  # unix seconds, inclusive
    limit: int = 100
    before: str | None = None  # a record id, exclusive: an earlier answer's `next_before`
    refusals: bool = False  # the refused mints' own trail, rather than the changes'

    def accepts(self, fields: Mapping[str, str]) -> bool:
        if self.project is not None:
            projects = fields.get("projects", fields.get("project", ""))
            if self.project not in projects.split(","):
                return False
        return self.repository is None or (
            fields.get("repository", "").lower() == self.repository.lower()
        )


@dataclass(frozen=True)
class AuditTrail:
    store: AuditLog
    clock: Callable[[], float]

    def append(self, entry: Mapping[str, str]) -> None:
        """Store and log a prepared record that no change's script stored with it."""
        self.store.append_audit(entry)
        self.log(entry)

    def append_refusal(self, entry: Mapping[str, str]) -> None:
        """Store and log the record of a refused mint, in the refusals' own trail: anyone
        can have a token verified (the audience is public) and refused again and again,
        and that must not trim the record of any change or mint away."""
        self.store.append_audit(entry, refusal=True)
        self.log(entry)

    def prepare(self, action: str, actor: str, fields: Mapping[str, str | None]) -> dict[str, str]:
        """The record, not yet stored: for a store that appends it itself, with the
        change it records (the mint's goes into the replay claim, a registration
        change's into the script that makes it). A field whose value is None is left
        out."""
        if not FIELDS.issuperset(fields):
            raise ValueError(f"audit fields {sorted(set(fields) - FIELDS)} are not allowed")
        entry = {"action": action, "actor": actor, "at": str(int(self.clock()))}
        # The request that caused it: joins the record to log lines and to the
        # X-Request-ID the caller (CI job, index, maintainer) saw.
        if (request_id := REQUEST_ID.get()) != "-":
            entry["request_id"] = request_id
        # Checked in C first: the mint's record never holds a None.
        if None in fields.values():
            fields = {key: value for key, value in fields.items() if value is not None}
        present = cast("Mapping[str, str]", fields)
        # Nearly always ASCII: checked in one pass before any value is rewritten.
        if not all(map(str.isascii, present.values())):
            present = {key: _storable(value) for key, value in present.items()}
        entry.update(present)
        return entry

    def log(self, entry: Mapping[str, str]) -> None:
        # One line, the record as a structured field: the log keeps what the stream trims.
        log_fields(log, "audit " + entry["action"], entry)

    def read(self, query: AuditQuery) -> dict[str, Any]:
        """`{"records": [...], "next_before": ...}`: the records, and where a further read
        goes on (None when the window holds no more)."""
        page = self.store.read_audit(
            since_ms=None if query.since is None else query.since * 1000,
            until_ms=None if query.until is None else query.until * 1000 + 999,
            limit=max(1, min(query.limit, MAX_READ)),
            accept=query.accepts,
            before=query.before,
            scan_limit=SCAN_LIMIT,
            refusals=query.refusals,
        )
        return {
            "records": [_as_dict(record) for record in page.records],
            "next_before": page.next_before,
        }


def _storable(value: str) -> str:
    # A claim is JSON from the token and may hold a lone surrogate, which no UTF-8
    # store or log line can carry: recorded as U+FFFD rather than failing the mint.
    if value.isascii():
        return value
    return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)


def _as_dict(record: AuditRecord) -> dict[str, Any]:
    return {"id": record.id, **record.fields}
