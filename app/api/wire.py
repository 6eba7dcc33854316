"""What every answer shares on the wire, for Flask views and the hot paths alike."""

from __future__ import annotations

import json

from werkzeug.http import HTTP_STATUS_CODES

JSON_TYPE = "application/json"


def json_body(document: object) -> bytes:
    """Byte for byte what Flask's `jsonify` writes (compact, key order kept, newline)."""
    return (json.dumps(document, separators=(",", ":")) + "\n").encode()


def status_line(status: int) -> str:
    """The status line werkzeug sends for `status`."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"
