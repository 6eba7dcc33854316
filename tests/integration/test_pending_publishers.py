"""Pending publishers: registered for a project that does not exist yet, converted by the
first exchange that matches, refused once the project exists, ignored after expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from support.oidc_issuer import OIDCIssuer

from app.auth.clients import add_client
from app.errors import StoreUnavailable
from app.registrations import MAX_DECLARATION_BYTES, MAX_DECLARED_PROJECTS
from app.stores.redis import RedisStore

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint, upload_token_projects
from .policies import github_publisher
from .registrations_api import ManagementClients, add, api_error, listed, registration, remove

PENDING = {"pending": True}
OTHER_REPOSITORY = {
    "repository": "octo-org/other",
    "workflow_ref": "octo-org/other/.github/workflows/release.yml@refs/tags/v1.0.0",
    "job_workflow_ref": "octo-org/other/.github/workflows/release.yml@refs/tags/v1.0.0",
}


@pytest.fixture
def clients(tmp_path: Path) -> ManagementClients:
    return ManagementClients(tmp_path / "clients.toml")


@pytest.fixture
def make_pending_app(make_app: MakeApp, clients: ManagementClients, oidc_issuer: OIDCIssuer) -> Any:
    def make(**overrides: Any) -> Flask:
        settings = {"registration_rate_limit": "1000/minute", **overrides}
        filed = github_publisher(
            oidc_issuer.url, repository="octo-org/filed", projects=["filed-pkg"]
        )
        return make_app([filed], clients_file=clients.path, **settings)

    return make


@pytest.fixture
def app(make_pending_app: Any) -> Flask:
    made: Flask = make_pending_app()
    return made


def test_the_first_exchange_converts_a_pending_publisher(
    app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    store: redis.Redis,
) -> None:
    client = app.test_client()
    body = registration(oidc_issuer.url, **PENDING)

    added = add(client, "new-pkg", body, clients.bearer("index"))

    assert added.status_code == 201, added.get_data(as_text=True)
    created = added.get_json()
    assert created["pending"] is True
    assert created["expires_at"] - created["created_at"] == 30 * 86400
    assert upload_token_projects(assert_minted(mint(client, make_token()))) == ["new-pkg"]
    assert store.sismember("trustpub:projects", "new-pkg")
    assert store.hget("trustpub:registrations:pending", created["id"]) is None
    app.extensions["trustpub"].registrations.publishers.refresh()
    (converted,) = listed(client, "new-pkg", clients.bearer("admin"))
    assert (converted["id"], converted["pending"], converted["expires_at"]) == (
        created["id"],
        False,
        None,
    )
    # A normal publisher now: it keeps minting.
    assert_minted(mint(client, make_token()))


def test_a_pending_publisher_for_an_existing_project_is_refused(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    client = app.test_client()
    client.put("/api/v1/projects/declared-pkg", headers=clients.bearer("admin"))
    body = registration(oidc_issuer.url, **PENDING)

    api_error(add(client, "Filed_Pkg", body, clients.bearer("index")), 409, "project-exists")
    api_error(add(client, "declared-pkg", body, clients.bearer("index")), 409, "project-exists")


def test_a_project_a_policy_file_named_stays_existing_once_the_file_drops_it(
    make_app: MakeApp, clients: ManagementClients, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    settings = {"clients_file": clients.path, "registration_rate_limit": "1000/minute"}
    filed = github_publisher(oidc_issuer.url, projects=["demo-pkg"])
    unrelated = github_publisher(oidc_issuer.url, repository="octo-org/else", projects=["else"])
    before = make_app([filed, unrelated], **settings).test_client()
    assert upload_token_projects(assert_minted(mint(before, make_token()))) == ["demo-pkg"]
    # The runbook's first step for a compromised workflow: its entry removed, redeployed.
    after = make_app([unrelated], **settings).test_client()
    body = registration(oidc_issuer.url, repository="octo-org/other", **PENDING)

    # Another repository's pending publisher would take the project the index has.
    api_error(add(after, "demo-pkg", body, clients.bearer("index")), 409, "project-exists")
    assert_failure(mint(after, make_token(**OTHER_REPOSITORY)), 422, "invalid-publisher")


def test_a_policy_files_project_the_store_could_not_record_still_exists(
    make_pending_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    store: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the token store is unavailable; retry in a few seconds")

    monkeypatch.setattr(RedisStore, "declare_projects", unavailable)
    client = make_pending_app().test_client()
    body = registration(oidc_issuer.url, **PENDING)

    # This process counts its files' projects whether or not the store has them yet.
    api_error(add(client, "filed-pkg", body, clients.bearer("index")), 409, "project-exists")
    assert not store.sismember("trustpub:projects", "filed-pkg")
    assert store.hlen("trustpub:registrations") == 0


@pytest.mark.parametrize("store_began", ["new-deployment", "data-loss"])
def test_pending_publishers_wait_until_an_admin_confirms_the_projects(
    app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    store: redis.Redis,
    store_began: str,
) -> None:
    client = app.test_client()
    admin = clients.bearer("admin")
    client.put("/api/v1/projects/declared-pkg", headers=admin)
    if store_began == "data-loss":
        store.flushall()  # the index's declaration is gone with the rest
    else:
        store.delete("trustpub:projects:confirmed")  # a store no admin confirmed yet
        store.incr("trustpub:registrations:version")  # (as every change does: reloaded)
    body = registration(oidc_issuer.url, **PENDING)

    # An existing project of the index the store no longer knows must not be taken.
    api_error(
        add(client, "declared-pkg", body, clients.bearer("index")), 409, "projects-unconfirmed"
    )
    # The index declares again, and confirms naming the epoch that declaration answered.
    redeclared = client.put("/api/v1/projects/declared-pkg", headers=admin).get_json()
    epoch = {"epoch": redeclared["epoch"]}
    api_error(
        client.put("/api/v1/projects", json=epoch, headers=clients.bearer("index")),
        403,
        "insufficient-scope",
    )
    confirmed = client.put("/api/v1/projects", json=epoch, headers=admin)
    again = client.put("/api/v1/projects", json=epoch, headers=admin)

    assert confirmed.get_json() == {"confirmed": True, "changed": True, **epoch}
    assert again.get_json() == {"confirmed": True, "changed": False, **epoch}
    api_error(add(client, "declared-pkg", body, clients.bearer("index")), 409, "project-exists")
    assert add(client, "new-pkg", body, clients.bearer("index")).status_code == 201
    records = client.get("/api/v1/audit?limit=3", headers=admin).get_json()["records"]
    assert [r["action"] for r in records] == [
        "publisher-add",
        "projects-confirm",
        "project-declare",
    ]


def test_an_index_declares_its_projects_in_bulk_then_confirms(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, store: redis.Redis
) -> None:
    client = app.test_client()
    admin = clients.bearer("admin")
    store.delete("trustpub:projects:confirmed")
    # Every name at its longest, so the largest body the endpoint takes is sent.
    names = [f"{index:05d}".ljust(200, "x") for index in range(MAX_DECLARED_PROJECTS - 2)]
    names += ["Declared_Pkg", "declared-pkg"]  # one project, spelled twice

    declared = client.post("/api/v1/projects", json={"projects": names}, headers=admin)
    again = client.post("/api/v1/projects", json={"projects": ["declared-pkg"]}, headers=admin)
    epoch = store.get("trustpub:epoch").decode()
    confirmed = client.put("/api/v1/projects", json={"epoch": epoch}, headers=admin)

    assert declared.status_code == 200, declared.get_data(as_text=True)
    assert declared.get_json() == {"declared": 9_999, "created": 9_999, "epoch": epoch}
    assert again.get_json() == {"declared": 1, "created": 0, "epoch": epoch}
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    # A subset: each app's process adds its policy files' projects too (filed-pkg here), and
    # so may an earlier test's app whose poller has not ended yet.
    expected = {*names[:-2], "declared-pkg", "filed-pkg"}
    assert expected <= {name.decode() for name in store.smembers("trustpub:projects")}
    body = registration(oidc_issuer.url, **PENDING)
    api_error(add(client, "declared-pkg", body, clients.bearer("index")), 409, "project-exists")
    assert add(client, "new-pkg", body, clients.bearer("index")).status_code == 201
    records = client.get("/api/v1/audit?limit=3", headers=admin).get_json()["records"]
    assert [(r["action"], r.get("count")) for r in records] == [
        ("publisher-add", None),
        ("projects-confirm", None),
        ("projects-declare", "9999"),  # the call that declared nothing left no record
    ]


def test_a_confirmation_naming_an_epoch_before_a_data_loss_is_refused(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, store: redis.Redis
) -> None:
    client = app.test_client()
    admin = clients.bearer("admin")
    body = registration(oidc_issuer.url, **PENDING)

    def declare(*names: str) -> str:
        answer = client.post("/api/v1/projects", json={"projects": names}, headers=admin)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        epoch: str = answer.get_json()["epoch"]
        return epoch

    began = declare("declared-pkg")
    store.flushall()  # Redis loses its data in the middle of the index's declarations
    went_on = declare("other-pkg")
    refused = client.put("/api/v1/projects", json={"epoch": began}, headers=admin)

    assert went_on != began
    api_error(refused, 409, "declarations-lost")
    # Confirmed, the new store would let a pending publisher take a project of the index
    # whose declaration the loss took with it.
    api_error(
        add(client, "declared-pkg", body, clients.bearer("index")), 409, "projects-unconfirmed"
    )
    status = client.get("/api/v1/projects", headers=admin)
    assert status.get_json() == {"epoch": went_on, "confirmed": False}
    # Declared again from the start, in one epoch: confirmed.
    again = declare("declared-pkg", "other-pkg")
    assert again == went_on
    confirmed = client.put("/api/v1/projects", json={"epoch": again}, headers=admin)
    assert confirmed.get_json() == {"confirmed": True, "changed": True, "epoch": again}
    assert client.get("/api/v1/projects", headers=admin).get_json()["confirmed"] is True
    api_error(add(client, "declared-pkg", body, clients.bearer("index")), 409, "project-exists")
    records = client.get("/api/v1/audit?limit=10", headers=admin).get_json()["records"]
    assert [r["action"] for r in records].count("projects-confirm") == 1


@pytest.mark.parametrize(
    ("body", "client_name", "status", "code"),
    [
        (None, "admin", 400, "invalid-request"),
        ({}, "admin", 400, "invalid-request"),
        ({"epoch": 7}, "admin", 400, "invalid-request"),
        ({"epoch": "no-seconds"}, "admin", 400, "invalid-request"),
        ({"epoch": ":1795582800"}, "admin", 400, "invalid-request"),
        ({"epoch": "a" * 100 + ":1795582800"}, "admin", 400, "invalid-request"),
        ({"epoch": "a:1795582800", "confirm": True}, "admin", 400, "invalid-request"),
        ({"epoch": "never-this-stores:1795582800"}, "admin", 409, "declarations-lost"),
        ({"epoch": "never-this-stores:1795582800"}, "index", 403, "insufficient-scope"),
    ],
    ids=[
        "no-body",
        "empty",
        "not-a-string",
        "no-seconds",
        "no-id",
        "too-long",
        "more-fields",
        "another-epoch",
        "not-admin",
    ],
)
def test_a_confirmation_names_an_epoch_or_is_refused(
    app: Flask,
    clients: ManagementClients,
    store: redis.Redis,
    body: Any,
    client_name: str,
    status: int,
    code: str,
) -> None:
    store.delete("trustpub:projects:confirmed")
    client = app.test_client()

    answer = client.put("/api/v1/projects", json=body, headers=clients.bearer(client_name))

    api_error(answer, status, code)
    assert store.get("trustpub:projects:confirmed") is None


def test_the_projects_status_is_an_admins_to_read(
    app: Flask, clients: ManagementClients, store: redis.Redis
) -> None:
    client = app.test_client()

    status = client.get("/api/v1/projects", headers=clients.bearer("admin"))

    assert status.get_json() == {
        "epoch": store.get("trustpub:epoch").decode(),
        "confirmed": True,  # the suite's store was confirmed an hour ago (tests/conftest.py)
    }
    api_error(
        client.get("/api/v1/projects", headers=clients.bearer("index")), 403, "insufficient-scope"
    )


@pytest.mark.parametrize(
    ("body", "client_name", "status", "code"),
    [
        ({"projects": ["new-pkg"]}, "index", 403, "insufficient-scope"),
        ({"projects": []}, "admin", 400, "invalid-request"),
        ({"projects": "new-pkg"}, "admin", 400, "invalid-request"),
        ({"projects": ["new-pkg"], "confirm": True}, "admin", 400, "invalid-request"),
        (["new-pkg"], "admin", 400, "invalid-request"),
        ({"projects": ["new-pkg", 7]}, "admin", 400, "invalid-request"),
        ({"projects": ["new-pkg", "-bad-"]}, "admin", 400, "invalid-request"),
        ({"projects": ["p"] * (MAX_DECLARED_PROJECTS + 1)}, "admin", 400, "invalid-request"),
        ({"projects": ["p" * (MAX_DECLARATION_BYTES - 14)]}, "admin", 413, "payload-too-large"),
    ],
    ids=[
        "not-admin",
        "empty",
        "not-a-list",
        "extra-field",
        "not-an-object",
        "not-a-string",
        "invalid-name",
        "too-many",
        "too-large",
    ],
)
def test_a_bulk_declaration_is_refused_whole(
    app: Flask,
    clients: ManagementClients,
    store: redis.Redis,
    body: object,
    client_name: str,
    status: int,
    code: str,
) -> None:
    client = app.test_client()

    answer = client.post("/api/v1/projects", json=body, headers=clients.bearer(client_name))

    api_error(answer, status, code)
    assert not store.sismember("trustpub:projects", "new-pkg")


def test_a_pending_publisher_whose_project_came_to_exist_gets_the_contract_code(
    app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
) -> None:
    client = app.test_client()
    add(client, "new-pkg", registration(oidc_issuer.url, **PENDING), clients.bearer("index"))

    # The index says the project exists now (someone uploaded it another way).
    client.put("/api/v1/projects/new-pkg", headers=clients.bearer("admin"))
    token = make_token()
    explained = client.post("/_/oidc/explain", json={"token": token}).get_json()

    # explain tells the caller what the exchange then does: no token.
    assert explained["would_mint"] is False
    assert "pending" in explained["reason"]
    assert_failure(mint(client, token), 422, "invalid-pending-publisher")


def test_a_mint_drops_the_project_of_a_pending_publisher_that_lost_its_conversion(
    app: Flask,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    store: redis.Redis,
) -> None:
    client = app.test_client()
    normal = add(client, "demo-pkg", registration(oidc_issuer.url), clients.bearer("admin"))
    assert normal.status_code == 201, normal.get_data(as_text=True)
    pending = registration(oidc_issuer.url, **PENDING)
    created = add(client, "new-pkg", pending, clients.bearer("index")).get_json()
    # Another process declared the project; this one's snapshot has yet to see it.
    store.sadd("trustpub:projects", "new-pkg")

    minted = assert_minted(mint(client, make_token()))

    # The store refused the conversion: the token is the normal publisher's alone.
    assert upload_token_projects(minted) == ["demo-pkg"]
    assert store.hget("trustpub:registrations:pending", created["id"]) is not None


def test_two_pending_publishers_for_one_name_the_first_exchange_wins(
    make_pending_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
) -> None:
    app = make_pending_app()
    client = app.test_client()
    index = clients.bearer("index")
    mine = add(client, "new-pkg", registration(oidc_issuer.url, **PENDING), index).get_json()
    theirs = registration(oidc_issuer.url, repository="octo-org/other", **PENDING)
    assert add(client, "new-pkg", theirs, index).status_code == 201

    assert upload_token_projects(assert_minted(mint(client, make_token()))) == ["new-pkg"]

    # The other one's snapshot still holds it as pending: the store refuses it anyway.
    assert_failure(mint(client, make_token(**OTHER_REPOSITORY)), 422, "invalid-pending-publisher")
    # And once reloaded it is no candidate at all, with the same code.
    app.extensions["trustpub"].registrations.publishers.refresh()
    assert_failure(mint(client, make_token(**OTHER_REPOSITORY)), 422, "invalid-pending-publisher")
    assert mine["id"] in {p["id"] for p in listed(client, "new-pkg", clients.bearer("admin"))}


def test_an_expired_pending_publisher_matches_nothing_and_is_purged(
    make_pending_app: Any,
    clients: ManagementClients,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    store: redis.Redis,
) -> None:
    app = make_pending_app()
    client = app.test_client()
    created = add(
        client, "new-pkg", registration(oidc_issuer.url, **PENDING), clients.bearer("index")
    ).get_json()

    # Expire it in the store, as 30 days would.
    store.hset("trustpub:registrations:pending", created["id"], "1")
    store.incr("trustpub:registrations:version")
    publishers = app.extensions["trustpub"].registrations.publishers
    publishers.refresh()

    assert_failure(mint(client, make_token()), 422, "invalid-publisher")
    assert listed(client, "new-pkg", clients.bearer("admin")) == []
    # The refresh that loaded it saw it had expired: the next one (a poll, or the
    # listing's, above) purged it from the store.
    assert store.hlen("trustpub:registrations") == 0
    assert store.hlen("trustpub:registrations:pending") == 0
    # The name was never reserved: another pending publisher may take it.
    again = add(
        client, "new-pkg", registration(oidc_issuer.url, **PENDING), clients.bearer("index")
    )
    assert again.status_code == 201


def test_the_index_removes_only_its_own_pending_publishers(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    client = app.test_client()
    created = add(
        client, "new-pkg", registration(oidc_issuer.url, **PENDING), clients.bearer("index")
    ).get_json()

    api_error(
        remove(client, "new-pkg", created["id"], clients.bearer("demo-maintainer")),
        403,
        "project-forbidden",
    )
    assert remove(client, "new-pkg", created["id"], clients.bearer("index")).status_code == 200


def test_a_pending_publisher_is_removed_only_by_the_pending_client_that_added_it(
    make_pending_app: Any, clients: ManagementClients, oidc_issuer: OIDCIssuer
) -> None:
    other_index = {"Authorization": f"Bearer {add_client(clients.path, 'other', ['pending'])}"}
    client = make_pending_app().test_client()
    created = add(
        client, "new-pkg", registration(oidc_issuer.url, **PENDING), clients.bearer("index")
    ).get_json()

    api_error(remove(client, "new-pkg", created["id"], other_index), 403, "insufficient-scope")
    assert [p["id"] for p in listed(client, "new-pkg", clients.bearer("admin"))] == [created["id"]]
    assert remove(client, "new-pkg", created["id"], clients.bearer("index")).status_code == 200


def test_the_index_cannot_remove_its_pending_publisher_once_an_exchange_converted_it(
    app: Flask, clients: ManagementClients, oidc_issuer: OIDCIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The index may remove a pending publisher because it is pending: decided on the
    # snapshot, an exchange elsewhere could convert it before the store removed it, and
    # the index removed the normal publisher of a project that exists now.
    client = app.test_client()
    index = clients.bearer("index")
    created = add(client, "new-pkg", registration(oidc_issuer.url, **PENDING), index).get_json()
    store = app.extensions["trustpub"].registrations.store
    remove_registration = store.remove_registration

    def converted_meanwhile(registration_id: str, **kwargs: Any) -> Any:
        assert store.convert_pending(registration_id, "new-pkg", created["created_at"]) == (
            "converted"
        )
        return remove_registration(registration_id, **kwargs)

    monkeypatch.setattr(store, "remove_registration", converted_meanwhile)

    api_error(remove(client, "new-pkg", created["id"], index), 403, "insufficient-scope")
    (held,) = listed(client, "new-pkg", clients.bearer("admin"))
    assert (held["id"], held["pending"]) == (created["id"], False)
