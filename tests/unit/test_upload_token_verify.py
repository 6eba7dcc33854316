"""What makes an upload token active: each check of the verifier, on tokens that pass
every other check (signed by a loaded key, carrying the store's epoch), so that a check
that stopped working would be seen here and not hidden behind another one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.clocks import CLOCK_SKEW_SECONDS
from app.oidc.jws import b64url_encode
from app.private_files import write_private_file
from app.settings import MAX_TOKEN_TTL
from app.stores.memory import MemoryStore
from app.tokens.keys import KeyRing, SigningKey, generate_signing_key_pem, load_key_ring
from app.tokens.mint import UPLOAD_TOKEN_TYPE, encode_compact_jws
from app.tokens.revocation import TokenIntrospector
from app.tokens.verify import UploadTokenVerifier

ISSUER, AUDIENCE, NOW = "urn:trustpub:t", "urn:trustpub:upload:t", 1_800_000_000
PUBLISHER = {"provider": "github", "issuer": "https://ci", "repository": "o/r", "workflow": "w"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    directory = tmp_path_factory.mktemp("keys")
    write_private_file(directory / "key.pem", generate_signing_key_pem())
    return load_key_ring(directory)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(clock=lambda: NOW)


def introspector(keys: KeyRing, store: MemoryStore, now: int = NOW) -> TokenIntrospector:
    return TokenIntrospector(
        UploadTokenVerifier(keys, ISSUER, AUDIENCE, "pypi-"), store, lambda: now
    )


def token(
    keys: KeyRing,
    epoch: str,
    *,
    typ: str = UPLOAD_TOKEN_TYPE,
    key: SigningKey | None = None,
    prefix: str = "pypi-",
    **overrides: Any,
) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "github:o/r",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "jti": "j" * 24,
        "scope": "upload",
        "projects": ["demo-pkg"],
        "publisher": PUBLISHER,
        "epoch": epoch,
    }
    claims.update(overrides)
    return prefix + encode_compact_jws(claims, key or keys.signer, typ)


def test_the_reference_token_is_active(keys: KeyRing, store: MemoryStore) -> None:
    # Every case below differs from this token in one respect only.
    assert introspector(keys, store).introspect(token(keys, store.current_epoch().id))


CASES: dict[str, tuple[Callable[[KeyRing, str], str], int]] = {
    "expired-at-first-sight": (
        lambda k, e: token(k, e, iat=NOW - 900, nbf=NOW - 900, exp=NOW),
        NOW,
    ),
    "expired-a-second-ago": (lambda k, e: token(k, e), NOW + 900),
    "another-deployment-issuer": (lambda k, e: token(k, e, iss="urn:trustpub:other"), NOW),
    "another-deployment-audience": (lambda k, e: token(k, e, aud="urn:trustpub:upload:other"), NOW),
    "audience-as-list": (lambda k, e: token(k, e, aud=[AUDIENCE]), NOW),
    "not-the-upload-scope": (lambda k, e: token(k, e, scope="admin"), NOW),
    "not-valid-yet": (lambda k, e: token(k, e, nbf=NOW + CLOCK_SKEW_SECONDS + 1), NOW),
    # Revocations compare moments with `iat`: a token dated later than any replica's
    # clock would escape every revocation of its project, publisher or jti.
    "issued-in-the-future": (
        lambda k, e: token(k, e, iat=NOW + CLOCK_SKEW_SECONDS + 1, exp=NOW + 900),
        NOW,
    ),
    "outlives-any-revocation": (lambda k, e: token(k, e, exp=NOW + MAX_TOKEN_TTL + 1), NOW),
    "typ-of-an-oidc-token": (lambda k, e: token(k, e, typ="JWT"), NOW),
    "no-prefix": (lambda k, e: token(k, e, prefix=""), NOW),
    "another-epoch": (lambda k, e: token(k, "not-" + e), NOW),
}


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_a_token_dated_within_the_clock_skew_is_active(
    keys: KeyRing, store: MemoryStore, claim: str
) -> None:
    # The minting replica's clock may be up to CLOCK_SKEW_SECONDS ahead of this one's.
    dated = token(keys, store.current_epoch().id, **{claim: NOW + CLOCK_SKEW_SECONDS})

    assert introspector(keys, store).introspect(dated) is not None


@pytest.mark.parametrize(("make", "now"), CASES.values(), ids=CASES.keys())
def test_a_token_failing_one_check_is_inactive(
    keys: KeyRing, store: MemoryStore, make: Callable[[KeyRing, str], str], now: int
) -> None:
    candidate = make(keys, store.current_epoch().id)

    assert introspector(keys, store, now).introspect(candidate) is None


def test_the_header_algorithm_must_be_the_keys_own(keys: KeyRing, store: MemoryStore) -> None:
    # Signed by the loaded (Ed25519) key over a header that names another algorithm:
    # the signature is good, the header lies about how it was made.
    header = {"alg": "ES256", "kid": keys.signer.kid, "typ": UPLOAD_TOKEN_TYPE}
    raw = token(keys, store.current_epoch().id).removeprefix("pypi-")
    signing_input = _segment(header) + b"." + raw.split(".")[1].encode()
    private_key = keys.signer.private_key
    assert isinstance(private_key, Ed25519PrivateKey)
    signature = b64url_encode(private_key.sign(signing_input))
    candidate = "pypi-" + (signing_input + b"." + signature).decode()

    assert introspector(keys, store).introspect(candidate) is None


def _segment(document: dict[str, str]) -> bytes:
    return b64url_encode(json.dumps(document, separators=(",", ":")).encode())
