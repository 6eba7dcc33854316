"""The JSON trustpub writes: upload tokens, answers, audit records and log lines.

Encoded by orjson, which writes straight into one buffer; the standard library's encoder
builds each document from small strings behind a Python-level wrapper, and on a mint's
four documents that was a tenth of its instructions (`make profile`, docs/performance.md).
Decoding stays with the standard library (app.oidc.jws.STRICT_JSON): only its hooks can
refuse duplicate keys.

What orjson refuses, a lone surrogate or an integer beyond 64 bits, is written by the
standard library as it always was, so encoding never fails where it did not before.
"""

from __future__ import annotations

import json

import orjson

# Made once: json.dumps with any option builds a new encoder on every call.
_ESCAPED = json.JSONEncoder(separators=(",", ":"))


def compact(value: object) -> bytes:
    """`value` as compact UTF-8 JSON, key order kept."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _escaped(value)


def compact_ascii(value: object) -> bytes:
    """Byte for byte `json.dumps(value, separators=(",", ":"))` for documents without
    floats: non-ASCII and DEL escaped as `\\uXXXX`, as Flask's jsonify and PyPI write them."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _escaped(value)
    # orjson escapes what the standard library escapes in ASCII, except DEL.
    return encoded if encoded.isascii() and b"\x7f" not in encoded else _escaped(value)


def _escaped(value: object) -> bytes:
    return _ESCAPED.encode(value).encode("ascii")
