"""How the integration tests talk to the exchange API and look at its store.

Assertions are on what a client or an operator can see: the HTTP status, the
contract envelope, the upload token, and the records in Redis.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis
from flask import Flask
from flask.testing import FlaskClient
from support.claims import gitlab_claims, unverified_claims
from support.oidc_issuer import OIDCIssuer
from werkzeug.test import Client, TestResponse

from app.clocks import CLOCK_SKEW_SECONDS
from app.oidc.verify import LEEWAY_SECONDS

AUDIENCE = "trustpub-test.example"
MINT_PATH = "/_/oidc/mint-token"
LEGACY_MINT_PATH = "/_/oidc/github/mint-token"
AUDIENCE_PATH = "/_/oidc/audience"
FAILURE_MESSAGE = "Token request failed"

# Replay records are the only thing the core exchange writes; one pattern finds them.
REPLAY_KEY_PATTERN = "trustpub:jti:*"
EPOCH_KEY = "trustpub:epoch"

T = TypeVar("T")

GITLAB_PROJECT = "group/sub/project"


def gitlab_token(issuer: OIDCIssuer, ref_path: str = "refs/heads/main", **overrides: Any) -> str:
    """A token of `issuer` shaped like GitLab's, its CI file URI on the issuer's own host."""
    host = issuer.url.removeprefix("https://")
    uri = f"{host}/{GITLAB_PROJECT}//.gitlab-ci.yml@{ref_path}"
    overrides.setdefault("ci_config_ref_uri", uri)
    return issuer.sign(gitlab_claims(issuer.url, AUDIENCE, ref_path=ref_path, **overrides))


def mint(client: FlaskClient, token: str, path: str = MINT_PATH) -> TestResponse:
    return client.post(path, json={"token": token})


def post_chunked(app: Flask, path: str, body: bytes) -> TestResponse:
    """POST `body` as gunicorn hands over a chunked request: no Content-Length (werkzeug's
    test client always adds one), a terminated stream."""

    def without_length(environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop("CONTENT_LENGTH", None)
        return app(environ, start_response)

    return Client(without_length).post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def assert_failure(response: TestResponse, status: int, code: str | frozenset[str]) -> str:
    """Assert the contract's error envelope with one error `code`; return its description.

    `code` may be a set where the contract allows either of two codes.

    The publish action prints `code` + `description` of every item and crashes when
    `errors` is missing or an item lacks a field, so the whole shape is checked.
    """
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json(silent=True)
    assert isinstance(body, dict), f"not a JSON object: {response.get_data(as_text=True)!r}"
    assert body.get("message") == FAILURE_MESSAGE, body
    assert set(body) == {"message", "errors"}, body
    errors = body["errors"]
    assert isinstance(errors, list), body
    assert len(errors) == 1, body
    (error,) = errors
    assert set(error) == {"code", "description"}, body
    assert error["code"] in (code if isinstance(code, frozenset) else {code}), body
    description = error["description"]
    assert isinstance(description, str), body
    assert description, body
    return description


def assert_minted(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict), body
    assert body["success"] is True, body
    assert isinstance(body["token"], str), body
    assert body["token"].startswith("pypi-"), body
    assert type(body["expires"]) is int, body
    return body


def upload_token_projects(minted: dict[str, Any]) -> list[str]:
    """The `projects` of a minted upload token (signature checked in test_happy_path)."""
    projects: list[str] = unverified_claims(minted["token"])["projects"]
    return projects


def token_past_the_epoch(make_token: Callable[..., str], store: redis.Redis) -> str:
    """A token a store's epoch, begun within the last second, cannot have seen: dated the
    leeway ahead of a later second (as far ahead as an issuer's clock may be), the epoch
    dated back by the clock skew (as far as a replica's clock may be ahead of Redis's)
    rather than waiting that long."""
    epoch_id, _, began = store.get(EPOCH_KEY).decode().rpartition(":")
    store.set(EPOCH_KEY, f"{epoch_id}:{int(began) - CLOCK_SKEW_SECONDS}")
    time.sleep(1.05)
    return make_token(now=int(time.time()) + LEEWAY_SECONDS)


def replay_keys(store: redis.Redis) -> list[bytes]:
    return sorted(store.scan_iter(match=REPLAY_KEY_PATTERN))


def run_together(count: int, task: Callable[[int], T]) -> list[T]:
    """Run `task(0..count-1)` on `count` threads released at once by a barrier."""
    barrier = threading.Barrier(count)

    def worker(index: int) -> T:
        barrier.wait(timeout=10)
        return task(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


def run_concurrently(app: Flask, count: int, request: Callable[[FlaskClient], T]) -> list[T]:
    """Send `request` from `count` threads at once, each with its own test client."""
    clients = [app.test_client() for _ in range(count)]
    return run_together(count, lambda index: request(clients[index]))
