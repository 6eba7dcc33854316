"""The hot paths (mint and introspection below Flask) answer exactly as the Flask views do.

Every request is sent twice to one app: through its whole WSGI stack, where the hot
path answers it, and straight to Flask's own `wsgi_app`, where the view does. Status,
headers and body must match; a counter on Flask's dispatch proves which one answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from app.api.oidc import MAX_MINT_BODY_BYTES
from app.tokens.revocation import TokenIntrospector

from .conftest import MakeToken
from .exchange_api import LEGACY_MINT_PATH, MINT_PATH, assert_minted, post_chunked
from .oauth_api import INTROSPECT_PATH, Clients

# Per request, so they differ between the two answers of one case.
_VARYING_HEADERS = frozenset({"X-Request-ID"})


@dataclass(frozen=True)
class Sent:
    path: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"


@dataclass
class Sides:
    app: Flask
    flask_dispatches: int = 0

    def __post_init__(self) -> None:
        dispatch = self.app.full_dispatch_request

        def counted() -> Any:
            self.flask_dispatches += 1
            return dispatch()

        self.app.full_dispatch_request = counted  # type: ignore[method-assign]
        self.whole = Client(self.app)
        self.flask_only = Client(lambda environ, start: Flask.wsgi_app(self.app, environ, start))

    def send(self, client: Client, sent: Sent) -> TestResponse:
        return client.post(
            sent.path, data=sent.data, headers=sent.headers, content_type=sent.content_type
        )

    def hot(self, sent: Sent) -> TestResponse:
        before = self.flask_dispatches
        response = self.send(self.whole, sent)
        assert self.flask_dispatches == before, "Flask answered instead of the hot path"
        return response

    def flask(self, sent: Sent) -> TestResponse:
        before = self.flask_dispatches
        response = self.send(self.flask_only, sent)
        assert self.flask_dispatches == before + 1
        return response


def _seen(response: TestResponse, minted: bool = False) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING_HEADERS}
    body = json.loads(response.get_data())
    if minted and response.status_code == 200:
        # Each side minted its own token: compare what the client relies on.
        body = {key: type(value).__name__ for key, value in body.items()}
        headers.pop("Content-Length")
    return response.status_code, headers, body


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients.toml")


@pytest.fixture
def sides(make_app: Callable[..., Flask], clients: Clients) -> Sides:
    return Sides(make_app(clients_file=clients.path))


def _mint_body(token: str) -> bytes:
    return json.dumps({"token": token}).encode()


MINT_CASES: list[tuple[str, Callable[[MakeToken], Sent]]] = [
    ("valid", lambda make: Sent(MINT_PATH, _mint_body(make()))),
    ("legacy path", lambda make: Sent(LEGACY_MINT_PATH, _mint_body(make()))),
    # GitLab's documented curl -d labels the JSON form-encoded.
    (
        "JSON labelled as a form",
        lambda make: Sent(
            MINT_PATH, _mint_body(make()), content_type="application/x-www-form-urlencoded"
        ),
    ),
    ("blank body", lambda make: Sent(MINT_PATH, b" ")),
    ("not JSON", lambda make: Sent(MINT_PATH, b"{token")),
    ("not UTF-8", lambda make: Sent(MINT_PATH, b'{"token": "\xff"}')),
    ("no token", lambda make: Sent(MINT_PATH, b'{"tokens": "x"}')),
    ("token not a string", lambda make: Sent(MINT_PATH, b'{"token": 1}')),
    ("duplicate keys", lambda make: Sent(MINT_PATH, b'{"token": "a", "token": "b"}')),
    ("not a JWT", lambda make: Sent(MINT_PATH, _mint_body("not.a.jwt"))),
    ("wrong audience", lambda make: Sent(MINT_PATH, _mint_body(make(aud="elsewhere")))),
    ("unknown repository", lambda make: Sent(MINT_PATH, _mint_body(make(repository="o/r")))),
]


@pytest.mark.parametrize(("case", "build"), MINT_CASES, ids=[case for case, _ in MINT_CASES])
def test_mint_answers_as_the_flask_view_does(
    sides: Sides, make_token: MakeToken, case: str, build: Callable[[MakeToken], Sent]
) -> None:
    # Built twice: a valid token can be exchanged once only.
    hot, flask = sides.hot(build(make_token)), sides.flask(build(make_token))
    assert _seen(hot, minted=True) == _seen(flask, minted=True)


def test_a_replayed_token_is_refused_the_same_way(sides: Sides, make_token: MakeToken) -> None:
    sent = Sent(MINT_PATH, _mint_body(make_token()))
    assert sides.hot(sent).status_code == 200
    hot, flask = sides.hot(sent), sides.flask(sent)
    assert hot.status_code == 422
    assert _seen(hot) == _seen(flask)


def _form(**fields: str) -> bytes:
    return "&".join(f"{key}={value}" for key, value in fields.items()).encode()


INTROSPECTION_CASES: list[tuple[str, str | None, Callable[[str], bytes]]] = [
    ("active, Basic", "basic", lambda token: _form(token=token)),
    ("active, with a type hint", "basic", lambda token: _form(token=token, token_type_hint="x")),
    ("inactive", "basic", lambda token: _form(token=token[:-4])),
    ("Bearer", "bearer", lambda token: _form(token=token)),
    ("no credentials", None, lambda token: _form(token=token)),
    ("wrong secret", "wrong", lambda token: _form(token=token)),
    ("client without the scope", "operator", lambda token: _form(token=token)),
    ("no token", "basic", lambda token: _form(other="x")),
    ("empty token", "basic", lambda token: _form(token="")),
    ("too many fields", "basic", lambda token: "&".join(["a=b"] * 40).encode()),
    ("not UTF-8", "basic", lambda token: b"token=\xff"),
]


def _credentials(clients: Clients, kind: str | None) -> dict[str, str]:
    if kind is None:
        return {}
    if kind == "wrong":
        return {"Authorization": "Bearer tpc_wrong"}
    if kind == "operator":
        return clients.basic("operator")
    return clients.basic("index") if kind == "basic" else clients.bearer("index")


@pytest.fixture
def upload_token(sides: Sides, make_token: MakeToken) -> str:
    response = sides.hot(Sent(MINT_PATH, _mint_body(make_token())))
    return str(response.get_json()["token"])


@pytest.mark.parametrize(
    ("case", "credentials", "form"),
    INTROSPECTION_CASES,
    ids=[case for case, _, _ in INTROSPECTION_CASES],
)
def test_introspection_answers_as_the_flask_view_does(
    sides: Sides,
    clients: Clients,
    upload_token: str,
    case: str,
    credentials: str | None,
    form: Callable[[str], bytes],
) -> None:
    sent = Sent(
        INTROSPECT_PATH,
        form(upload_token),
        _credentials(clients, credentials),
        "application/x-www-form-urlencoded; charset=utf-8",
    )
    hot, flask = sides.hot(sent), sides.flask(sent)
    assert _seen(hot) == _seen(flask)
    assert hot.get_data() == flask.get_data()


def test_an_active_answer_is_byte_identical(
    sides: Sides, clients: Clients, upload_token: str
) -> None:
    sent = Sent(
        INTROSPECT_PATH,
        _form(token=upload_token),
        clients.basic("index"),
        "application/x-www-form-urlencoded",
    )
    hot = sides.hot(sent)
    assert hot.get_json()["active"] is True
    assert hot.get_data() == sides.flask(sent).get_data()


def test_rate_limits_are_shared_and_refuse_the_same_way(
    make_app: Callable[..., Flask], make_token: MakeToken
) -> None:
    sides = Sides(make_app(mint_rate_limit="2/minute"))
    first = Sent(MINT_PATH, _mint_body(make_token()))
    assert sides.hot(first).status_code == 200
    assert sides.flask(Sent(MINT_PATH, _mint_body(make_token()))).status_code == 200
    # One budget for both: the third request is over it, whichever answers.
    hot, flask = sides.hot(first), sides.flask(first)
    assert hot.status_code == 429
    assert "Retry-After" in hot.headers
    assert _seen(hot) == _seen(flask)


def test_an_unexpected_error_is_a_logged_500_in_the_family_shape(
    sides: Sides,
    clients: Clients,
    upload_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: TokenIntrospector, raw_token: str) -> str | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(TokenIntrospector, "introspect", broken)
    sent = Sent(
        INTROSPECT_PATH,
        _form(token=upload_token),
        clients.basic("index"),
        "application/x-www-form-urlencoded",
    )
    hot, flask = sides.hot(sent), sides.flask(sent)
    assert hot.status_code == 500
    assert hot.get_json()["error"] == "server_error"
    assert _seen(hot) == _seen(flask)
    tracebacks = [r for r in caplog.records if r.exc_info and "unhandled error" in r.getMessage()]
    assert len(tracebacks) == 2
    assert upload_token not in caplog.text


HANDED_TO_FLASK: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("GET on the mint path", lambda: {"method": "GET", "path": MINT_PATH}),
    (
        "multipart introspection",
        lambda: {
            "path": INTROSPECT_PATH,
            "data": {"token": "x"},
            "content_type": "multipart/form-data",
        },
    ),
    (
        "mint over the size limit",
        lambda: {"path": MINT_PATH, "data": b" " * (MAX_MINT_BODY_BYTES + 1)},
    ),
    ("unknown path", lambda: {"path": "/_/oidc/mint-tokens", "data": b"{}"}),
]


@pytest.mark.parametrize(
    ("case", "request_"), HANDED_TO_FLASK, ids=[case for case, _ in HANDED_TO_FLASK]
)
def test_other_requests_are_handed_to_flask(
    sides: Sides, case: str, request_: Callable[[], dict[str, Any]]
) -> None:
    before = sides.flask_dispatches
    response = sides.whole.open(**{"method": "POST", **request_()})
    assert sides.flask_dispatches == before + 1
    assert response.status_code >= 400
    assert response.headers["Content-Type"] == "application/json"


def test_a_chunked_mint_is_handed_to_flask(sides: Sides, make_token: MakeToken) -> None:
    response = post_chunked(sides.app, MINT_PATH, _mint_body(make_token()))
    assert sides.flask_dispatches == 1
    assert_minted(response)
