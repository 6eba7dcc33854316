"""Item 10 of "Core": exp, iat and nbf with one 60 s leeway, and a capped lifetime.

The store's epoch is an hour old (the `redis_url` fixture), so back-dated tokens are
judged by their times alone, not refused as older than the store.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from support.claims import REMOVE

from .conftest import MakeToken
from .exchange_api import assert_failure, assert_minted, mint, replay_keys


@pytest.fixture
def client(shared_client: FlaskClient) -> FlaskClient:
    # One app for the module: these tests only send tokens (see `shared_client`).
    return shared_client


# (id, claim times relative to now, accepted?)
TIMES: list[tuple[str, dict[str, Any], bool]] = [
    ("fresh", {"iat": 0, "nbf": -5, "exp": 300}, True),
    ("expired-beyond-leeway", {"iat": -370, "nbf": -375, "exp": -70}, False),
    ("expired-long-ago", {"iat": -86_400, "nbf": REMOVE, "exp": -86_100}, False),
    ("expired-within-leeway", {"iat": -330, "nbf": -335, "exp": -30}, True),
    ("iat-in-future-beyond-leeway", {"iat": 90, "nbf": REMOVE, "exp": 390}, False),
    ("iat-in-future-within-leeway", {"iat": 30, "nbf": REMOVE, "exp": 330}, True),
    ("nbf-in-future-beyond-leeway", {"iat": 0, "nbf": 90, "exp": 300}, False),
    ("nbf-in-future-within-leeway", {"iat": 0, "nbf": 30, "exp": 300}, True),
    ("no-nbf", {"iat": 0, "nbf": REMOVE, "exp": 300}, True),
    ("lifetime-900", {"iat": -10, "nbf": -10, "exp": 890}, True),
    ("lifetime-901", {"iat": -10, "nbf": -10, "exp": 891}, False),
    ("lifetime-a-day", {"iat": -10, "nbf": -10, "exp": 86_390}, False),
    ("exp-equals-iat", {"iat": -10, "nbf": -10, "exp": -10}, False),
    ("exp-before-iat", {"iat": 0, "nbf": -5, "exp": -5}, False),
]


@pytest.mark.parametrize(
    ("times", "accepted"),
    [(times, accepted) for _, times, accepted in TIMES],
    ids=[name for name, _, _ in TIMES],
)
def test_token_times(
    client: FlaskClient,
    make_token: MakeToken,
    store: redis.Redis,
    times: dict[str, Any],
    accepted: bool,
) -> None:
    now = int(time.time())
    claims = {name: now + value if value is not REMOVE else REMOVE for name, value in times.items()}
    response = mint(client, make_token(**claims))
    if accepted:
        assert_minted(response)
        # Even a token in its leeway window gets a replay record that outlives it.
        (key,) = replay_keys(store)
        assert store.ttl(key) >= claims["exp"] + 60 - int(time.time())
    else:
        assert_failure(response, 422, "invalid-token")
        assert replay_keys(store) == []
