"""What every request and answer shares on the wire, for Flask views and the hot paths alike."""

from __future__ import annotations

from werkzeug.http import HTTP_STATUS_CODES

from app.json_text import compact_ascii
from app.oidc.jws import STRICT_JSON

JSON_TYPE = "application/json"


def json_body(document: object) -> bytes:
    """Byte for byte what Flask's `jsonify` writes (compact, key order kept, non-ASCII
    escaped, newline) for documents without floats; no answer has one."""
    return compact_ascii(document) + b"\n"


def json_or_none(raw: bytes) -> object:
    """A request body's JSON document, or None for anything else: not UTF-8, not JSON,
    duplicate keys, or nested deeper than the parser recurses (Flask's `get_json`
    raised RecursionError there: a 500)."""
    try:
        return STRICT_JSON.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def status_line(status: int) -> str:
    """The status line werkzeug sends for `status`."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"
