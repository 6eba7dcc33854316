"""Minting upload tokens: short-lived signed JWTs scoped to one publisher's projects."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from app.tokens.keys import KeyRing

# Distinct from any CI token's `typ` (RFC 8725 §3.11): an upload token is never
# mistaken for an identity token, or the reverse.
UPLOAD_TOKEN_TYPE = "trustpub-upload+jwt"  # noqa: S105 (a type name)


@dataclass(frozen=True)
class MintedToken:
    token: str
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
        self, projects: frozenset[str], publisher: Mapping[str, str], epoch: str, now: int
    ) -> MintedToken:
        """Sign a token; `epoch` ties it to the store's current data (see app.stores.base)."""
        signer = self.keys.signer
        jti = secrets.token_urlsafe(18)
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
        token = jwt.encode(
            claims,
            signer.private_key,
            algorithm=signer.algorithm,
            headers={"kid": signer.kid, "typ": UPLOAD_TOKEN_TYPE},
        )
        return MintedToken(
            token=self.prefix + token,
            jti=jti,
            issued_at=now,
            expires_at=expires_at,
            projects=ordered,
        )
