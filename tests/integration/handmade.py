"""Tokens built by hand, for shapes PyJWT refuses to make (a non-string `iss`, duplicate
JSON keys, non-UTF-8 segments, `alg: none`): the signature is still a real RS256 one, so
only the property under test can make the service refuse them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_bytes(value: Mapping[str, Any] | bytes) -> bytes:
    # json.dumps writes NaN and Infinity, which is what a hostile token would carry.
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def signing_input(header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes) -> str:
    return f"{b64url(json_bytes(header))}.{b64url(json_bytes(payload))}"


def rs256_jws(
    header: Mapping[str, Any] | bytes,
    payload: Mapping[str, Any] | bytes,
    key: rsa.RSAPrivateKey,
) -> str:
    """A compact JWS over exactly these header and payload bytes, signed RS256."""
    message = signing_input(header, payload)
    signature = key.sign(message.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{message}.{b64url(signature)}"
