"""Verifying trustpub's own upload tokens (the introspection and revocation paths)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from app.clocks import CLOCK_SKEW_SECONDS
from app.errors import InvalidPayload, InvalidToken
from app.oidc.jws import parse_compact_jws, reject_forbidden_headers, verify_signature
from app.settings import MAX_TOKEN_TTL
from app.tokens.keys import KeyRing
from app.tokens.mint import UPLOAD_TOKEN_TYPE
from app.tokens.scopes import scopes_of


@dataclass(frozen=True)
class UploadTokenClaims:
    jti: str
    issued_at: int
    expires_at: int
    projects: tuple[str, ...]
    publisher: Mapping[str, str]
    epoch: str
    claims: Mapping[str, Any]

    @cached_property
    def revocation_scopes(self) -> tuple[str, ...]:
        """The scopes whose revocation covers this token, computed once per verified
        token (the verifier keeps those it verified; the digests are fixed by the claims)."""
        return scopes_of(self.jti, self.projects, self.publisher)

    @cached_property
    def introspection(self) -> str:
        """RFC 7662's answer for this token while it is active, as JSON text.

        Encoded once per verified token (the verifier keeps those it verified): an index
        introspects a token once per uploaded file, and encoding this answer every time
        cost a tenth of an introspection's CPU. Compact, keys sorted: what jsonify wrote.
        """
        claims = self.claims
        document = {
            "active": True,
            "scope": "upload",
            "token_type": "Bearer",
            "iss": claims["iss"],
            "sub": claims.get("sub"),
            "aud": claims["aud"],
            "iat": self.issued_at,
            "nbf": claims["nbf"],
            "exp": self.expires_at,
            "jti": self.jti,
            "projects": list(self.projects),
            "publisher": dict(self.publisher),
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class UploadTokenVerifier:
    keys: KeyRing
    issuer: str
    audience: str
    prefix: str
    # Tokens whose signature and claims verified, by digest: an index introspects one
    # token once per uploaded file, and the signature check is most of an
    # introspection's CPU. Only what cannot change is cached (the key ring is fixed
    # for the verifier's life); expiry is checked again on every call, and revocation
    # is not a verifier's concern (the revocation store is read every time).
    verified: VerifiedTokens = field(default_factory=lambda: VerifiedTokens(4096))

    def verify(self, token: str, now: int, *, expiry_grace: int = 0) -> UploadTokenClaims:
        """The token's claims if trustpub minted it and it has not expired (`expiry_grace`
        seconds ago at most); else InvalidToken."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self.verified.get(digest)
        if known is not None:
            if now >= known.expires_at + expiry_grace:
                raise InvalidToken("expired")
            return known
        claims = self._verify(token, now, expiry_grace)
        self.verified.add(digest, claims)
        return claims

    def _verify(self, token: str, now: int, expiry_grace: int = 0) -> UploadTokenClaims:
        if not token.startswith(self.prefix):
            raise InvalidToken("not an upload token")
        try:
            parsed = parse_compact_jws(token[len(self.prefix) :])
        except InvalidPayload as exc:
            raise InvalidToken(exc.description) from None
        header = parsed.header
        # An OIDC token (typ JWT) is never an upload token, whoever signed it.
        if header.get("typ") != UPLOAD_TOKEN_TYPE:
            raise InvalidToken("not an upload token")
        reject_forbidden_headers(parsed)
        kid = header.get("kid")
        key = self.keys.by_kid(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("signed by a key that is not loaded")
        if header.get("alg") != key.algorithm:
            raise InvalidToken("algorithm does not match the signing key")
        verify_signature(parsed, key.algorithm, key.public_key)
        return _check_claims(parsed.claims, self.issuer, self.audience, now, expiry_grace)


class VerifiedTokens:
    """A bounded map of token digest -> verified claims; the oldest entry goes first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[bytes, UploadTokenClaims] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> UploadTokenClaims | None:
        return self._entries.get(digest)

    def add(self, digest: bytes, claims: UploadTokenClaims) -> None:
        with self._lock:
            while len(self._entries) >= self._capacity:
                del self._entries[next(iter(self._entries))]
            self._entries[digest] = claims

    def __len__(self) -> int:
        return len(self._entries)


def _check_claims(
    claims: Mapping[str, Any], issuer: str, audience: str, now: int, expiry_grace: int = 0
) -> UploadTokenClaims:
    if claims.get("iss") != issuer or claims.get("aud") != audience:
        raise InvalidToken("issued for another service")
    if claims.get("scope") != "upload":
        raise InvalidToken("not an upload token")
    issued_at, expires_at, not_before = (_integer(claims, name) for name in ("iat", "exp", "nbf"))
    if now >= expires_at + expiry_grace:
        raise InvalidToken("expired")
    if expires_at - issued_at > MAX_TOKEN_TTL:
        # No trustpub mints one (settings refuse a longer token_ttl), and bulk revocation
        # entries live only as long as a token may: it would outlive its revocation.
        raise InvalidToken("lives longer than any upload token")
    if not_before > now + CLOCK_SKEW_SECONDS:
        raise InvalidToken("not valid yet")
    if issued_at > now + CLOCK_SKEW_SECONDS:
        # Revocations are moments compared with `iat` (app.tokens.revocation): a token
        # dated later than any replica's clock would escape every one of them.
        raise InvalidToken("issued in the future")
    jti, epoch = claims.get("jti"), claims.get("epoch")
    projects, publisher = claims.get("projects"), claims.get("publisher")
    if not (isinstance(jti, str) and jti and isinstance(epoch, str) and epoch):
        raise InvalidToken("malformed claims")
    if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
        raise InvalidToken("malformed claims")
    if not isinstance(publisher, dict) or not all(isinstance(v, str) for v in publisher.values()):
        raise InvalidToken("malformed claims")
    return UploadTokenClaims(
        jti=jti,
        issued_at=issued_at,
        expires_at=expires_at,
        projects=tuple(projects),
        publisher=publisher,
        epoch=epoch,
        claims=claims,
    )


def _integer(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidToken("malformed claims")
    return value
