"""AuditTrail.prepare: what a record holds, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from app.audit import AuditTrail
from app.observability import REQUEST_ID
from app.stores.memory import MemoryStore

NOW = 1_800_000_000.7


@pytest.fixture
def trail() -> AuditTrail:
    return AuditTrail(MemoryStore(clock=lambda: NOW), lambda: NOW)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {}),
        ({"project": "demo"}, {"project": "demo"}),
        # Absent values are left out; empty strings are values.
        ({"project": "demo", "environment": None}, {"project": "demo"}),
        ({"environment": ""}, {"environment": ""}),
        # Any text a store can hold is kept as it is, order included.
        ({"sha": "abc", "run_id": "ünï-😀-a\x00b"}, {"sha": "abc", "run_id": "ünï-😀-a\x00b"}),
        # A lone surrogate (valid JSON, no valid UTF-8) becomes U+FFFD, the rest intact.
        ({"environment": "\ud800-x", "sha": "é"}, {"environment": "\ufffd-x", "sha": "é"}),
        ({"environment": "a\udfffb\ud800"}, {"environment": "a\ufffdb\ufffd"}),
    ],
)
def test_a_record_holds_its_action_actor_time_and_present_fields(
    trail: AuditTrail, fields: dict[str, Any], expected: dict[str, str]
) -> None:
    entry = trail.prepare("mint", "github", fields)

    assert entry == {"action": "mint", "actor": "github", "at": "1800000000", **expected}
    assert list(entry)[3:] == list(expected)


def test_a_record_names_the_request_that_caused_it(trail: AuditTrail) -> None:
    token = REQUEST_ID.set("req-12345678")
    try:
        entry = trail.prepare("mint", "github", {"project": "demo"})
    finally:
        REQUEST_ID.reset(token)

    assert entry["request_id"] == "req-12345678"


@pytest.mark.parametrize("field", ["token", "password", "body", "Project"])
def test_fields_outside_the_closed_list_are_refused(trail: AuditTrail, field: str) -> None:
    with pytest.raises(ValueError, match=f"audit fields \\['{field}'\\] are not allowed"):
        trail.prepare("mint", "github", {"project": "demo", field: "x"})
