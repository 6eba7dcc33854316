"""Rate limits: per source address and per publisher on minting, per client on introspection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint, replay_keys
from .oauth_api import INTROSPECT_PATH, REVOCATIONS_PATH, REVOKE_PATH, Clients, introspect
from .policies import github_publisher


def other_repository(make_token: MakeToken) -> str:
    ref = "octo-org/other/.github/workflows/release.yml@refs/tags/v1.0.0"
    return make_token(
        repository="octo-org/other", repository_id="75", workflow_ref=ref, job_workflow_ref=ref
    )


@pytest.fixture
def two_publishers(oidc_issuer: Any) -> list[dict[str, Any]]:
    return [
        github_publisher(oidc_issuer.url),
        github_publisher(
            oidc_issuer.url, repository="octo-org/other", repository_id="75", projects=["other"]
        ),
    ]


def address(ip: str) -> dict[str, dict[str, str]]:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def test_mint_is_limited_per_source_address(make_app: MakeApp, make_token: MakeToken) -> None:
    client = make_app(mint_rate_limit="2/minute").test_client()

    answers = [mint(client, make_token()) for _ in range(2)]
    limited = client.post("/_/oidc/mint-token", json={"token": make_token()})
    elsewhere = client.post(
        "/_/oidc/mint-token", json={"token": make_token()}, **address("192.0.2.7")
    )

    for answer in answers:
        assert_minted(answer)
    assert_failure(limited, 429, "rate-limited")
    assert 0 < int(limited.headers["Retry-After"]) <= 61  # the window, rounded up
    assert_minted(elsewhere)


@pytest.mark.parametrize(
    ("spent_from", "then_from", "limited"),
    [
        (["2001:db8:1:2::10", "2001:db8:1:2::ffff"], "2001:db8:1:2:abcd::1", True),
        (["2001:db8:1:2::10", "2001:db8:1:2::10"], "2001:db8:1:3::10", False),
        (["2001:db8:1:2::10", "2001:db8:1:2::11"], "2001:db8:1:2::12%eth0", True),
        (["192.0.2.7", "192.0.2.7"], "::ffff:192.0.2.7", True),
        (["::ffff:192.0.2.7", "::ffff:192.0.2.7"], "192.0.2.8", False),
        (["not-an-address:1", "not-an-address:1"], "not-an-address:2", False),
    ],
)
def test_an_ipv6_client_counts_by_its_slash_64(
    make_app: MakeApp, make_token: MakeToken, spent_from: list[str], then_from: str, limited: bool
) -> None:
    client = make_app(mint_rate_limit="2/minute").test_client()

    answers = [
        client.post("/_/oidc/mint-token", json={"token": make_token()}, **address(ip))
        for ip in spent_from
    ]
    then = client.post("/_/oidc/mint-token", json={"token": make_token()}, **address(then_from))

    for answer in answers:
        assert_minted(answer)
    if limited:
        assert_failure(then, 429, "rate-limited")
    else:
        assert_minted(then)


def test_forwarded_for_is_used_only_behind_trusted_proxies(
    make_app: MakeApp, make_token: MakeToken
) -> None:
    def run(app: Flask) -> list[int]:
        client = app.test_client()
        return [
            client.post(
                "/_/oidc/mint-token",
                json={"token": make_token()},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(3)
        ]

    assert run(make_app(mint_rate_limit="1/minute", trusted_proxies=1)) == [200, 200, 200]
    # Without a trusted proxy a client could pick its own address; the header is ignored.
    assert run(make_app(mint_rate_limit="1/minute")) == [200, 429, 429]


def test_mint_is_limited_per_publisher_without_burning_the_token(
    make_app: MakeApp,
    make_token: MakeToken,
    two_publishers: list[dict[str, Any]],
    store: redis.Redis,
) -> None:
    client = make_app(two_publishers, publisher_rate_limit="2/minute").test_client()
    for n in range(2):
        assert_minted(
            client.post(
                "/_/oidc/mint-token", json={"token": make_token()}, **address(f"192.0.2.{n}")
            )
        )
    refused = make_token()

    response = client.post("/_/oidc/mint-token", json={"token": refused}, **address("192.0.2.9"))

    assert_failure(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) > 0
    assert len(replay_keys(store)) == 2  # the refused token was not recorded as used
    assert_minted(mint(client, other_repository(make_token)))


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_replays_spend_nothing_of_the_publishers_budget(
    make_app: MakeApp, make_token: MakeToken, redis_url: str, storage: str
) -> None:
    # Anyone holding a used token could otherwise keep its publisher at 429.
    limits = {"rate_limit_storage": redis_url} if storage == "redis" else {}
    client = make_app(publisher_rate_limit="3/minute", **limits).test_client()
    used = make_token()
    assert_minted(mint(client, used))

    for n in range(5):
        replay = client.post("/_/oidc/mint-token", json={"token": used}, **address(f"192.0.2.{n}"))
        assert_failure(replay, 422, "invalid-reuse-token")

    assert_minted(mint(client, make_token()))
    assert_minted(mint(client, make_token()))
    assert_failure(mint(client, make_token()), 429, "rate-limited")  # 3 of 3 spent


def test_introspection_is_limited_per_client(
    make_app: MakeApp, make_token: MakeToken, tmp_path: Path
) -> None:
    clients = Clients(tmp_path / "clients.toml")
    client = make_app(clients_file=clients.path, introspect_rate_limit="2/minute").test_client()
    token = assert_minted(mint(client, make_token()))["token"]

    answers = [introspect(client, token, clients.basic("index")) for _ in range(3)]
    other_client = introspect(client, token, clients.basic("admin"))

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].get_json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in answers[2].headers
    assert other_client.status_code == 200


def test_revocations_are_limited_per_address_and_per_client(
    make_app: MakeApp, tmp_path: Path
) -> None:
    clients = Clients(tmp_path / "clients.toml")
    client = make_app(clients_file=clients.path, revoke_rate_limit="2/minute").test_client()

    holders = [client.post(REVOKE_PATH, data={"token": "pypi-unknown"}) for _ in range(3)]
    operator = [
        client.post(
            REVOCATIONS_PATH,
            json={"project": "demo-pkg"},
            headers=clients.bearer("operator"),
            **address(f"192.0.2.{number}"),
        )
        for number in range(1, 4)
    ]

    assert [answer.status_code for answer in holders] == [200, 200, 429]
    assert [answer.status_code for answer in operator] == [200, 200, 429]


def test_one_key_spelled_many_ways_from_many_addresses_has_one_budget(
    make_app: MakeApp, make_token: MakeToken, tmp_path: Path
) -> None:
    clients = Clients(tmp_path / "clients.toml")
    client = make_app(clients_file=clients.path, introspect_rate_limit="3/minute").test_client()
    token = assert_minted(mint(client, make_token()))["token"]
    secret = clients.secrets["index"]
    # Every spelling authenticates: each must not open a budget of its own.
    spellings = [
        clients.basic("index"),
        {"Authorization": f"Bearer {secret}"},
        {"Authorization": f"bearer {secret}"},
        {"Authorization": f"  Bearer   {secret} "},
    ]

    statuses = [
        client.post(
            INTROSPECT_PATH,
            data={"token": token},
            headers=headers,
            environ_base={"REMOTE_ADDR": f"192.0.2.{number}"},
        ).status_code
        for number, headers in enumerate(spellings, start=1)
    ]

    assert statuses == [200, 200, 200, 429]


def test_limits_shared_through_redis_hold_across_app_instances(
    make_app: MakeApp, make_token: MakeToken, redis_url: str
) -> None:
    first, second = (
        make_app(mint_rate_limit="2/minute", rate_limit_storage=redis_url).test_client()
        for _ in range(2)
    )

    statuses = [mint(app, make_token()).status_code for app in (first, second, first, second)]

    assert statuses == [200, 200, 429, 429]
