"""What every answer shares on the wire, for Flask views and the hot paths alike."""

from __future__ import annotations

import json

from werkzeug.http import HTTP_STATUS_CODES

JSON_TYPE = "application/json"
# Made once: json.dumps with any option builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def json_body(document: object) -> bytes:
    """Byte for byte what Flask's `jsonify` writes (compact, key order kept, newline)."""
    return (_COMPACT_JSON.encode(document) + "\n").encode()


def status_line(status: int) -> str:
    """The status line werkzeug sends for `status`."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"
