"""The audit trail: a record for every change and every mint, filters, bounded length, and
never a token or a secret."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from support.claims import unverified_claims
from support.oidc_issuer import OIDCIssuer

from app.exchange import EPOCH_MARGIN_SECONDS
from app.observability import FIELDS_KEY, JsonFormatter

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint
from .policies import github_publisher
from .registrations_api import (
    AUDIT_PATH,
    ManagementClients,
    add,
    api_error,
    listed,
    registration,
    remove,
)


@pytest.fixture
def clients(tmp_path: Path) -> ManagementClients:
    return ManagementClients(tmp_path / "clients.toml")


@pytest.fixture
def app(make_app: MakeApp, clients: ManagementClients) -> Flask:
    made: Flask = make_app(clients_file=clients.path, registration_rate_limit="1000/minute")
    return made


class _Lines(logging.Handler):
    """The audit logger's lines, exactly as `trustpub serve` writes them (JSON)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def audit_log_lines() -> Iterator[list[str]]:
    handler = _Lines()
    logger = logging.getLogger("app.audit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    # Left behind, the handler would change how the audit logger writes in later tests.
    logger.removeHandler(handler)
    logger.setLevel(level)


def audit(client: Any, headers: dict[str, str], query: str = "") -> list[dict[str, str]]:
    response = client.get(AUDIT_PATH + query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    records: list[dict[str, str]] = response.get_json()["records"]
    return records


def test_every_action_is_recorded_newest_first_without_tokens_or_secrets(
    app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    store: redis.Redis,
    audit_log_lines: list[str],
) -> None:
    client = app.test_client()
    admin = clients.bearer("admin")
    lines = audit_log_lines
    oidc_token = make_token()
    minted = assert_minted(mint(client, oidc_token))  # the default file publisher
    pending = registration(oidc_issuer.url, repository="octo-org/new", pending=True)
    added = add(client, "new-pkg", pending, clients.bearer("index")).get_json()
    remove(client, "new-pkg", added["id"], clients.bearer("index"))
    client.put("/api/v1/projects/declared-pkg", headers=admin)

    records = audit(client, admin)

    assert [r["action"] for r in records] == [
        "project-declare",
        "publisher-remove",
        "publisher-add",
        "mint",
    ]
    mint_record = records[-1]
    assert mint_record["actor"] == "github"
    assert mint_record["projects"] == "demo-pkg"
    assert mint_record["repository"] == "octo-org/demo"
    assert mint_record["workflow"] == "release.yml"
    assert mint_record["environment"] == "pypi"
    assert mint_record["run_id"] == "8105469023"
    assert mint_record["publisher_source"] == "publishers.toml: publisher[0]"
    assert len(mint_record["jti"]) > 10
    assert records[2]["actor"] == "index"
    assert records[2]["publisher_id"] == added["id"]
    assert records[2]["pending"] == "true"
    assert all(int(r["at"]) <= time.time() for r in records)
    # Never a token or a secret, in the stream or in the log lines.
    stream = repr(store.xrange("trustpub:audit"))
    logged = "\n".join(lines)
    assert len(lines) == 4
    logged_records = [json.loads(line) for line in lines]
    # Each line carries its record as one object, the same record the stream holds.
    assert [entry["message"] for entry in logged_records] == [
        "audit mint",
        "audit publisher-add",
        "audit publisher-remove",
        "audit project-declare",
    ]
    assert [entry["fields"] for entry in logged_records] == [
        {key: value for key, value in record.items() if key != "id"} for record in reversed(records)
    ]
    for secret in [oidc_token, minted["token"], *clients.secrets.values()]:
        assert secret not in stream
        assert secret not in logged
        assert secret not in json.dumps(records)


def test_a_conversion_is_recorded(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = app.test_client()
    token = make_token(
        repository="octo-org/new",
        workflow_ref="octo-org/new/.github/workflows/release.yml@refs/tags/v1.0.0",
        job_workflow_ref="octo-org/new/.github/workflows/release.yml@refs/tags/v1.0.0",
    )
    pending = registration(oidc_issuer.url, repository="octo-org/new", pending=True)
    added = add(client, "new-pkg", pending, clients.bearer("index")).get_json()

    assert_minted(mint(client, token))

    records = audit(client, clients.bearer("admin"), "?project=new-pkg")
    assert [r["action"] for r in records] == ["mint", "publisher-convert", "publisher-add"]
    assert records[1]["publisher_id"] == added["id"]
    assert records[0]["publisher_source"] == f"registered: {added['id']}"


class _Threads(logging.Handler):
    """The audit logger's records, with the thread that logged each."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, dict[str, str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.threadName, dict(getattr(record, FIELDS_KEY))))


def _expire(store: redis.Redis, registration_id: str) -> None:
    """As `pending_publisher_days` would: its expiry passed (every process reloads it)."""
    store.hset("trustpub:registrations:pending", registration_id, "1")
    store.incr("trustpub:registrations:version")


def _expiry_record(oidc_issuer: OIDCIssuer, project: str, registration_id: str) -> dict[str, str]:
    """A `publisher-expire` record but for its `id`, `at` and `request_id`: as the removal's."""
    return {
        "action": "publisher-expire",
        "actor": "trustpub",
        "project": project,
        "publisher_id": registration_id,
        "pending": "true",
        "provider": "github",
        "issuer": oidc_issuer.url,
        "repository": "octo-org/new",
        "workflow": "release.yml",
        "environment": "pypi",
    }


def _without(record: dict[str, str], *fields: str) -> dict[str, str]:
    return {key: value for key, value in record.items() if key not in fields}


def test_an_expired_pending_publisher_is_recorded_once_by_the_process_that_purged_it(
    make_app: MakeApp,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    store: redis.Redis,
    audit_log_lines: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    still = {"registrations_poll_ms": 60_000}  # no poll between the steps
    processes = [make_app(clients_file=clients.path, **still) for _ in range(2)]
    body = registration(oidc_issuer.url, repository="octo-org/new", pending=True)
    added = add(processes[0].test_client(), "new-pkg", body, clients.bearer("index")).get_json()
    _expire(store, added["id"])
    publishers = [p.extensions["trustpub"].registrations.publishers for p in processes]
    for each in publishers:
        each.refresh()  # each reads it expired: its next refresh purges
    answered: dict[str, tuple[str, ...]] = {}
    for process in processes:
        process_store = process.extensions["trustpub"].registrations.store
        purge = process_store.purge_expired

        def spy(*args: Any, purge: Any = purge) -> tuple[str, ...]:
            answer: tuple[str, ...] = purge(*args)
            answered[threading.current_thread().name] = answer
            return answer

        monkeypatch.setattr(process_store, "purge_expired", spy)
    logged = _Threads()
    logging.getLogger("app.audit").addHandler(logged)
    both = threading.Barrier(2)

    def refresh(each: Any) -> None:
        both.wait()  # both purge at the same moment
        each.refresh()

    try:
        threads = [
            threading.Thread(target=refresh, args=(each,), name=f"process-{number}")
            for number, each in enumerate(publishers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        logging.getLogger("app.audit").removeHandler(logged)

    records = audit(processes[1].test_client(), clients.bearer("admin"), "?project=new-pkg")
    assert [r["action"] for r in records] == ["publisher-expire", "publisher-add"]
    assert _without(records[0], "id", "at") == _expiry_record(oidc_issuer, "new-pkg", added["id"])
    # Both purged; the one whose call deleted it logged it, the same record.
    assert sorted(answered.values()) == [(), (added["id"],)]
    (deleter,) = [thread for thread, answer in answered.items() if answer]
    assert [(t, f) for t, f in logged.seen if f["action"] == "publisher-expire"] == [
        (deleter, _without(records[0], "id"))
    ]
    assert not store.hexists("trustpub:registrations", added["id"])


def test_a_policy_files_new_projects_are_recorded_once_by_trustpub(
    make_app: MakeApp,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    audit_log_lines: list[str],
) -> None:
    filed = github_publisher(oidc_issuer.url, projects=["Demo_Pkg", "filed-pkg", "other-pkg"])
    settings = {"clients_file": clients.path}
    first = make_app([filed], **settings)  # demo-pkg is known already (tests/conftest.py)
    make_app([filed], **settings)  # a second process loads the same file
    # A later deployment whose file adds one project.
    added = github_publisher(oidc_issuer.url, repository="octo-org/new", projects=["new-pkg"])
    make_app([filed, added], **settings)

    records = audit(first.test_client(), clients.bearer("admin"))

    assert [_without(r, "id", "at") for r in records] == [
        {"action": "projects-declare", "actor": "trustpub", "count": "1"},
        {"action": "projects-declare", "actor": "trustpub", "count": "2"},
    ]
    # Logged by the process that wrote it, as no request's doing.
    logged = [json.loads(line) for line in audit_log_lines]
    assert [(line["fields"]["count"], line["request_id"]) for line in logged] == [
        ("2", "-"),
        ("1", "-"),
    ]


def test_a_purge_a_request_set_off_carries_no_request_id(
    make_app: MakeApp,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    store: redis.Redis,
    audit_log_lines: list[str],
) -> None:
    # The listing's refresh purges it, but the expiry is not the listing's doing: a record
    # naming its request would send whoever follows the id to the wrong caller.
    app = make_app(clients_file=clients.path, registrations_poll_ms=60_000)
    client = app.test_client()
    body = registration(oidc_issuer.url, repository="octo-org/new", pending=True)
    added = add(client, "new-pkg", body, clients.bearer("index")).get_json()
    _expire(store, added["id"])
    app.extensions["trustpub"].registrations.publishers.refresh()  # reads it expired
    headers = {**clients.bearer("admin"), "X-Request-ID": "listing-request-0001"}

    assert listed(client, "new-pkg", headers) == []

    (expired, _) = audit(client, clients.bearer("admin"), "?project=new-pkg")
    assert (expired["action"], expired["publisher_id"]) == ("publisher-expire", added["id"])
    assert "request_id" not in expired
    (line,) = [json.loads(line) for line in audit_log_lines if "publisher-expire" in line]
    assert line["request_id"] == "-"


def test_an_add_in_place_of_an_expired_pending_publisher_records_its_expiry(
    make_app: MakeApp,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    store: redis.Redis,
    audit_log_lines: list[str],
) -> None:
    # A process whose snapshot never held the first one unexpired: its add finds it in the
    # store, expired, not purged yet, and deletes it in its place.
    still = {"registrations_poll_ms": 60_000}  # no poll between the steps
    later = make_app(clients_file=clients.path, **still)
    earlier = make_app(clients_file=clients.path, **still)
    body = registration(oidc_issuer.url, repository="octo-org/new", pending=True)
    first = add(earlier.test_client(), "new-pkg", body, clients.bearer("index")).get_json()
    _expire(store, first["id"])

    second = add(later.test_client(), "new-pkg", body, clients.bearer("index"))

    assert second.status_code == 201, second.get_data(as_text=True)
    records = audit(later.test_client(), clients.bearer("admin"), "?project=new-pkg")
    assert [(r["action"], r["publisher_id"]) for r in records] == [
        ("publisher-add", second.get_json()["id"]),
        ("publisher-expire", first["id"]),
        ("publisher-add", first["id"]),
    ]
    expired = records[1]
    assert _without(expired, "id", "at", "request_id") == _expiry_record(
        oidc_issuer, "new-pkg", first["id"]
    )
    assert expired["request_id"] == records[0]["request_id"]  # the add that deleted it
    logged = [json.loads(line)["fields"] for line in audit_log_lines]
    assert logged[-2:] == [_without(expired, "id"), _without(records[0], "id")]


def test_filters_by_project_repository_and_time(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = app.test_client()
    admin = clients.bearer("admin")
    assert_minted(mint(client, make_token()))
    add(client, "other-pkg", registration(oidc_issuer.url, repository="octo-org/x"), admin)

    assert [r["action"] for r in audit(client, admin, "?project=Demo_Pkg")] == ["mint"]
    assert [r["action"] for r in audit(client, admin, "?project=other-pkg")] == ["publisher-add"]
    assert [r["action"] for r in audit(client, admin, "?repository=Octo-Org/X")] == [
        "publisher-add"
    ]
    assert len(audit(client, admin, "?limit=1")) == 1
    assert audit(client, admin, f"?since={int(time.time()) + 5}") == []
    assert audit(client, admin, "?until=1") == []
    assert len(audit(client, admin, f"?since={int(time.time()) - 60}")) == 2


def test_a_maintainer_reads_only_its_projects(app: Flask, clients: ManagementClients) -> None:
    client = app.test_client()
    demo = clients.bearer("demo-maintainer")

    assert audit(client, demo, "?project=demo-pkg") == []
    api_error(client.get(AUDIT_PATH, headers=demo), 403, "project-forbidden")
    api_error(client.get(AUDIT_PATH, headers=clients.bearer("index")), 403, "insufficient-scope")
    api_error(client.get(AUDIT_PATH + "?limit=0", headers=demo), 400, "invalid-request")


def test_a_read_looks_at_a_bounded_part_of_the_trail_and_says_where_to_go_on(
    app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.audit.SCAN_LIMIT", 3)
    client = app.test_client()
    assert_minted(mint(client, make_token()))  # demo-pkg's one record, the oldest
    for number in range(7):
        body = registration(oidc_issuer.url, repository="octo-org/x", workflow=f"r{number}.yml")
        add(client, "other-pkg", body, clients.bearer("admin"))
    demo = clients.bearer("demo-maintainer")

    actions: list[str] = []
    query = "?project=demo-pkg"
    answers = 0
    while True:
        response = client.get(AUDIT_PATH + query, headers=demo)
        assert response.status_code == 200
        answers += 1
        actions += [record["action"] for record in response.get_json()["records"]]
        next_before = response.get_json()["next_before"]
        if next_before is None:
            break
        query = f"?project=demo-pkg&before={next_before}"

    assert actions == ["mint"]
    assert answers == 3  # 8 records, 3 looked at per answer


@pytest.mark.parametrize("before", ["x", "1", "1-", "-1", "1-2-3", f"{2**64}-0", f"0-{2**64}"])
def test_a_malformed_record_id_is_refused(
    app: Flask, clients: ManagementClients, before: str
) -> None:
    response = app.test_client().get(
        f"{AUDIT_PATH}?before={before}", headers=clients.bearer("admin")
    )

    api_error(response, 400, "invalid-request")


def test_refusals_of_verified_tokens_are_recorded_and_others_are_not(
    app: Flask, clients: ManagementClients, make_token: MakeToken, oidc_issuer: OIDCIssuer
) -> None:
    client = app.test_client()
    used = make_token()
    assert_minted(mint(client, used))

    mint(client, used)  # a replay
    ref = "octo-org/other/.github/workflows/release.yml@refs/tags/v1.0.0"
    no_publisher = make_token(repository="octo-org/other", workflow_ref=ref, job_workflow_ref=ref)
    mint(client, no_publisher)
    mint(client, used[:-8] + "AAAAAAAA")  # a signature that does not verify: no record

    (minted,) = audit(client, clients.bearer("admin"))
    other, replay = audit(client, clients.bearer("admin"), "?refusals=true")
    assert minted["action"] == "mint"
    assert (replay["action"], replay["code"], replay["actor"]) == (
        "mint-refused",
        "invalid-reuse-token",
        "github",
    )
    assert (replay["issuer"], replay["subject"]) == (
        oidc_issuer.url,
        unverified_claims(used)["sub"],
    )
    assert (other["code"], other["reason"]) == (
        "invalid-publisher",
        "no trusted publisher is registered for 'octo-org/other' with this token's issuer",
    )
    assert used not in json.dumps([replay, other])


def test_refusals_anyone_can_cause_cannot_trim_the_mints_out_of_the_trail(
    make_app: MakeApp, clients: ManagementClients, make_token: MakeToken
) -> None:
    # Anyone's CI signs a token for this (public) audience on request; one that matches
    # no publisher is refused and not burned. Until the twenty-eighth session every
    # refusal went into the one bounded stream: replayed from many addresses (60 a
    # minute each), one token trimmed every mint and change out of it.
    bound = 1000  # the least audit_max_length allows
    client = make_app(clients_file=clients.path, audit_max_length=bound).test_client()
    assert_minted(mint(client, make_token()))  # demo-pkg's release
    ref = "mallory/noise/.github/workflows/x.yml@refs/heads/main"
    stranger = make_token(
        repository="mallory/noise", repository_id="999", workflow_ref=ref, job_workflow_ref=ref
    )
    for number in range(2 * bound):
        answer = client.post(
            "/_/oidc/mint-token",
            json={"token": stranger},
            environ_base={"REMOTE_ADDR": f"198.51.{number // 50}.{number % 50}"},
        )
        if number == 0:
            assert_failure(answer, 422, "invalid-publisher")

    maintainer = clients.bearer("demo-maintainer")
    assert [r["action"] for r in audit(client, maintainer, "?project=demo-pkg")] == ["mint"]
    # The refusals are recorded in a trail of their own, which only an admin reads.
    admin = clients.bearer("admin")
    (refused,) = audit(client, admin, "?refusals=true&limit=1")
    assert (refused["action"], refused["code"]) == ("mint-refused", "invalid-publisher")
    refusals_of_a_project = AUDIT_PATH + "?refusals=true&project=demo-pkg"
    api_error(client.get(refusals_of_a_project, headers=maintainer), 403, "insufficient-scope")
    api_error(client.get(AUDIT_PATH + "?refusals=yes", headers=admin), 400, "invalid-request")


@pytest.mark.parametrize(
    "epoch_age",
    [0, 5, EPOCH_MARGIN_SECONDS],
    ids=["same-second", "within-the-margin", "margin-ends-at-iat"],
)
def test_a_mint_refused_as_predating_the_stores_epoch_leaves_no_mint_record(
    app: Flask,
    clients: ManagementClients,
    make_token: MakeToken,
    store: redis.Redis,
    epoch_age: int,
) -> None:
    # The claim script stored the mint's record with the claim, before the exchange
    # found the token older than the epoch (a data loss just now) and refused it: the
    # trail said a token was minted that never was. The epoch began `epoch_age` seconds
    # before the token was issued: still within the margin the exchange refuses.
    client = app.test_client()
    issued_at = int(time.time())
    store.set("trustpub:epoch", f"after-a-loss:{issued_at - epoch_age}")

    assert_failure(mint(client, make_token(now=issued_at)), 422, "invalid-reuse-token")

    admin = clients.bearer("admin")
    assert [r["action"] for r in audit(client, admin)] == []
    (refused,) = audit(client, admin, "?refusals=true")
    assert refused["code"] == "invalid-reuse-token"
    assert store.xlen("trustpub:audit") == 0


def test_revocations_are_recorded_without_the_token(
    app: Flask, clients: ManagementClients, make_token: MakeToken
) -> None:
    client = app.test_client()
    admin = clients.bearer("admin")
    upload_token = assert_minted(mint(client, make_token()))["token"]

    client.post("/api/v1/revocations", json={"token": upload_token}, headers=admin)
    client.post("/api/v1/revocations", json={"project": "demo-pkg"}, headers=admin)
    # The holder burning its own token (RFC 7009) is a revocation too.
    burned = assert_minted(mint(client, make_token()))["token"]
    assert client.post("/oauth/revoke", data={"token": burned}).status_code == 200

    holder, _, project, token, _ = audit(client, admin)
    assert (project["action"], project["scope"], project["project"]) == (
        "revoke",
        "project",
        "demo-pkg",
    )
    assert (token["action"], token["scope"], token["actor"]) == ("revoke", "token", "admin")
    assert token["jti"] == unverified_claims(upload_token)["jti"]
    assert (holder["action"], holder["scope"], holder["actor"]) == (
        "revoke",
        "token",
        "token-holder",
    )
    assert holder["jti"] == unverified_claims(burned)["jti"]
    assert upload_token not in json.dumps([project, token])
    assert burned not in json.dumps(holder)


def test_a_mint_record_carries_the_request_id_the_caller_saw(
    app: Flask, clients: ManagementClients, make_token: MakeToken
) -> None:
    client = app.test_client()
    response = client.post(
        "/_/oidc/mint-token",
        json={"token": make_token()},
        headers={"X-Request-ID": "ci-run-4242-step-7"},
    )
    assert_minted(response)

    (record,) = [r for r in audit(client, clients.bearer("admin")) if r["action"] == "mint"]

    assert record["request_id"] == response.headers["X-Request-ID"] == "ci-run-4242-step-7"


def test_a_mint_record_keeps_any_claim_text(
    app: Flask, clients: ManagementClients, make_token: MakeToken
) -> None:
    client = app.test_client()
    run_id = "ünï-😀-a\x00b"
    assert_minted(client.post("/_/oidc/mint-token", json={"token": make_token(run_id=run_id)}))

    (record,) = [r for r in audit(client, clients.bearer("admin")) if r["action"] == "mint"]

    assert record["run_id"] == run_id


def test_text_no_store_can_hold_is_recorded_as_a_replacement_character(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    # JSON allows a lone surrogate ("\ud800"); UTF-8, Redis and log lines do not.
    client = app.test_client()
    body = registration(oidc_issuer.url, repository="octo-org/new", environment="\ud800-x")
    response = add(client, "new-pkg", body, clients.bearer("admin"))

    assert response.status_code == 201, response.get_data(as_text=True)
    (record,) = audit(client, clients.bearer("admin"))
    assert record["environment"] == "\ufffd-x"
