"""Item 12 of "Core": Redis dies mid-run. Minting fails closed with 503 and Retry-After
(never a token without the replay check), readiness says so, and both recover when
Redis is back on the same address.
"""

from __future__ import annotations

import time

from flask.testing import FlaskClient
from support.redis_server import RedisServer

from .conftest import MakeApp, MakeToken
from .exchange_api import (
    assert_failure,
    assert_minted,
    mint,
    replay_keys,
    token_past_the_epoch,
)


def test_exchange_fails_closed_while_redis_is_down_and_recovers(
    client: FlaskClient, redis_server: RedisServer, make_token: MakeToken
) -> None:
    exchanged_before = make_token()
    assert_minted(mint(client, exchanged_before))
    assert client.get("/readyz").status_code == 200

    redis_server.kill()
    token_during_outage = make_token()
    for _ in range(2):  # the pooled connection is dead, then a new one is refused
        started = time.monotonic()
        response = mint(client, token_during_outage)
        assert_failure(response, 503, "store-unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert time.monotonic() - started < 3  # fails fast, does not hang a worker
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["error"]["code"] == "store-unavailable"
    assert int(ready.headers["Retry-After"]) > 0

    redis_server.restart()  # same port, empty data set
    # The restarted store is empty: its new epoch begins at the next exchange, and a
    # token it cannot tell from one exchanged before the loss is refused: one not issued
    # more than the leeway and the clock skew after the epoch began (app.exchange).
    assert_failure(mint(client, make_token()), 422, "invalid-reuse-token")
    with redis_server.client() as store:
        fresh = token_past_the_epoch(make_token, store)
    assert_minted(mint(client, fresh))
    assert client.get("/readyz").status_code == 200
    store = redis_server.client()
    try:
        assert len(replay_keys(store)) == 2
    finally:
        store.close()
    # The new store records exchanges again: the same token is not minted twice.
    assert_failure(mint(client, fresh), 422, "invalid-reuse-token")
    # Its replay record died with the old data set, yet the token exchanged before the
    # loss is still refused: it predates the new store.
    assert_failure(mint(client, exchanged_before), 422, "invalid-reuse-token")


def test_app_starts_while_redis_is_down_and_serves_once_it_is_back(
    redis_server: RedisServer, make_app: MakeApp, make_token: MakeToken
) -> None:
    redis_server.kill()
    client = make_app().test_client()
    assert_failure(mint(client, make_token()), 503, "store-unavailable")
    assert client.get("/readyz").status_code == 503
    # Liveness is not readiness: the process is fine, only its store is missing.
    assert client.get("/healthz").status_code == 200

    redis_server.restart()
    assert client.get("/readyz").status_code == 200
    assert_failure(mint(client, make_token()), 422, "invalid-reuse-token")  # see above
    with redis_server.client() as store:
        assert_minted(mint(client, token_past_the_epoch(make_token, store)))
