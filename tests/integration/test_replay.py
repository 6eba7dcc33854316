"""Item 6 of "Core": one OIDC token mints at most one upload token, even concurrently."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from support.claims import unverified_claims
from support.oidc_issuer import OIDCIssuer
from support.redis_server import RedisServer

from app.clocks import CLOCK_SKEW_SECONDS

from .conftest import MakeApp, MakeClaims, MakeToken
from .exchange_api import (
    assert_failure,
    assert_minted,
    mint,
    replay_keys,
    run_concurrently,
)
from .policies import github_publisher
from .redis_watch import commands_sent

LEEWAY = 60


@pytest.mark.parametrize(
    ("first_path", "second_path"),
    [
        ("/_/oidc/mint-token", "/_/oidc/mint-token"),
        ("/_/oidc/mint-token", "/_/oidc/github/mint-token"),
    ],
    ids=["same-path", "via-the-alias"],
)
def test_second_exchange_of_one_token_is_refused(
    client: FlaskClient, make_token: MakeToken, first_path: str, second_path: str
) -> None:
    token = make_token()
    assert_minted(mint(client, token, first_path))
    assert_failure(mint(client, token, second_path), 422, "invalid-reuse-token")


def test_replay_is_refused_by_another_replica(make_app: MakeApp, make_token: MakeToken) -> None:
    # Two app instances on one Redis, as two gunicorn workers or two pods would be.
    token = make_token()
    assert_minted(mint(make_app().test_client(), token))
    assert_failure(mint(make_app().test_client(), token), 422, "invalid-reuse-token")


@pytest.mark.parametrize("threads", [2, 8], ids=["2-threads", "8-threads"])
def test_concurrent_exchanges_of_one_token_mint_once(
    app: Flask, make_token: MakeToken, store: redis.Redis, threads: int
) -> None:
    token = make_token()
    responses = run_concurrently(app, threads, lambda client: mint(client, token))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [422] * (threads - 1)
    for response in responses:
        if response.status_code == 422:
            assert_failure(response, 422, "invalid-reuse-token")
    assert len(replay_keys(store)) == 1


def test_replay_record_outlives_the_token_acceptance_window(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis
) -> None:
    token = make_token()
    expires_at = unverified_claims(token)["exp"]
    assert_minted(mint(client, token))
    now = int(time.time())
    (key,) = replay_keys(store)
    ttl = store.ttl(key)
    # The token is accepted until exp + leeway by any replica's clock: the record must last
    # at least that long, and not much longer (the store must not grow without bound).
    assert ttl >= expires_at + LEEWAY + CLOCK_SKEW_SECONDS - now
    assert ttl <= expires_at + LEEWAY + CLOCK_SKEW_SECONDS - now + 5


def test_the_replay_record_holds_the_upload_token_it_became(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis
) -> None:
    # The claimant: a claim this exchange sends again after a lost reply is its own.
    minted = assert_minted(mint(client, make_token()))

    (key,) = replay_keys(store)
    assert store.get(key) == unverified_claims(minted["token"])["jti"].encode()


def test_distinct_tokens_get_distinct_records(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis
) -> None:
    for _ in range(3):
        assert_minted(mint(client, make_token()))
    assert len(replay_keys(store)) == 3


def test_same_jti_from_another_issuer_is_another_token(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
    store: redis.Redis,
) -> None:
    other = make_oidc_issuer("/enterprise")
    app = make_app(
        [github_publisher(oidc_issuer.url), github_publisher(other.url)],
        issuers=[oidc_issuer.url, other.url],
    )
    client = app.test_client()
    claims = make_claims(jti="shared-jti")
    assert_minted(mint(client, oidc_issuer.sign(claims)))
    assert_minted(mint(client, other.sign({**claims, "iss": other.url})))
    assert len(replay_keys(store)) == 2


@pytest.mark.parametrize(
    "overrides",
    [{"repository_owner_id": "4242"}, {"environment": "staging"}],
    ids=["owner-mismatch", "environment-mismatch"],
)
def test_token_that_matched_nothing_is_not_burned(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    store: redis.Redis,
    overrides: dict[str, str],
) -> None:
    token = make_token(**overrides)
    assert_failure(mint(make_app().test_client(), token), 422, "invalid-publisher")
    assert replay_keys(store) == []

    # The maintainer fixes the policy and the service restarts: the same token works.
    fixed = github_publisher(oidc_issuer.url, environment=None, repository_owner_id=None)
    fixed["repository_owner_id"] = overrides.get("repository_owner_id", "65")
    assert_minted(mint(make_app([fixed]).test_client(), token))
    assert len(replay_keys(store)) == 1


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "someone-else"}, {"exp": 1}],
    ids=["wrong-audience", "expired"],
)
def test_token_that_did_not_verify_is_not_burned(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis, overrides: dict[str, object]
) -> None:
    assert_failure(mint(client, make_token(**overrides)), 422, "invalid-token")
    assert replay_keys(store) == []


def test_a_mint_costs_one_redis_round_trip_audit_record_included(
    client: FlaskClient, make_token: MakeToken, store: redis.Redis, redis_server: RedisServer
) -> None:
    assert_minted(mint(client, make_token()))  # warm: connected, epoch read
    token = make_token()

    sent = commands_sent(redis_server, lambda: assert_minted(mint(client, token)))

    # One command from the app, an EVALSHA: the clock check, the epoch, the replay claim
    # and the audit record (XADD) run inside it.
    assert [command.name for command in sent if not command.by_script] == ["EVALSHA"]
    assert {command.name for command in sent if command.by_script} == {"TIME", "GET", "SET", "XADD"}
    (record,) = store.xrevrange("trustpub:audit", count=1)
    assert record[1][b"action"] == b"mint"
