"""Item 11 of "Core": malformed requests get a clear status and code, never a 500.

Every answer on /_/oidc/ is the contract envelope, JSON, including 404, 405 and 413.
"""

from __future__ import annotations

import io
import json

import pytest
import redis
from flask.testing import FlaskClient
from gunicorn.http.errors import NoMoreData
from werkzeug.test import Client

from .conftest import MakeClaims, MakeToken, SignRaw
from .exchange_api import (
    LEGACY_MINT_PATH,
    MINT_PATH,
    assert_failure,
    assert_minted,
    mint,
    post_chunked,
)
from .handmade import b64url


@pytest.fixture
def client(shared_client: FlaskClient) -> FlaskClient:
    # One app for the module: these tests only send tokens (see `shared_client`).
    return shared_client


MAX_TOKEN_BYTES = 16 * 1024

# (id, raw body) -> 422 invalid-payload
MALFORMED_BODIES: list[tuple[str, bytes]] = [
    ("empty-body", b""),
    ("not-json", b"token=eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
    ("json-list", b'["eyJhbGciOiJSUzI1NiJ9.e30.c2ln"]'),
    ("json-string", b'"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"'),
    ("json-null", b"null"),
    ("no-token", b'{"jwt": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}'),
    ("token-not-a-string", b'{"token": 5}'),
    ("token-null", b'{"token": null}'),
    ("token-list", b'{"token": ["eyJhbGciOiJSUzI1NiJ9.e30.c2ln"]}'),
    ("token-object", b'{"token": {"raw": "x"}}'),
    ("token-empty", b'{"token": ""}'),
    ("body-not-utf8", b'{"token": "\xff\xfe"}'),
    ("body-lone-surrogate-token", b'{"token": "\\ud800.e30.c2ln"}'),
    ("deeply-nested", b"[" * 5000 + b"]" * 5000),
    ("truncated-json", b'{"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"'),
]


@pytest.mark.parametrize(
    "body", [body for _, body in MALFORMED_BODIES], ids=[name for name, _ in MALFORMED_BODIES]
)
def test_malformed_body_is_invalid_payload(client: FlaskClient, body: bytes) -> None:
    response = client.post(MINT_PATH, data=body, content_type="application/json")
    assert_failure(response, 422, "invalid-payload")


def _segment(value: bytes) -> str:
    return b64url(value)


HEADER = _segment(b'{"alg":"RS256","typ":"JWT","kid":"key-1"}')
PAYLOAD = _segment(b'{"iss":"https://127.0.0.1"}')
SIGNATURE = _segment(b"\x01" * 256)
JSON_STRING = _segment(b'"x"')
NOT_UTF8 = _segment(b'{"iss": "\xff\xfe"}')

# (id, token) -> 422 invalid-payload: not a JWT that could be verified at all
NOT_JWTS: list[tuple[str, str]] = [
    ("one-part", HEADER),
    ("two-parts", f"{HEADER}.{PAYLOAD}"),
    ("four-parts", f"{HEADER}.{PAYLOAD}.{SIGNATURE}.{SIGNATURE}"),
    ("empty-header", f".{PAYLOAD}.{SIGNATURE}"),
    ("empty-payload", f"{HEADER}..{SIGNATURE}"),
    ("only-dots", ".."),
    ("bad-base64-characters", f"{HEADER}.{PAYLOAD[:-2]}!*.{SIGNATURE}"),
    ("standard-base64-alphabet", f"{HEADER}.{PAYLOAD}+/.{SIGNATURE}"),
    ("base64-padding", f"{HEADER}=.{PAYLOAD}.{SIGNATURE}"),
    ("impossible-base64-length", f"{HEADER}.{PAYLOAD}.{SIGNATURE}A"),
    ("whitespace-around", f" {HEADER}.{PAYLOAD}.{SIGNATURE} "),
    ("non-ascii", f"{HEADER}.{PAYLOAD}é.{SIGNATURE}"),
    ("header-not-json", f"{_segment(b'not json')}.{PAYLOAD}.{SIGNATURE}"),
    ("header-json-list", f"{_segment(b'[1]')}.{PAYLOAD}.{SIGNATURE}"),
    ("payload-not-json", f"{HEADER}.{_segment(b'{iss:1}')}.{SIGNATURE}"),
    ("payload-json-string", f"{HEADER}.{JSON_STRING}.{SIGNATURE}"),
    ("payload-not-utf8", f"{HEADER}.{NOT_UTF8}.{SIGNATURE}"),
    ("oversized", f"{HEADER}.{'A' * (MAX_TOKEN_BYTES + 1)}.{SIGNATURE}"),
]


@pytest.mark.parametrize(
    "token", [token for _, token in NOT_JWTS], ids=[name for name, _ in NOT_JWTS]
)
def test_token_that_is_not_a_jwt_is_invalid_payload(client: FlaskClient, token: str) -> None:
    assert_failure(mint(client, token), 422, "invalid-payload")


def test_duplicate_claim_in_a_correctly_signed_payload_is_refused(
    client: FlaskClient, make_claims: MakeClaims, sign_raw: SignRaw, store: redis.Redis
) -> None:
    # Two parsers could read two owner IDs from this token; the last one matches the
    # publisher, so only the duplicate rule can refuse it.
    text = json.dumps(make_claims(repository_owner_id="65"))
    payload = text[:-1] + ', "repository_owner_id": "65"}'
    text_first_wrong = text.replace('"repository_owner_id": "65"', '"repository_owner_id": "666"')
    forged = text_first_wrong[:-1] + ', "repository_owner_id": "65"}'
    for duplicated in (payload, forged):
        assert_failure(mint(client, sign_raw(duplicated.encode())), 422, "invalid-payload")
    assert list(store.scan_iter(match="trustpub:jti:*")) == []
    assert_minted(mint(client, sign_raw(text.encode())))


def test_duplicate_header_parameter_is_refused(
    client: FlaskClient, make_claims: MakeClaims, sign_raw: SignRaw
) -> None:
    header = b'{"alg": "none", "typ": "JWT", "kid": "key-1", "alg": "RS256"}'
    assert_failure(mint(client, sign_raw(make_claims(), header)), 422, "invalid-payload")


def test_lone_surrogate_in_a_claim_is_refused(
    client: FlaskClient, make_claims: MakeClaims, sign_raw: SignRaw
) -> None:
    text = json.dumps(make_claims()).replace('"actor": "octocat"', '"actor": "\\ud800"')
    assert "\\ud800" in text
    assert_failure(mint(client, sign_raw(text.encode())), 422, "invalid-payload")


@pytest.mark.parametrize(
    ("size", "chunked"),
    [
        (20 * 1024, False),
        (64 * 1024 + 1, False),
        (1024 * 1024, False),
        (20 * 1024, True),
        (1024 * 1024, True),
    ],
    ids=["20KiB", "64KiB+1", "1MiB", "20KiB-chunked", "1MiB-chunked"],
)
def test_oversized_body_is_413_in_the_envelope(
    client: FlaskClient, size: int, chunked: bool
) -> None:
    body = b'{"token": "' + b"A" * size + b'"}'
    if chunked:
        response = post_chunked(client.application, MINT_PATH, body)
    else:
        response = client.post(MINT_PATH, data=body, content_type="application/json")
    assert_failure(response, 413, "payload-too-large")


def test_chunked_body_of_normal_size_is_read(client: FlaskClient, make_token: MakeToken) -> None:
    body = json.dumps({"token": make_token()}).encode()
    assert_minted(post_chunked(client.application, MINT_PATH, body))


class _EndsInsideAChunk(io.RawIOBase):
    """gunicorn's chunked body when the connection ends inside a chunk."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise NoMoreData()


@pytest.mark.parametrize("path", [MINT_PATH, "/_/oidc/explain"], ids=["mint", "explain"])
def test_chunked_body_broken_off_is_invalid_payload(client: FlaskClient, path: str) -> None:
    # NoMoreData is an OSError: werkzeug answers it with its own 400 "bad-request", a
    # code the contract does not have, where a hot-path body cut short gets this one.
    def chunked(environ: dict[str, object], start_response: object) -> object:
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input"] = _EndsInsideAChunk()
        return client.application(environ, start_response)  # type: ignore[arg-type]

    response = Client(chunked).post(
        path,
        data=b'{"tok',
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_failure(response, 422, "invalid-payload")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", MINT_PATH),
        ("PUT", MINT_PATH),
        ("DELETE", MINT_PATH),
        ("GET", LEGACY_MINT_PATH),
        ("POST", "/_/oidc/audience"),
    ],
    ids=["GET-mint", "PUT-mint", "DELETE-mint", "GET-alias", "POST-audience"],
)
def test_wrong_method_is_405_in_the_envelope(client: FlaskClient, method: str, path: str) -> None:
    assert_failure(client.open(path, method=method), 405, "method-not-allowed")


def test_405_names_the_allowed_methods(client: FlaskClient) -> None:
    # RFC 9110 §15.5.6: a 405 response MUST carry Allow.
    response = client.get(MINT_PATH)
    assert response.status_code == 405
    assert "POST" in response.headers.get("Allow", "")


def test_unknown_path_under_oidc_is_404_in_the_envelope(client: FlaskClient) -> None:
    assert_failure(client.post("/_/oidc/gitlab/mint-token"), 404, "not-found")
