"""What every answer shares on the wire, for Flask views and the hot paths alike."""

from __future__ import annotations

from werkzeug.http import HTTP_STATUS_CODES

from app.json_text import compact_ascii

JSON_TYPE = "application/json"


def json_body(document: object) -> bytes:
    """Byte for byte what Flask's `jsonify` writes (compact, key order kept, non-ASCII
    escaped, newline) for documents without floats; no answer has one."""
    return compact_ascii(document) + b"\n"


def status_line(status: int) -> str:
    """The status line werkzeug sends for `status`."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"
