"""Mint and introspection answered below Flask's request machinery.

Every CI job mints once and an index introspects every uploaded file: these two
endpoints are nearly all of trustpub's traffic. Flask's request context, routing and
response objects cost about 190 us of CPU per request here, more than an introspection's
own work (docs/performance.md). This middleware answers the common shape of these two
requests itself, with the same functions as their Flask views (rate limits, client
authentication, body parsing, the answer and the error rendering), and hands every other
request to Flask untouched: other methods and paths, bodies without a Content-Length
(chunked) or over the limit, introspection forms that are not urlencoded.
`tests/integration/test_hot_paths.py` sends the same requests both ways and compares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gunicorn.http.errors import ParseException

from app.api.auth import client_with_scope
from app.api.errors import answer_error, answer_unexpected, unreadable_body
from app.api.limits import RateCheck
from app.api.oauth import URLENCODED, introspection_answer, token_from_urlencoded
from app.api.observe import StartResponse, WSGIApp, name_request
from app.api.oidc import MAX_MINT_BODY_BYTES, mint_answer, token_from_json
from app.api.services import Services
from app.api.wire import JSON_TYPE, status_line
from app.errors import TrustpubError

# environ, body -> the 200 answer's body, or a TrustpubError.
Answer = Callable[[Mapping[str, Any], bytes], bytes]


@dataclass(frozen=True)
class _Route:
    endpoint: str
    answer: Answer
    max_body_bytes: int
    # The one Content-Type this path handles itself (None: any, the body is parsed as JSON).
    content_type: str | None


class HotPaths:
    def __init__(
        self,
        app: WSGIApp,
        services: Services,
        rate_checks: Mapping[str, RateCheck],
        max_request_bytes: int,
    ) -> None:
        self._app = app
        self._services = services
        self._rate_checks = rate_checks
        mint = _Route("oidc.mint_token", self._mint, MAX_MINT_BODY_BYTES, None)
        self._routes = {
            "/_/oidc/mint-token": mint,
            "/_/oidc/github/mint-token": mint,
            "/oauth/introspect": _Route(
                "oauth.introspect", self._introspect, max_request_bytes, URLENCODED
            ),
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        route = self._routes.get(path) if environ.get("REQUEST_METHOD") == "POST" else None
        if route is None:
            return self._app(environ, start_response)
        length = _content_length(environ)
        if (
            length is None
            or length > route.max_body_bytes
            or (route.content_type is not None and _mimetype(environ) != route.content_type)
        ):
            return self._app(environ, start_response)

        name_request(environ, route.endpoint)
        try:
            self._rate_checks[route.endpoint](environ)
            body = _read_body(environ, length, path)
            answer = route.answer(environ, body)
            status, headers = 200, [("Cache-Control", "no-store")]
        except TrustpubError as error:
            status, headers, answer = answer_error(path, error)
        except Exception:
            status, headers, answer = answer_unexpected("POST", path)
        start_response(
            status_line(status),
            [("Content-Type", JSON_TYPE), ("Content-Length", str(len(answer))), *headers],
        )
        return [answer]

    def _mint(self, environ: Mapping[str, Any], body: bytes) -> bytes:
        return mint_answer(self._services.exchange, token_from_json(body))

    def _introspect(self, environ: Mapping[str, Any], body: bytes) -> bytes:
        client_with_scope(self._services.clients, environ.get("HTTP_AUTHORIZATION"), "introspect")
        return introspection_answer(self._services.introspector, token_from_urlencoded(body))


def _read_body(environ: Mapping[str, Any], length: int, path: str) -> bytes:
    try:
        body: bytes = environ["wsgi.input"].read(length) if length else b""
    except (OSError, ParseException):
        # The client closed the connection or sent a body gunicorn cannot parse.
        raise unreadable_body(path) from None
    return body


def _content_length(environ: Mapping[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _mimetype(environ: Mapping[str, Any]) -> str:
    return str(environ.get("CONTENT_TYPE", "")).partition(";")[0].strip().lower()
