"""Maintainers register trusted publishers through the API: CRUD, validation, authorization,
duplicates, and the union with policy files, against a real Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from support.oidc_issuer import OIDCIssuer

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint, upload_token_projects
from .policies import github_publisher
from .registrations_api import (
    ManagementClients,
    add,
    api_error,
    listed,
    registration,
    remove,
)

FILED = {"repository": "octo-org/filed", "projects": ["filed-pkg"]}


@pytest.fixture
def clients(tmp_path: Path) -> ManagementClients:
    return ManagementClients(tmp_path / "clients.toml")


@pytest.fixture
def make_managed_app(make_app: MakeApp, clients: ManagementClients, oidc_issuer: OIDCIssuer) -> Any:
    """An app whose policy file registers octo-org/filed for filed-pkg only."""

    def make(**overrides: Any) -> Flask:
        settings = {"registration_rate_limit": "1000/minute", **overrides}
        return make_app(
            [github_publisher(oidc_issuer.url, **FILED)], clients_file=clients.path, **settings
        )

    return make


@pytest.fixture
def managed_app(make_managed_app: Any) -> Flask:
    app: Flask = make_managed_app()
    return app


def test_a_registered_publisher_mints_and_is_listed(
    managed_app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = managed_app.test_client()
    assert_failure(mint(client, make_token()), 422, "invalid-publisher")

    response = add(
        client, "Demo_Pkg", registration(oidc_issuer.url), clients.bearer("demo-maintainer")
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    added = response.get_json()
    assert added["id"].startswith("rp_")
    assert added["project"] == "demo-pkg"
    assert added["source"] == "registered"
    assert added["pending"] is False
    assert added["created_by"] == "demo-maintainer"
    assert added["publisher"]["repository"] == "octo-org/demo"
    assert "projects" not in added["publisher"]
    # Effective at once in the process that answered.
    assert upload_token_projects(assert_minted(mint(client, make_token()))) == ["demo-pkg"]
    assert [p["id"] for p in listed(client, "demo-pkg", clients.bearer("demo-maintainer"))] == [
        added["id"]
    ]


def test_removed_publisher_stops_minting(
    managed_app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = managed_app.test_client()
    headers = clients.bearer("demo-maintainer")
    added = add(client, "demo-pkg", registration(oidc_issuer.url), headers).get_json()

    response = remove(client, "demo-pkg", added["id"], headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"removed": added["id"], "project": "demo-pkg"}
    assert listed(client, "demo-pkg", headers) == []
    assert_failure(mint(client, make_token()), 422, "invalid-publisher")
    api_error(remove(client, "demo-pkg", added["id"], headers), 404, "not-found")


@pytest.mark.parametrize(
    ("publisher_id", "said"),
    [
        ("rp_0123456789abcdef", "no registered publisher 'rp_0123456789abcdef' for 'demo-pkg'"),
        ("rp_" + "x" * 3000, "no registered publisher with that id (3003 characters) for"),
    ],
    ids=["id-sized", "long"],
)
def test_an_unknown_publisher_id_is_quoted_back_only_when_id_sized(
    managed_app: Flask, clients: ManagementClients, publisher_id: str, said: str
) -> None:
    client = managed_app.test_client()

    description = api_error(
        remove(client, "demo-pkg", publisher_id, clients.bearer("demo-maintainer")),
        404,
        "not-found",
    )

    assert said in description
    assert "x" * 300 not in description


def test_changes_reach_other_processes_within_the_poll_interval(
    make_managed_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
) -> None:
    api = make_managed_app(registrations_poll_ms=100).test_client()
    exchanger = make_managed_app(registrations_poll_ms=100).test_client()
    assert_failure(mint(exchanger, make_token()), 422, "invalid-publisher")  # starts its poller

    added = add(api, "demo-pkg", registration(oidc_issuer.url), clients.bearer("admin"))
    assert added.status_code == 201
    _eventually(lambda: mint(exchanger, make_token()).status_code == 200)

    remove(api, "demo-pkg", added.get_json()["id"], clients.bearer("admin"))
    _eventually(lambda: mint(exchanger, make_token()).status_code == 422)


def _eventually(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the change did not propagate"
        time.sleep(0.05)


def test_file_publishers_are_listed_read_only(
    managed_app: Flask, clients: ManagementClients
) -> None:
    client = managed_app.test_client()
    headers = clients.bearer("admin")

    (filed,) = listed(client, "Filed.Pkg", headers)

    assert filed["source"] == "file"
    assert filed["id"] == "publishers.toml: publisher[0]"
    assert filed["publisher"]["identity"] == "octo-org/filed"
    description = api_error(
        remove(client, "filed-pkg", filed["id"], headers), 409, "read-only-publisher"
    )
    assert "policy file" in description


def test_union_with_files_a_duplicate_of_a_file_publisher_is_refused(
    managed_app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    client = managed_app.test_client()
    same_as_file = registration(oidc_issuer.url, repository="octo-org/filed", repository_id="74")

    description = api_error(
        add(client, "filed-pkg", same_as_file, clients.bearer("admin")), 409, "duplicate-publisher"
    )

    assert "publishers.toml: publisher[0]" in description
    assert "read-only" in description
    # The same publisher for another project is no duplicate: the token then covers both.
    assert add(client, "demo-pkg", same_as_file, clients.bearer("admin")).status_code == 201
    token = make_token(
        repository="octo-org/filed",
        workflow_ref="octo-org/filed/.github/workflows/release.yml@refs/tags/v1.0.0",
        job_workflow_ref="octo-org/filed/.github/workflows/release.yml@refs/tags/v1.0.0",
    )
    assert upload_token_projects(assert_minted(mint(client, token))) == ["demo-pkg", "filed-pkg"]


@pytest.mark.parametrize(
    ("repository", "project", "owner", "granted"),
    [
        # demo-pkg's own publisher, and a more specific one of other-pkg's maintainer.
        ("octo-org/demo", "other-pkg", "other-maintainer", ["demo-pkg", "other-pkg"]),
        # The policy file's publisher of octo-org/filed, and a more specific pending one.
        ("octo-org/filed", "new-pkg", "index", ["filed-pkg", "new-pkg"]),
    ],
    ids=["another-project", "a-pending-one-over-a-file"],
)
def test_a_more_specific_publisher_of_another_project_takes_nothing_away(
    managed_app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    repository: str,
    project: str,
    owner: str,
    granted: list[str],
) -> None:
    # Anyone may trust any repository for their own project; before, the more specific
    # publisher won across projects, so a stranger's registration took a repository's
    # releases away from its own project.
    client = managed_app.test_client()
    workflow_ref = f"{repository}/.github/workflows/release.yml@refs/tags/v1.0.0"
    token = {"repository": repository, "workflow_ref": workflow_ref}
    token["job_workflow_ref"] = workflow_ref
    if repository == "octo-org/demo":
        own = registration(oidc_issuer.url, environment=None)
        assert add(client, "demo-pkg", own, clients.bearer("demo-maintainer")).status_code == 201
    stricter = registration(
        oidc_issuer.url,
        repository=repository,
        refs=["refs/tags/*"],
        pending=owner == "index" or None,
    )

    assert add(client, project, stricter, clients.bearer(owner)).status_code == 201
    assert upload_token_projects(assert_minted(mint(client, make_token(**token)))) == granted


def test_a_duplicate_registration_is_refused(
    managed_app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    client = managed_app.test_client()
    headers = clients.bearer("demo-maintainer")
    first = add(client, "demo-pkg", registration(oidc_issuer.url), headers).get_json()

    # Same identity (repository compared ignoring case), same project after PEP 503.
    again = registration(oidc_issuer.url, repository="Octo-Org/Demo")
    description = api_error(add(client, "DEMO.pkg", again, headers), 409, "duplicate-publisher")

    assert first["id"] in description


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"repository": "no-slash"}, "repository"),
        ({"workflow": ".github/workflows/release.yml"}, "workflow"),
        ({"workflow": "release.txt"}, "workflow"),
        ({"repository_owner_id": None}, "repository_owner_id"),
        ({"repository_owner_id": "octo"}, "repository_owner_id"),
        ({"environment": "x" * 256}, "environment"),
        ({"unknown": "field"}, "unknown"),
        ({"projects": ["demo-pkg"]}, "projects"),
        ({"issuer": "https://token.actions.example.com"}, "issuer"),
        ({"pending": "yes"}, "pending"),
    ],
    ids=[
        "repository-not-owner-name",
        "workflow-with-directory",
        "workflow-not-yaml",
        "owner-id-missing",
        "owner-id-not-numeric",
        "environment-too-long",
        "unknown-field",
        "projects-in-body",
        "issuer-not-configured",
        "pending-not-boolean",
    ],
)
def test_invalid_registrations_are_refused_with_the_field(
    managed_app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    overrides: dict[str, Any],
    field: str,
) -> None:
    body = registration(oidc_issuer.url, **overrides)

    response = add(managed_app.test_client(), "demo-pkg", body, clients.bearer("admin"))

    assert field in api_error(response, 422, "invalid-registration")


@pytest.mark.parametrize(
    ("project", "body", "status", "code"),
    [
        ("-bad-", {"provider": "github"}, 400, "invalid-request"),
        ("demo-pkg", ["not", "an", "object"], 400, "invalid-request"),
        # `$` alone accepted it: a pending publisher for "demo-pkg\n" passed the check
        # that its project does not exist, and the first mint created that project.
        ("demo-pkg%0A", {"provider": "github", "pending": True}, 400, "invalid-request"),
        ("demo-pkg", b"[" * 5000 + b"]" * 5000, 400, "invalid-request"),
    ],
    ids=["bad-project-name", "body-not-object", "trailing-newline", "deeply-nested"],
)
def test_malformed_requests(
    managed_app: Flask,
    clients: ManagementClients,
    project: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    client, headers = managed_app.test_client(), clients.bearer("admin")
    if isinstance(body, bytes):  # was a RecursionError: 500
        path = f"/api/v1/projects/{project}/publishers"
        response = client.post(path, data=body, content_type="application/json", headers=headers)
    else:
        response = add(client, project, body, headers)
    api_error(response, status, code)


def test_a_project_key_cannot_touch_another_project(
    managed_app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    client = managed_app.test_client()
    other = add(
        client, "other-pkg", registration(oidc_issuer.url), clients.bearer("other-maintainer")
    ).get_json()
    demo = clients.bearer("demo-maintainer")

    api_error(
        add(client, "other-pkg", registration(oidc_issuer.url), demo), 403, "project-forbidden"
    )
    api_error(
        client.get("/api/v1/projects/other-pkg/publishers", headers=demo), 403, "project-forbidden"
    )
    pending = registration(oidc_issuer.url, pending=True)
    api_error(add(client, "unborn-pkg", pending, demo), 403, "project-forbidden")
    api_error(remove(client, "other-pkg", other["id"], demo), 403, "project-forbidden")
    # Nor is it told which ids exist there.
    api_error(remove(client, "other-pkg", "rp_0123456789abcdef", demo), 403, "project-forbidden")
    # Its id under its own project is not found there: ids do not cross projects.
    api_error(remove(client, "demo-pkg", other["id"], demo), 404, "not-found")
    api_error(client.get("/api/v1/audit?project=other-pkg", headers=demo), 403, "project-forbidden")
    assert [p["id"] for p in listed(client, "other-pkg", clients.bearer("admin"))] == [other["id"]]


@pytest.mark.parametrize(
    ("client_name", "status", "code"),
    [
        ("introspector", 403, "insufficient-scope"),
        ("index", 403, "insufficient-scope"),
        (None, 401, "unauthenticated"),
    ],
    ids=["introspect-scope", "pending-scope-cannot-add-normal", "anonymous"],
)
def test_clients_without_management_rights_are_refused(
    managed_app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    client_name: str | None,
    status: int,
    code: str,
) -> None:
    headers = clients.bearer(client_name) if client_name else {}
    response = add(managed_app.test_client(), "demo-pkg", registration(oidc_issuer.url), headers)
    api_error(response, status, code)


def test_declaring_a_project_needs_admin(managed_app: Flask, clients: ManagementClients) -> None:
    client = managed_app.test_client()

    api_error(
        client.put("/api/v1/projects/new-pkg", headers=clients.bearer("demo-maintainer")),
        403,
        "insufficient-scope",
    )
    first = client.put("/api/v1/projects/New_Pkg", headers=clients.basic("admin"))
    again = client.put("/api/v1/projects/new-pkg", headers=clients.basic("admin"))

    epoch = first.get_json()["epoch"]
    assert first.get_json() == {"project": "new-pkg", "created": True, "epoch": epoch}
    assert again.get_json() == {"project": "new-pkg", "created": False, "epoch": epoch}
    assert epoch == managed_app.extensions["trustpub"].registrations.store.current_epoch().encode()


def test_registrations_are_rate_limited_per_key(
    make_managed_app: Any, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    app = make_managed_app(registration_rate_limit="2/minute")
    client = app.test_client()
    headers = clients.bearer("admin")
    bodies = [registration(oidc_issuer.url, workflow=f"r{i}.yml") for i in range(3)]

    statuses = [add(client, "demo-pkg", body, headers).status_code for body in bodies]

    assert statuses == [201, 201, 429]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/projects/demo-pkg/publishers"),
        ("DELETE", "/api/v1/projects/demo-pkg/publishers/rp_0123456789abcdef"),
        ("PUT", "/api/v1/projects/new-pkg"),
        ("POST", "/api/v1/projects"),
        ("PUT", "/api/v1/projects"),
    ],
    ids=["add-publisher", "remove-publisher", "declare-project", "declare-projects", "confirm"],
)
def test_every_registration_change_spends_the_one_budget(
    make_managed_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    method: str,
    path: str,
) -> None:
    client = make_managed_app(registration_rate_limit="1/minute").test_client()
    headers = clients.bearer("admin")
    assert add(client, "demo-pkg", registration(oidc_issuer.url), headers).status_code == 201

    limited = client.open(path, method=method, json={"projects": ["new-pkg"]}, headers=headers)

    api_error(limited, 429, "rate-limited")


@pytest.mark.parametrize(
    ("keys", "addresses"),
    [
        (["admin", "admin", "admin"], ["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
        (["admin", "demo-maintainer", "other-maintainer"], ["192.0.2.1"] * 3),
    ],
    ids=["one-key-from-many-addresses", "many-keys-from-one-address"],
)
def test_registration_changes_are_limited_per_key_and_per_address(
    make_managed_app: Any, clients: ManagementClients, keys: list[str], addresses: list[str]
) -> None:
    client = make_managed_app(registration_rate_limit="2/minute").test_client()

    statuses = [
        client.put(
            "/api/v1/projects/new-pkg",
            headers=clients.bearer(key),
            environ_base={"REMOTE_ADDR": address},
        ).status_code
        for key, address in zip(keys, addresses, strict=True)
    ]

    assert 429 not in statuses[:2]
    assert statuses[2] == 429


def test_listings_and_audit_reads_share_a_budget_apart_from_changes(
    make_managed_app: Any, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    app = make_managed_app(read_rate_limit="2/minute", registration_rate_limit="1/minute")
    client = app.test_client()
    headers = clients.bearer("admin")

    reads = [
        client.get("/api/v1/projects/demo-pkg/publishers", headers=headers),
        client.get("/api/v1/audit", headers=headers),
        client.get("/api/v1/audit", headers=headers),
    ]
    change = add(client, "demo-pkg", registration(oidc_issuer.url), headers)

    assert [read.status_code for read in reads] == [200, 200, 429]
    assert reads[2].headers["Retry-After"].isdigit()
    assert change.status_code == 201  # reads did not spend the changes' budget


@pytest.mark.parametrize(
    ("stored", "expiry"),
    # bytes: the record as stored; a dict: a readable record with these fields changed.
    [
        (b"{not json", None),
        (b'{"id": "rp_bad"}', None),
        ({}, b"soon"),
        # JSON that decodes, every field present, one of the wrong type.
        ({"entry": None}, None),
        ({"entry": "github"}, None),
        ({"entry": 7}, None),
        ({"id": 7}, None),
        ({"project": ["demo-pkg"]}, None),
    ],
    ids=[
        "not-json",
        "fields-missing",
        "expiry-not-a-number",
        "entry-null",
        "entry-string",
        "entry-number",
        "id-number",
        "project-list",
    ],
)
def test_a_registration_the_store_cannot_read_is_left_out_and_the_rest_still_load(
    make_managed_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    store: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    stored: bytes | dict[str, Any],
    expiry: bytes | None,
) -> None:
    # Without this, one such record stopped a new process and 500ed every management call.
    headers = clients.bearer("admin")
    added = add(
        make_managed_app().test_client(), "demo-pkg", registration(oidc_issuer.url), headers
    )
    assert added.status_code == 201, added.get_json()
    if isinstance(stored, dict):
        good = json.loads(store.hget("trustpub:registrations", added.get_json()["id"]) or "")
        stored = json.dumps({**good, "id": "rp_bad", "unique_key": "elsewhere", **stored}).encode()
    store.hset("trustpub:registrations", "rp_bad", stored)
    if expiry is not None:
        store.hset("trustpub:registrations:pending", "rp_bad", expiry)
    store.incr("trustpub:registrations:version")

    client = make_managed_app().test_client()  # a process that starts now
    held = [publisher["id"] for publisher in listed(client, "demo-pkg", headers)]
    removed = remove(client, "demo-pkg", added.get_json()["id"], headers)

    assert held == [added.get_json()["id"]]
    assert removed.status_code == 200, removed.get_json()
    assert "registration 'rp_bad' in the store cannot be read" in caplog.text


def test_a_process_reloads_after_a_data_loss_that_brought_the_version_back_to_its_own(
    make_app: MakeApp, clients: ManagementClients, oidc_issuer: OIDCIssuer, store: redis.Redis
) -> None:
    still = {"registrations_poll_ms": 60_000}  # no poll between the steps
    first = make_app(None, clients_file=clients.path, **still)
    second = make_app(None, clients_file=clients.path, **still)
    maintainer = clients.bearer("demo-maintainer")
    other = registration(oidc_issuer.url, repository="octo-org/other")
    assert add(first.test_client(), "demo-pkg", other, maintainer).status_code == 201
    publishers: Any = first.extensions["trustpub"].registrations.publishers
    assert len(publishers.refresh().registered) == 1

    store.flushall()  # the registration is lost, and the counter starts again from 0
    third = registration(oidc_issuer.url, repository="octo-org/third")
    assert add(second.test_client(), "demo-pkg", third, maintainer).status_code == 201

    # The counter is back at the first process's number: the epoch tells them apart.
    held = [reg.entry["repository"] for _, reg in publishers.refresh().registered.values()]
    assert held == ["octo-org/third"]


@pytest.mark.parametrize(
    ("key", "stored", "expiry", "recorded"),
    [
        (b"rp_bad", None, b"soon", None),  # expired or not, nobody can tell: kept
        (b"rp_bad", b"{not json", b"1", "rp_bad"),
        # Recorded in printable ASCII: a stream record no reader can decode would fail
        # every read of the audit trail that reaches it.
        (b"rp_\xffbad\n", b"{not json", b"1", "rp_?bad?"),
    ],
    ids=["expiry-not-a-number", "not-json-and-expired", "key-not-utf8-and-expired"],
)
def test_a_registration_the_store_cannot_read_does_not_stop_the_purge(
    make_managed_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    store: redis.Redis,
    key: bytes,
    stored: bytes | None,
    expiry: bytes,
    recorded: str | None,
) -> None:
    # Pending publishers expire every day somewhere; the purge that follows must not
    # trip over the unreadable record, or every process stops reloading (a publisher
    # removed elsewhere keeps minting here) and the management API answers 503.
    headers = clients.bearer("admin")
    added = add(
        make_managed_app().test_client(), "demo-pkg", registration(oidc_issuer.url), headers
    )
    assert added.status_code == 201, added.get_json()
    good = json.loads(store.hget("trustpub:registrations", added.get_json()["id"]) or "")
    expired = {**good, "id": "rp_old", "unique_key": "old"}
    store.hset("trustpub:registrations", "rp_old", json.dumps(expired))
    store.hset("trustpub:registrations:pending", "rp_old", int(time.time()) - 10)
    bad = stored or json.dumps({**good, "id": "rp_bad", "unique_key": "elsewhere"}).encode()
    store.hset("trustpub:registrations", key, bad)
    store.hset("trustpub:registrations:pending", key, expiry)
    store.incr("trustpub:registrations:version")

    client = make_managed_app().test_client()  # a process that starts now
    answer = client.get("/api/v1/projects/demo-pkg/publishers", headers=headers)

    assert answer.status_code == 200, answer.get_json()
    assert [p["id"] for p in answer.get_json()["publishers"]] == [added.get_json()["id"]]
    assert not store.hexists("trustpub:registrations", "rp_old")  # purged
    assert store.hexists("trustpub:registrations", key) == (recorded is None)
    # Each deletion recorded: the one this process read as a removal's record is, the
    # unreadable one as it can be.
    audit = client.get("/api/v1/audit", headers=headers)
    assert audit.status_code == 200, audit.get_json()
    expiries = {
        record["publisher_id"]: _without(record, "id", "at", "request_id")
        for record in audit.get_json()["records"]
        if record["action"] == "publisher-expire"
    }
    old = {
        "action": "publisher-expire",
        "actor": "trustpub",
        "project": "demo-pkg",
        "publisher_id": "rp_old",
        "pending": "true",
        "provider": "github",
        "issuer": oidc_issuer.url,
        "repository": "octo-org/demo",
        "workflow": "release.yml",
        "environment": "pypi",
    }
    minimal = {"action": "publisher-expire", "actor": "trustpub", "pending": "true"}
    assert expiries == {
        "rp_old": old,
        **({recorded: {**minimal, "publisher_id": recorded}} if recorded else {}),
    }


def _without(record: dict[str, str], *fields: str) -> dict[str, str]:
    return {key: value for key, value in record.items() if key not in fields}


def test_a_registration_whose_issuer_is_no_longer_trusted_is_listed_and_can_be_removed(
    make_app: MakeApp, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    # Its maintainers must be able to see and remove it while the operator has the issuer
    # switched off: before, it was invisible, a removal answered 404, and it minted again
    # once the issuer was configured again.
    other = "https://ghe.example.com"
    filed = [github_publisher(other, repository="octo-org/filed", projects=["filed-pkg"])]
    headers = clients.bearer("demo-maintainer")
    both = make_app(filed, clients_file=clients.path, issuers=[oidc_issuer.url, other])
    added = add(both.test_client(), "demo-pkg", registration(oidc_issuer.url), headers).get_json()
    # Another project's, ignored as well: listed to that project's maintainers only.
    theirs = add(
        both.test_client(),
        "other-pkg",
        registration(oidc_issuer.url, repository="octo-org/other"),
        clients.bearer("other-maintainer"),
    )
    assert theirs.status_code == 201, theirs.get_data(as_text=True)
    without = make_app(filed, clients_file=clients.path, issuers=[other]).test_client()

    (held,) = listed(without, "demo-pkg", headers)
    removed = remove(without, "demo-pkg", added["id"], headers)

    assert (held["id"], held["publisher"]["issuer"]) == (added["id"], oidc_issuer.url)
    assert "not a configured github issuer" in held["ignored"]
    assert removed.status_code == 200, removed.get_data(as_text=True)
    again = make_app(filed, clients_file=clients.path, issuers=[oidc_issuer.url, other])
    assert_failure(mint(again.test_client(), make_token()), 422, "invalid-publisher")


def test_a_project_holds_a_bounded_number_of_registered_publishers(
    managed_app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every process reloads every registration after each change and a listing answers
    # all of a project's: before, one project's key could grow both without end.
    monkeypatch.setattr("app.registrations.MAX_PUBLISHERS_PER_PROJECT", 3)
    client = managed_app.test_client()
    headers = clients.bearer("demo-maintainer")
    bodies = [registration(oidc_issuer.url, workflow=f"r{i}.yml") for i in range(4)]
    pending = {"pending": True}

    statuses = [add(client, "demo-pkg", body, headers).status_code for body in bodies[:3]]
    description = api_error(add(client, "demo-pkg", bodies[3], headers), 409, "too-many-publishers")
    other = add(client, "other-pkg", bodies[3], clients.bearer("other-maintainer"))

    assert statuses == [201, 201, 201]
    assert "'demo-pkg' has 3 registered publishers" in description
    assert other.status_code == 201  # a bound per project
    unborn = [add(client, "unborn-pkg", body | pending, clients.bearer("index")) for body in bodies]
    assert [answer.status_code for answer in unborn] == [201, 201, 201, 409]  # pending ones too
    first = listed(client, "demo-pkg", headers)[0]["id"]
    assert remove(client, "demo-pkg", first, headers).status_code == 200
    assert add(client, "demo-pkg", bodies[3], headers).status_code == 201
