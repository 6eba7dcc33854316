"""The answer to a request gunicorn refuses itself (app.serving.RedactingThreadWorker):
the codes docs/endpoints.md lists, whatever the interpreter calls the status."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from app.api import errors
from app.api.errors import answer_server_refusal

# http.HTTPStatus's phrases as Python 3.13 and later have them (RFC 9110); 3.11 calls 414
# "Request-URI Too Long". requires-python allows both.
RFC_9110_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


@pytest.mark.parametrize(
    ("status", "answered", "code"),
    [
        (400, 400, "bad-request"),
        (403, 403, "forbidden"),
        (414, 414, "request-uri-too-long"),
        (417, 417, "expectation-failed"),
        (431, 431, "request-header-fields-too-large"),
        (501, 501, "not-implemented"),
        (500, 500, "internal-error"),  # an app's response header gunicorn refused
    ],
    ids=["400", "403", "414", "417", "431", "501", "500"],
)
def test_a_server_refusal_has_its_documented_code_on_any_python(
    monkeypatch: pytest.MonkeyPatch, status: int, answered: int, code: str
) -> None:
    monkeypatch.setattr(
        errors,
        "HTTPStatus",
        lambda value: SimpleNamespace(phrase=RFC_9110_PHRASES[value]),
        raising=False,
    )

    got, _, body = answer_server_refusal("/healthz", status)

    assert got == answered
    assert json.loads(body)["error"]["code"] == code
