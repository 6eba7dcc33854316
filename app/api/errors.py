"""The one place where errors become HTTP responses, per endpoint family.

- `/_/oidc/...`: the PyPI contract envelope `{"message", "errors": [{"code", "description"}]}`,
  which the publish action prints and crashes without.
- `/oauth/...`: RFC 6749 `{"error", "error_description"}`, plus `WWW-Authenticate` on 401.
- everything else: `{"error": {"code", "description"}}`.
Unexpected exceptions are logged with their traceback and answered with a generic 500
in the family's shape: never a traceback or an HTML page.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected, HTTPException

from app.api.wire import JSON_TYPE, json_body
from app.errors import InvalidPayload, InvalidRequest, PayloadTooLarge, TrustpubError

log = logging.getLogger(__name__)

OIDC_PREFIX = "/_/oidc/"
OAUTH_PREFIX = "/oauth/"


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(TrustpubError, _render_trustpub_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(ParseException, _render_unreadable_body)
    app.register_error_handler(Exception, _render_unexpected)


def error_body(path: str, code: str, description: str, status: int, oauth_error: str) -> bytes:
    document: dict[str, object]
    if path.startswith(OAUTH_PREFIX):
        if status >= 500 and oauth_error == "invalid_request":
            oauth_error = "server_error"
        document = {"error": oauth_error, "error_description": description}
    elif path.startswith(OIDC_PREFIX):
        document = {
            "message": "Token request failed",
            "errors": [{"code": code, "description": description}],
        }
    else:
        document = {"error": {"code": code, "description": description}}
    return json_body(document)


def error_headers(status: int, retry_after: int | None) -> list[tuple[str, str]]:
    headers = [("Cache-Control", "no-store")]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    if status == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="trustpub", Bearer realm="trustpub"'))
    return headers


# Status, headers and body: what the hot paths send as they are, and Flask as a Response.
Answer = tuple[int, list[tuple[str, str]], bytes]


def answer_error(path: str, error: TrustpubError) -> Answer:
    """The answer to a `TrustpubError` (a 5xx is logged with its cause)."""
    if error.status >= 500:
        log.warning("%s: %s", error.code, error.description, exc_info=error.__cause__)
    body = error_body(path, error.code, error.description, error.status, error.oauth_error)
    return error.status, error_headers(error.status, error.retry_after), body


def answer_unexpected(method: str, path: str) -> Answer:
    """Call from an `except` block: logs the traceback, answers the generic 500."""
    # repr(): the path is the client's, and a decoded %0a must not start a line of its own.
    log.exception("unhandled error on %s %r", method, path)
    return 500, error_headers(500, None), error_body(path, *_INTERNAL, 500, "invalid_request")


_INTERNAL = ("internal-error", "internal error; it has been logged")

# Statuses the HTTP server (gunicorn) answers itself, before the app sees the request.
# Codes spelled out, not made from http.HTTPStatus's phrase: Python 3.13 renamed 414
# after RFC 9110 ("URI Too Long"), and a documented code must not change with it.
_SERVER_REFUSALS = {
    400: ("bad-request", "the request is not valid HTTP/1.1"),
    403: ("forbidden", "the request is forbidden"),
    414: ("request-uri-too-long", "the request line is too long"),
    417: ("expectation-failed", "the request's Expect header cannot be met"),
    431: (
        "request-header-fields-too-large",
        "the request has too many header fields, or one too large",
    ),
    501: ("not-implemented", "the request's transfer coding is not supported"),
}


def answer_server_refusal(path: str, status: int) -> Answer:
    """The answer to a request the HTTP server refused or could not serve, with `status`:
    what it is, never the request's own text (the client's, which may hold a credential)."""
    code, description = _SERVER_REFUSALS.get(status) or _INTERNAL
    if status not in _SERVER_REFUSALS:
        status = 500
    return (
        status,
        error_headers(status, None),
        error_body(path, code, description, status, "invalid_request"),
    )


def _response(answer: Answer) -> Response:
    status, headers, body = answer
    response = Response(body, status=status, mimetype=JSON_TYPE)
    response.headers.extend(headers)
    return response


def _render_trustpub_error(error: TrustpubError) -> Response:
    return _response(answer_error(request.path, error))


def _render_http_exception(error: HTTPException) -> Response:
    if error.response is not None:
        # An exception that carries its response (the rate limiter's 429) was rendered
        # by us already.
        return error.response  # type: ignore[return-value]
    if isinstance(error, ClientDisconnected):
        # werkzeug's answer to an OSError while reading the body (gunicorn's NoMoreData:
        # the connection ended inside a chunk): the same as any body that cannot be read.
        return _render_unreadable_body(error)
    status = error.code or 500
    if status == 413:
        return _render_trustpub_error(PayloadTooLarge("request body is too large"))
    code = (error.name or "error").lower().replace(" ", "-")
    body = error_body(request.path, code, error.description or code, status, "invalid_request")
    response = _response((status, error_headers(status, None), body))
    # Keep what the HTTP error says beyond its body, such as `Allow` on a 405.
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def unreadable_body(path: str) -> TrustpubError:
    """A body the client broke off or framed badly: its fault, answered in its family's words."""
    description = "the request body could not be read"
    if path.startswith(OIDC_PREFIX):
        return InvalidPayload(description)
    return InvalidRequest(description)


def _render_unreadable_body(error: Exception) -> Response:
    # A chunked body gunicorn cannot parse (a bad chunk size, a missing terminator: not
    # OSErrors, so they reach us as themselves), or one that ended early (an OSError,
    # which werkzeug raises as ClientDisconnected).
    return _render_trustpub_error(unreadable_body(request.path))


def _render_unexpected(error: Exception) -> Response:
    return _response(answer_unexpected(request.method, request.path))
