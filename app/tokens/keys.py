"""Signing keys for upload tokens, loaded from PEM files.

Several keys may be loaded at once during a rotation: all of them verify and are
published in the JWKS, and one signs: the key named by `signing_kid`, or else the key
whose file name sorts last. `trustpub keys generate` names files by creation time, so a
newly added key takes over signing unless `signing_kid` pins the old one while the new
key reaches every replica.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.errors import ConfigurationError
from app.oidc.jws import PublicKey, b64url_encode

SigningPrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"...: not "EC PARAMETERS", which
# `openssl ecparam -genkey` writes before its key.
_PRIVATE_KEY_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: SigningPrivateKey
    public_jwk: dict[str, str]

    @cached_property
    def public_key(self) -> PublicKey:
        # Derived once: introspection verifies with it on every call.
        return self.private_key.public_key()


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[SigningKey, ...]
    signer: SigningKey

    def by_kid(self, kid: str) -> SigningKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in self.keys]}


def load_key_ring(path: Path, signing_kid: str | None = None) -> KeyRing:
    files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
    if not files:
        raise ConfigurationError(f"signing_keys: no *.pem files in {path}")
    keys = tuple(_load_signing_key(file) for file in files)
    kids = [key.kid for key in keys]
    if len(set(kids)) != len(kids):
        raise ConfigurationError(f"signing_keys: the same key is loaded twice from {path}")
    if signing_kid is None:
        return KeyRing(keys, signer=keys[-1])
    signer = next((key for key in keys if key.kid == signing_kid), None)
    if signer is None:
        raise ConfigurationError(
            f"signing_kid {signing_kid!r} is not among the keys in {path}: {', '.join(kids)}"
        )
    return KeyRing(keys, signer=signer)


def generate_signing_key_pem() -> bytes:
    """A new Ed25519 private key in PKCS#8 PEM: small, fast and without parameter choices."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_key_file_name(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"trustpub-signing-{stamp}.pem"


def _load_signing_key(path: Path) -> SigningKey:
    try:
        with path.open("rb") as handle:
            # The mode of the file read, not of the name: fstat follows the symlinks of a
            # Kubernetes secret volume to the file itself.
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read()
    except OSError as exc:
        raise ConfigurationError(f"signing_keys: cannot read {path}: {exc.strerror}") from exc
    if mode & 0o007:
        # Anyone who reads it can mint upload tokens for every project. The group may
        # read (the chart mounts keys 0440 for its fsGroup); other users may not.
        raise ConfigurationError(
            f"signing_keys: {path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
            "make it 0600 or 0440 (chmod o-rwx; in Kubernetes, the volume's defaultMode)"
        )
    if len(_PRIVATE_KEY_BLOCK.findall(data)) > 1:
        # cryptography loads the first and ignores the rest, without a word.
        raise ConfigurationError(
            f"signing_keys: {path} holds more than one private key: put each key in a file "
            "of its own"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"signing_keys: {path} is not an unencrypted PEM private key"
        ) from exc
    if isinstance(key, Ed25519PrivateKey):
        algorithm = "EdDSA"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    elif isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        algorithm = "RS256"
    else:
        raise ConfigurationError(
            f"signing_keys: {path}: use Ed25519 (recommended), EC P-256 or RSA >= 2048 bits"
        )
    jwk = _public_jwk(key)
    kid = _thumbprint(jwk)
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        private_key=key,
        public_jwk={**jwk, "kid": kid, "alg": algorithm, "use": "sig"},
    )


def _b64(data: bytes) -> str:
    return b64url_encode(data).decode("ascii")


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _public_jwk(key: SigningPrivateKey) -> dict[str, str]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(point.x.to_bytes(32, "big")),
            "y": _b64(point.y.to_bytes(32, "big")),
        }
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}


def _thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key, identical on every replica."""
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode("ascii")
    return _b64(hashlib.sha256(canonical).digest())
