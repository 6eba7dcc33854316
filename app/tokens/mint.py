"""Minting upload tokens: short-lived signed JWTs scoped to one publisher's projects."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.json_text import compact
from app.oidc.jws import b64url_encode
from app.tokens.keys import KeyRing, SigningKey

# Distinct from any CI token's `typ` (RFC 8725 §3.11): an upload token is never
# mistaken for an identity token, or the reverse.
UPLOAD_TOKEN_TYPE = "trustpub-upload+jwt"  # noqa: S105 (a type name)


@dataclass(frozen=True)
class MintedToken:
    # A bearer credential: never in a repr, which a traceback or a debug line could carry.
    token: str = field(repr=False)
    jti: str
    issued_at: int
    expires_at: int
    projects: tuple[str, ...]


@dataclass(frozen=True)
class UploadTokenMinter:
    keys: KeyRing
    issuer: str
    audience: str
    ttl: int
    prefix: str

    def mint(
        self,
        projects: frozenset[str],
        publisher: Mapping[str, str],
        epoch: str,
        now: int,
        jti: str | None = None,
    ) -> MintedToken:
        """Sign a token; `epoch` ties it to the store's current data (see app.stores.base).

        `jti` is the token's id, new_jti() unless given: a caller that must record the
        id before signing (say, an audit record written by the replay-claim script, in
        the same round trip) chooses it first.
        """
        jti = jti or new_jti()
        expires_at = now + self.ttl
        ordered = tuple(sorted(projects))
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"{publisher['provider']}:{publisher.get('repository', '')}",
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": jti,
            "scope": "upload",
            "projects": list(ordered),
            "publisher": dict(publisher),
            "epoch": epoch,
        }
        token = encode_compact_jws(claims, self.keys.signer, UPLOAD_TOKEN_TYPE)
        return MintedToken(
            token=self.prefix + token,
            jti=jti,
            issued_at=now,
            expires_at=expires_at,
            projects=ordered,
        )


# What new_jti() makes: 18 bytes, base64url without padding.
JTI = re.compile(r"^[A-Za-z0-9_-]{24}$")


def new_jti() -> str:
    """An upload token id: 144 random bits, URL-safe (`secrets.token_urlsafe(18)`: the
    same `os.urandom` bytes, without its five Python-level calls)."""
    return b64url_encode(os.urandom(18)).decode("ascii")


def encode_compact_jws(claims: Mapping[str, Any], key: SigningKey, typ: str) -> str:
    """A compact JWS of `claims`, byte for byte what `jwt.encode` makes of them.

    PyJWT spends about as long on its own bookkeeping as the Ed25519 signature takes;
    minting needs none of it: the header is fixed per key and computed once, the claims
    are plain JSON. tests/unit/test_mint_encoding.py holds it to PyJWT's output.
    """
    payload = compact(claims)
    signing_input = _protected_header(key.algorithm, key.kid, typ) + b"." + b64url_encode(payload)
    signature = _sign(key, signing_input)
    return (signing_input + b"." + b64url_encode(signature)).decode("ascii")


@cache
def _protected_header(algorithm: str, kid: str, typ: str) -> bytes:
    # PyJWT's header: its keys sorted, compact separators.
    header = {"alg": algorithm, "kid": kid, "typ": typ}
    return b64url_encode(json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8"))


_SHA256 = hashes.SHA256()
_PKCS1 = padding.PKCS1v15()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)


def _sign(key: SigningKey, message: bytes) -> bytes:
    # The algorithm was fixed when the key was loaded (app.tokens.keys): EdDSA for
    # Ed25519, ES256 for P-256, RS256 for RSA; the key type and algorithm must agree.
    private_key = key.private_key
    if key.algorithm == "EdDSA" and isinstance(private_key, Ed25519PrivateKey):
        return private_key.sign(message)
    if key.algorithm == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey):
        # JWS wants r || s, each 32 bytes (RFC 7518 §3.4), not the DER sequence.
        r, s = decode_dss_signature(private_key.sign(message, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if key.algorithm == "RS256" and isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(message, _PKCS1, _SHA256)
    raise ValueError(f"signing key {key.kid} cannot sign {key.algorithm}")
