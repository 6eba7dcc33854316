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

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from app.errors import PayloadTooLarge, TrustpubError

log = logging.getLogger(__name__)

OIDC_PREFIX = "/_/oidc/"
OAUTH_PREFIX = "/oauth/"


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(TrustpubError, _render_trustpub_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(Exception, _render_unexpected)


def render(
    code: str,
    description: str,
    status: int,
    retry_after: int | None = None,
    oauth_error: str = "invalid_request",
) -> Response:
    body: dict[str, object]
    if request.path.startswith(OAUTH_PREFIX):
        if status >= 500 and oauth_error == "invalid_request":
            oauth_error = "server_error"
        body = {"error": oauth_error, "error_description": description}
    elif request.path.startswith(OIDC_PREFIX):
        body = {
            "message": "Token request failed",
            "errors": [{"code": code, "description": description}],
        }
    else:
        body = {"error": {"code": code, "description": description}}
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="trustpub", Bearer realm="trustpub"'
    return response


def _render_trustpub_error(error: TrustpubError) -> Response:
    if error.status >= 500:
        log.warning("%s: %s", error.code, error.description, exc_info=error.__cause__)
    return render(error.code, error.description, error.status, error.retry_after, error.oauth_error)


def _render_http_exception(error: HTTPException) -> Response:
    if error.response is not None:
        # An exception that carries its response (the rate limiter's 429) was rendered
        # by us already.
        return error.response  # type: ignore[return-value]
    status = error.code or 500
    if status == 413:
        return _render_trustpub_error(PayloadTooLarge("request body is too large"))
    code = (error.name or "error").lower().replace(" ", "-")
    response = render(code, error.description or code, status)
    # Keep what the HTTP error says beyond its body, such as `Allow` on a 405.
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _render_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render("internal-error", "internal error; it has been logged", 500)
