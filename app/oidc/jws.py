"""Strict parsing and signature checks of compact JWS tokens.

Parsing is kept apart from verification so that exactly one thing is read from an
unverified token before its signature is checked: the issuer and key id
(`read_unverified_routing`). Everything else waits for `verify_signature`.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.errors import InvalidPayload, InvalidToken

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Ed25519PublicKey

# Real CI tokens are 1-3 KiB; anything far larger is an attack on the parser.
MAX_TOKEN_BYTES = 16 * 1024

_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# By segment length mod 4: the bits of the last character that carry no data.
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}
# binascii's standard alphabet to the url-safe one (what base64.urlsafe_b64encode does,
# without its two Python-level calls: upload tokens encode three segments per mint).
_STANDARD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
# The url-safe alphabet to the standard one, for binascii's strict decoding; and what
# base64url does not have (the standard alphabet's own "+" and "/", padding) to a byte
# that decoding refuses, as it refuses whitespace and every other byte.
_URLSAFE_TO_STRICT_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")

# Headers that ask the verifier to fetch keys from the token, to honour extensions it
# cannot know, or to treat the payload as another token: all rejected (RFC 8725 §3.1-3.11).
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "jwk", "crit", "cty", "zip", "b64"})


@dataclass(frozen=True)
class ParsedToken:
    """A structurally valid compact JWS whose signature has NOT been checked yet."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    # The token itself, in two parts: never in a repr (no token in logs).
    signing_input: bytes = field(repr=False)
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class UnverifiedRouting:
    """What may be read before verification: where to find the key, nothing more."""

    issuer: str
    kid: str | None
    alg: str


def parse_compact_jws(token: str) -> ParsedToken:
    """Split and decode a compact JWS, rejecting anything a CI provider would not send."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidPayload("token is too large to be an OIDC token")
    if not token.isascii():
        raise InvalidPayload("token is not a JWT (non-ASCII characters)")
    raw = token.encode("ascii")
    parts = raw.split(b".")
    if len(parts) != 3 or not all(parts):
        raise InvalidPayload("token is not a JWT (expected three non-empty dot-separated parts)")
    header_b64, claims_b64, signature_b64 = parts
    header = _decode_json_object(header_b64, "header")
    claims = _decode_json_object(claims_b64, "payload")
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=header_b64 + b"." + claims_b64,
        signature=_b64url_decode(signature_b64, "signature"),
    )


def read_unverified_routing(token: ParsedToken) -> UnverifiedRouting:
    """The one function that reads an unverified token: its `iss`, header `kid` and `alg`.

    They only select which configured issuer and key to verify with; none of them is
    trusted as a fact until `verify_signature` has passed with that issuer's key.
    """
    issuer = token.claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidPayload("token has no string 'iss' claim")
    kid = token.header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise InvalidToken("token header 'kid' is not a non-empty string")
    alg = token.header.get("alg")
    if not isinstance(alg, str):
        raise InvalidToken("token header 'alg' is not a string")
    return UnverifiedRouting(issuer=issuer, kid=kid, alg=alg)


def check_header(token: ParsedToken) -> None:
    """Header rules for CI identity tokens."""
    reject_forbidden_headers(token)
    typ = token.header.get("typ")
    # CI providers send typ JWT or nothing; anything else is some other kind of token,
    # including trustpub's own upload tokens (RFC 8725 §3.11).
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise InvalidToken("token header 'typ' is not JWT")


def reject_forbidden_headers(token: ParsedToken) -> None:
    forbidden = sorted(_FORBIDDEN_HEADERS.intersection(token.header))
    if forbidden:
        raise InvalidToken(f"token header carries unsupported parameter(s): {', '.join(forbidden)}")


def verify_signature(token: ParsedToken, alg: str, key: PublicKey) -> None:
    """Check the signature with `alg`, which the caller took from configuration, not the header."""
    verifier = _VERIFIERS.get(alg)
    if verifier is None:
        raise InvalidToken(f"algorithm {alg} is not supported")
    if not verifier(key, token.signing_input, token.signature):
        raise InvalidToken("token signature did not verify")


def _decode_json_object(segment: bytes, what: str) -> dict[str, Any]:
    data = _b64url_decode(segment, what)
    try:
        text = data.decode("utf-8")
        value = STRICT_JSON.decode(text)
    except UnicodeDecodeError:
        raise InvalidPayload(f"token {what} is not UTF-8") from None
    except (ValueError, RecursionError):
        raise InvalidPayload(f"token {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidPayload(f"token {what} is not a JSON object")
    # json accepts lone surrogate escapes ("\ud800") in keys, values and list items;
    # they break every later encode. Strict UTF-8 decoding has already refused encoded
    # surrogates, so only a \u escape can make one: without any, there is none to find.
    if "\\u" in text and not _encodable(value):
        raise InvalidPayload(f"token {what} is not a JSON object")
    return value


def b64url_encode(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2), as every JWS segment is written."""
    encoded = binascii.b2a_base64(data, newline=False).translate(_STANDARD_TO_URLSAFE)
    return encoded.rstrip(b"=")


def _b64url_decode(segment: bytes, what: str) -> bytes:
    # Strict decoding refuses any byte outside the alphabet, which the default decoder
    # skips silently, and a length of 1 mod 4; padding, whitespace and the standard
    # alphabet reach it as such bytes. One translation and one decode per segment: an
    # alphabet check of its own cost a mint another pass over the token.
    try:
        padded = segment.translate(_URLSAFE_TO_STRICT_STANDARD) + b"=" * (-len(segment) % 4)
        data = binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidPayload(f"token {what} is not base64url") from None
    # Canonical only (RFC 4648 §3.5): the bits of the last character that encode no
    # data must be zero, or several strings would decode to one token (malleability).
    unused_bits = _UNUSED_BITS[len(segment) % 4]
    if unused_bits and _B64URL_ALPHABET.index(segment[-1]) & unused_bits:
        raise InvalidPayload(f"token {what} is not base64url")
    return data


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Two parsers could read two different values from one document (a token, a
        # request body): refuse both.
        raise ValueError("duplicate key")
    return result


# JSON whose objects have unique keys, for tokens and request bodies. One decoder, made
# once: json.loads with a hook builds a new one per call (~3 us, three times a mint).
STRICT_JSON = json.JSONDecoder(object_pairs_hook=_reject_duplicates)


def _encodable(value: Any) -> bool:
    """No string anywhere in `value` (keys included) holds a lone surrogate."""
    # A loop, not recursion: json nests deeper than a recursive walk could follow.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _rsa(hash_algorithm: hashes.HashAlgorithm) -> Any:
    def verify(key: PublicKey, message: bytes, signature: bytes) -> bool:
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
            return False
        try:
            key.verify(signature, message, padding.PKCS1v15(), hash_algorithm)
        except InvalidSignature:
            return False
        return True

    return verify


def _ecdsa(curve: type[ec.EllipticCurve], hash_algorithm: hashes.HashAlgorithm) -> Any:
    def verify(key: PublicKey, message: bytes, signature: bytes) -> bool:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
            return False
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        try:
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hash_algorithm))
        except InvalidSignature:
            return False
        return True

    return verify


def _eddsa(key: PublicKey, message: bytes, signature: bytes) -> bool:
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# The key type must fit the algorithm: an RSA key never verifies an ES256 token, and no
# HMAC algorithm is listed at all, so a public key can never be used as an HMAC secret.
_VERIFIERS = {
    "RS256": _rsa(hashes.SHA256()),
    "RS384": _rsa(hashes.SHA384()),
    "RS512": _rsa(hashes.SHA512()),
    "ES256": _ecdsa(ec.SECP256R1, hashes.SHA256()),
    "ES384": _ecdsa(ec.SECP384R1, hashes.SHA384()),
    "EdDSA": _eddsa,
}
SUPPORTED_ALGORITHMS = frozenset(_VERIFIERS)
