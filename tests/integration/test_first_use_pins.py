"""GitLab publishers that name no immutable ID pin them from their first token, so a
project deleted and re-created under the same path by someone else cannot publish.

A real issuer signs the tokens, and the pins live in the real Redis that several apps
(as several processes would) share.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from support.oidc_issuer import OIDCIssuer
from support.redis_server import RedisServer

from .conftest import MakeApp
from .exchange_api import (
    GITLAB_PROJECT,
    assert_failure,
    assert_minted,
    gitlab_token,
    mint,
    upload_token_projects,
)
from .policies import gitlab_publisher
from .redis_watch import commands_sent
from .registrations_api import ManagementClients, add, listed, remove

MakeIssuer = Callable[..., OIDCIssuer]
PINS_KEY = "trustpub:registrations:pins"
FIRST_IDS = {"namespace_id": "4231", "project_id": "58112"}  # support.claims.gitlab_claims
# The same path, CI file and environment, in a group and project created anew.
RECREATED = {"namespace_id": "90001", "project_id": "90002"}
# Pollers read the store every minute: a snapshot stays as it was loaded.
STILL = {"registrations_poll_ms": 60_000}


@pytest.fixture
def clients(tmp_path: Path) -> ManagementClients:
    return ManagementClients(tmp_path / "clients.toml")


def pins(store: redis.Redis) -> dict[str, dict[str, str]]:
    return {key.decode(): json.loads(value) for key, value in store.hgetall(PINS_KEY).items()}


def audit_records(store: redis.Redis, action: str) -> list[dict[str, str]]:
    records = store.xrange("trustpub:audit")
    fields = [{k.decode(): v.decode() for k, v in raw.items()} for _, raw in records]
    return [record for record in fields if record["action"] == action]


def test_a_file_publisher_pins_the_ids_of_its_first_token(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    gitlab = make_oidc_issuer()
    app = make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,), **STILL)
    client = app.test_client()

    assert_minted(mint(client, gitlab_token(gitlab)))

    ((key, pinned),) = pins(store).items()
    assert key.startswith("file:")
    assert pinned == FIRST_IDS
    (record,) = audit_records(store, "publisher-pin")
    assert record["pins"] == "namespace_id=4231,project_id=58112"
    assert record["repository"] == GITLAB_PROJECT
    assert record["projects"] == "gitlab-pkg"
    assert record["publisher_source"].endswith("publisher[0]")
    # Its own project keeps publishing, and pins nothing again.
    assert_minted(mint(client, gitlab_token(gitlab)))
    assert len(audit_records(store, "publisher-pin")) == 1


@pytest.mark.parametrize("snapshot", ["stale", "reloaded"])
def test_a_recreated_project_of_the_same_path_is_refused(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis, snapshot: str
) -> None:
    gitlab = make_oidc_issuer()

    def make() -> Any:
        return make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,), **STILL)

    first, second = make(), make()  # two processes, both loaded before any pin
    assert_minted(mint(first.test_client(), gitlab_token(gitlab)))
    # "stale": the second learns the pin from the store when it tries to pin; "reloaded":
    # a process started since has it in its snapshot and refuses while matching.
    deciding = second if snapshot == "stale" else make()

    description = assert_failure(
        mint(deciding.test_client(), gitlab_token(gitlab, **RECREATED)), 422, "invalid-publisher"
    )

    assert "claim 'project_id'" in description
    assert "'58112' (pinned by the first token it matched)" in description
    assert "received '90002'" in description
    assert pins(store) == {next(iter(pins(store))): FIRST_IDS}  # never replaced
    assert_minted(mint(deciding.test_client(), gitlab_token(gitlab)))


def test_a_publisher_naming_its_ids_pins_nothing(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    gitlab = make_oidc_issuer()
    named = gitlab_publisher(gitlab.url, project_id="58112")
    client = make_app([named], gitlab_issuers=(gitlab.url,)).test_client()

    assert_minted(mint(client, gitlab_token(gitlab)))

    assert pins(store) == {}
    assert audit_records(store, "publisher-pin") == []


def test_a_registered_publisher_pins_lists_its_pins_and_is_reset_by_registering_again(
    make_app: MakeApp,
    make_oidc_issuer: MakeIssuer,
    store: redis.Redis,
    clients: ManagementClients,
) -> None:
    gitlab = make_oidc_issuer()
    # The default policy file: one GitHub publisher, nothing of GitLab's.
    app = make_app(None, gitlab_issuers=(gitlab.url,), clients_file=clients.path, **STILL)
    client = app.test_client()
    maintainer = clients.bearer("demo-maintainer")
    body = {key: v for key, v in gitlab_publisher(gitlab.url).items() if key != "projects"}
    added = add(client, "demo-pkg", body, maintainer).get_json()

    assert upload_token_projects(assert_minted(mint(client, gitlab_token(gitlab)))) == ["demo-pkg"]

    assert pins(store) == {added["id"]: FIRST_IDS}
    entries = {entry["id"]: entry for entry in listed(client, "demo-pkg", maintainer)}
    # The policy file's GitHub publisher names its owner's ID: it pins nothing.
    assert {key: e["pinned_on_first_use"] for key, e in entries.items()} == {
        "publishers.toml: publisher[0]": None,
        added["id"]: FIRST_IDS,
    }
    assert_failure(mint(client, gitlab_token(gitlab, **RECREATED)), 422, "invalid-publisher")
    # The maintainers re-created the project themselves: they register the publisher
    # again, and its first token pins the new IDs.
    assert remove(client, "demo-pkg", added["id"], maintainer).status_code == 200
    assert pins(store) == {}
    again = add(client, "demo-pkg", body, maintainer).get_json()
    assert again["pinned_on_first_use"] is None
    assert_minted(mint(client, gitlab_token(gitlab, **RECREATED)))
    assert pins(store) == {again["id"]: RECREATED}
    assert_failure(mint(client, gitlab_token(gitlab)), 422, "invalid-publisher")


def test_once_its_pins_are_loaded_a_gitlab_mint_costs_one_round_trip(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, redis_server: RedisServer
) -> None:
    gitlab = make_oidc_issuer()
    app = make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,), **STILL)
    client = app.test_client()
    token = gitlab_token(gitlab)
    assert_minted(mint(client, gitlab_token(gitlab)))  # warm: connected, epoch read

    unloaded = commands_sent(redis_server, lambda: assert_minted(mint(client, token)))
    reloaded = make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,), **STILL)
    assert_minted(mint(reloaded.test_client(), gitlab_token(gitlab)))  # warm
    token = gitlab_token(gitlab)
    loaded = commands_sent(redis_server, lambda: assert_minted(mint(reloaded.test_client(), token)))

    # Until its snapshot holds the pins, a process asks the store for them: two trips.
    assert [c.name for c in unloaded if not c.by_script] == ["EVALSHA", "EVALSHA"]
    assert [c.name for c in unloaded if c.by_script] == [
        "HGET",
        "HSET",
        "TIME",
        "GET",
        "SET",
        "XADD",
    ]
    assert [c.name for c in loaded if not c.by_script] == ["EVALSHA"]
    assert {c.name for c in loaded if c.by_script} == {"TIME", "GET", "SET", "XADD"}
