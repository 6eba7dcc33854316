"""`verify_identity_token`: from a raw CI token to claims that can be trusted.

Order matters and follows RFC 8725: structure, then the configured issuer (chosen by
the unverified `iss`, with no fetch for an unknown one), then the algorithm fixed by
that issuer's configuration, the key by `kid`, the signature, and only then the
registered claims (`aud`, `exp`, `nbf`, `iat`, `jti`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.clocks import CLOCK_SKEW_SECONDS
from app.errors import InvalidPayload, InvalidToken, NotEnabled
from app.oidc.jws import check_header, parse_compact_jws, read_unverified_routing, verify_signature
from app.oidc.keysets import KeySet

# One leeway for exp, nbf and iat. Coupled: the replay record of a token must outlive
# `exp + LEEWAY_SECONDS`, or a token could be replayed inside the leeway window
# (see `replay_record_ttl`).
LEEWAY_SECONDS = 60
MAX_JTI_LENGTH = 256
# Numeric dates beyond I-JSON's exact integer range (RFC 7493 §2.2) are no real time.
MAX_NUMERIC_DATE = 2**53


@dataclass(frozen=True)
class IssuerConfig:
    """A trusted CI issuer and the rules its tokens must meet."""

    url: str
    provider: str
    algorithms: frozenset[str] = frozenset({"RS256"})
    # CI tokens live minutes; a token claiming a longer life was not made by a CI job.
    max_lifetime: int = 900
    # For providers whose tokens live long and carry no jti: the oldest `iat` accepted.
    max_age: int | None = None
    requires_jti: bool = True
    # A provider's kill switch: its issuers stay configured (so policies naming them
    # still load) but their tokens are refused before any key is fetched.
    enabled: bool = True
    # Origins (https://host[:port]) other than the issuer's own that its discovery
    # document may name for its keys: Google serves them from www.googleapis.com.
    key_origins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VerifiedIdentity:
    issuer: IssuerConfig
    claims: Mapping[str, Any]
    expires_at: int
    issued_at: int
    jti: str | None
    # The bytes the issuer signed (header.payload): the token but for its signature, so
    # kept out of the repr, which a traceback or a debug log line could carry.
    signed: bytes = field(repr=False)

    @property
    def signed_digest(self) -> str:
        """Hash of the bytes the issuer signed: unique per token, unlike the signature's
        text (base64url has spare bits, ECDSA signatures are malleable). It identifies a
        token that carries no jti for the replay check, so it is computed for those only.

        Replay keys are derived from it: changing it would let a token exchanged just
        before an upgrade be exchanged again after it.
        """
        return hashlib.blake2b(self.signed, digest_size=16).hexdigest()


@dataclass
class TrustedIssuers:
    """The configured issuers with their key sets, looked up by exact `iss`."""

    entries: dict[str, tuple[IssuerConfig, KeySet]] = field(default_factory=dict)

    def add(self, config: IssuerConfig, keys: KeySet) -> None:
        self.entries[config.url] = (config, keys)

    def get(self, issuer: str) -> tuple[IssuerConfig, KeySet] | None:
        return self.entries.get(issuer)

    def providers(self) -> dict[str, str]:
        """Each issuer's provider, by URL."""
        return {url: config.provider for url, (config, _) in self.entries.items()}

    def urls(self, provider: str | None = None) -> frozenset[str]:
        return frozenset(
            url for url, (config, _) in self.entries.items() if provider in (None, config.provider)
        )


def verify_identity_token(
    token: str, issuers: TrustedIssuers, audience: str, now: int
) -> VerifiedIdentity:
    parsed = parse_compact_jws(token)
    routing = read_unverified_routing(parsed)
    entry = issuers.get(routing.issuer)
    if entry is None:
        # No fetch, no normalisation: an issuer that is not configured byte for byte is
        # unknown (a trailing slash or other case is a different issuer).
        raise InvalidPayload("token issuer is not a trusted CI issuer")
    config, keys = entry
    if not config.enabled:
        raise NotEnabled(f"trusted publishing with {config.provider} tokens is disabled")
    check_header(parsed)
    if routing.alg not in config.algorithms:
        raise InvalidToken(f"token algorithm {routing.alg!r} is not accepted for this issuer")
    if routing.kid is None:
        raise InvalidToken("token header has no 'kid'")
    verify_signature(parsed, routing.alg, keys.key_for(routing.kid, routing.alg))
    return _check_registered_claims(parsed.claims, config, audience, now, parsed.signing_input)


def replay_record_ttl(identity: VerifiedIdentity, now: int) -> int:
    """Seconds a replay record must live: until the token is refused as expired anyway,
    by every replica: one whose clock is behind this one's accepts it that much longer."""
    return max(1, identity.expires_at + LEEWAY_SECONDS + CLOCK_SKEW_SECONDS - now + 1)


def _check_registered_claims(
    claims: Mapping[str, Any], config: IssuerConfig, audience: str, now: int, signed: bytes
) -> VerifiedIdentity:
    audience_claim = claims.get("aud")
    if isinstance(audience_claim, list):
        # A token for several relying parties could be replayed at any of them.
        raise InvalidToken("token 'aud' must be a single string, not a list")
    if audience_claim != audience:
        raise InvalidToken("token 'aud' is not this service's audience")

    expires_at = _numeric_date(claims, "exp")
    issued_at = _numeric_date(claims, "iat")
    if now > expires_at + LEEWAY_SECONDS:
        raise InvalidToken("token has expired")
    if issued_at > now + LEEWAY_SECONDS:
        raise InvalidToken("token 'iat' is in the future")
    if "nbf" in claims and _numeric_date(claims, "nbf") > now + LEEWAY_SECONDS:
        raise InvalidToken("token is not valid yet ('nbf' is in the future)")
    if expires_at <= issued_at:
        raise InvalidToken("token 'exp' is not after 'iat'")
    if expires_at - issued_at > config.max_lifetime:
        raise InvalidToken("token lifetime is longer than this issuer's tokens may live")
    if config.max_age is not None and now - issued_at > config.max_age + LEEWAY_SECONDS:
        raise InvalidToken("token is too old to be exchanged")

    jti = claims.get("jti")
    jti_expected = jti is not None or config.requires_jti
    if jti_expected and (not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH):
        raise InvalidToken("token 'jti' is missing or not a short string")
    return VerifiedIdentity(
        issuer=config,
        claims=claims,
        expires_at=expires_at,
        issued_at=issued_at,
        jti=jti,
        signed=signed,
    )


def _numeric_date(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    # Nearly always an int in range: taken before the checks that name what is wrong.
    if type(value) is int and -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE:
        return value
    if value is None:
        raise InvalidToken(f"token has no '{name}' claim")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"token '{name}' is not a number")
    # A range check rather than math.isfinite(): JSON integers are unbounded, and a
    # 400-digit one overflows the float conversion isfinite() makes. The comparison is
    # exact for any int and false for NaN, so this one check refuses NaN, infinities and
    # absurd values alike.
    if not -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE:
        raise InvalidToken(f"token '{name}' is not a number in range")
    return int(value)
