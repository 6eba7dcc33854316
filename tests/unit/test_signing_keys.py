"""`load_key_ring`: rotation order, RFC 7638 kids, the public JWKS, and refused key files."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.errors import ConfigurationError
from app.oidc.jws import parse_compact_jws, verify_signature
from app.private_files import write_private_file
from app.tokens.keys import (
    _thumbprint,
    generate_signing_key_pem,
    load_key_ring,
    new_key_file_name,
)

EARLIER = datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC)
LATER = datetime(2025, 2, 1, 0, 0, 0, tzinfo=UTC)

# RSA key generation is slow: one 2048-bit key for the whole module.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def expected_thumbprint(key: PrivateKey) -> str:
    """RFC 7638 §3.2, written out by hand: required members only, sorted, no whitespace."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        n = b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
        e = b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
        canonical = f'{{"e":"{e}","kty":"RSA","n":"{n}"}}'
    elif isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        x, y = b64(point.x.to_bytes(32, "big")), b64(point.y.to_bytes(32, "big"))
        canonical = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{b64(raw)}"}}'
    return b64(hashlib.sha256(canonical.encode("ascii")).digest())


def kid_of(pem_data: bytes) -> str:
    key = serialization.load_pem_private_key(pem_data, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return expected_thumbprint(key)


def test_rotation_later_key_signs_and_both_are_published(tmp_path: Path) -> None:
    earlier, later = generate_signing_key_pem(), generate_signing_key_pem()
    # Written newest first: the order on disk must not matter, only the names.
    write_private_file(tmp_path / new_key_file_name(LATER), later)
    write_private_file(tmp_path / new_key_file_name(EARLIER), earlier)

    ring = load_key_ring(tmp_path)

    earlier_kid, later_kid = kid_of(earlier), kid_of(later)
    assert [key.kid for key in ring.keys] == [earlier_kid, later_kid]
    assert ring.signer.kid == later_kid
    assert ring.signer.algorithm == "EdDSA"
    assert [entry["kid"] for entry in ring.jwks()["keys"]] == [earlier_kid, later_kid]
    assert ring.by_kid(earlier_kid) is ring.keys[0]
    assert ring.by_kid("unknown") is None


def test_signing_kid_pins_the_signer(tmp_path: Path) -> None:
    earlier = generate_signing_key_pem()
    write_private_file(tmp_path / new_key_file_name(EARLIER), earlier)
    write_private_file(tmp_path / new_key_file_name(LATER), generate_signing_key_pem())
    earlier_kid = kid_of(earlier)

    ring = load_key_ring(tmp_path, signing_kid=earlier_kid)

    assert ring.signer.kid == earlier_kid
    assert len(ring.jwks()["keys"]) == 2
    with pytest.raises(ConfigurationError, match="signing_kid 'nope' is not among the keys"):
        load_key_ring(tmp_path, signing_kid="nope")


def test_key_file_names_sort_by_time() -> None:
    names = [new_key_file_name(moment) for moment in (LATER, EARLIER)]

    assert sorted(names) == [new_key_file_name(EARLIER), new_key_file_name(LATER)]
    assert new_key_file_name(EARLIER) == "trustpub-signing-20250131T235959Z.pem"


KEY_TYPES: list[tuple[str, Callable[[], PrivateKey], str]] = [
    ("ed25519", Ed25519PrivateKey.generate, "EdDSA"),
    ("p256", lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ("rsa2048", lambda: RSA_KEY, "RS256"),
]


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [(make, alg) for _, make, alg in KEY_TYPES],
    ids=[name for name, _, _ in KEY_TYPES],
)
def test_kid_is_the_rfc7638_thumbprint_and_the_jwk_is_public(
    tmp_path: Path, make_key: Callable[[], PrivateKey], algorithm: str
) -> None:
    key = make_key()
    write_private_file(tmp_path / "key.pem", pem(key))

    (signing_key,) = load_key_ring(tmp_path).keys

    kid = expected_thumbprint(key)
    assert signing_key.kid == kid
    assert signing_key.algorithm == algorithm
    jwk = signing_key.public_jwk
    assert jwk["kid"] == kid
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "private material in the JWKS"
    # A standard JWK library reads the published key back as the same public key.
    published = jwt.PyJWK(jwk).key
    assert published.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == signing_key.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [(make, alg) for _, make, alg in KEY_TYPES],
    ids=[name for name, _, _ in KEY_TYPES],
)
def test_signer_signature_verifies_with_its_published_key(
    tmp_path: Path, make_key: Callable[[], PrivateKey], algorithm: str
) -> None:
    write_private_file(tmp_path / "key.pem", pem(make_key()))
    ring = load_key_ring(tmp_path)
    signer = ring.signer
    token = jwt.encode({"sub": "x"}, signer.private_key, algorithm=signer.algorithm)

    verify_signature(parse_compact_jws(token), algorithm, jwt.PyJWK(ring.jwks()["keys"][0]).key)


def test_thumbprint_matches_the_rfc7638_example() -> None:
    # RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
            "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
            "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
            "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
    }

    assert _thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_single_file_path(tmp_path: Path) -> None:
    path = tmp_path / "only.pem"
    write_private_file(path, generate_signing_key_pem())

    ring = load_key_ring(path)

    assert len(ring.keys) == 1
    assert ring.signer is ring.keys[0]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            lambda: pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
            "use Ed25519 (recommended), EC P-256 or RSA >= 2048 bits",
        ),
        (
            lambda: pem(ec.generate_private_key(ec.SECP384R1())),
            "use Ed25519 (recommended), EC P-256 or RSA >= 2048 bits",
        ),
        (lambda: b"this is not a key\n", "is not an unencrypted PEM private key"),
        (lambda: b"", "is not an unencrypted PEM private key"),
        (
            lambda: (
                Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
            "is not an unencrypted PEM private key",
        ),
        (
            lambda: Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            ),
            "is not an unencrypted PEM private key",
        ),
        (
            lambda: Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "is not an unencrypted PEM private key",
        ),
        # Only the first would be loaded: which key signs would depend on the file's order.
        (
            lambda: generate_signing_key_pem() + generate_signing_key_pem(),
            "holds more than one private key: put each key in a file of its own",
        ),
    ],
    ids=[
        "rsa-1024",
        "ec-p384",
        "not-pem",
        "empty-file",
        "public-key",
        "encrypted",
        "der",
        "two-keys",
    ],
)
def test_refused_key_files(tmp_path: Path, content: Callable[[], bytes], fragment: str) -> None:
    write_private_file(tmp_path / "good.pem", generate_signing_key_pem())
    bad = tmp_path / "zz-bad.pem"
    write_private_file(bad, content())

    with pytest.raises(ConfigurationError) as excinfo:
        load_key_ring(tmp_path)

    message = str(excinfo.value)
    assert message.startswith("signing_keys:")
    assert str(bad) in message
    assert fragment in message


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({}, "no *.pem files in"),
        ({"key.txt": b"ignored", "key.pem.bak": b"ignored"}, "no *.pem files in"),
    ],
    ids=["empty-dir", "no-pem-files"],
)
def test_directory_without_keys(tmp_path: Path, files: dict[str, bytes], fragment: str) -> None:
    for name, data in files.items():
        write_private_file(tmp_path / name, data)

    with pytest.raises(ConfigurationError, match=re.escape("no *.pem files in")) as excinfo:
        load_key_ring(tmp_path)

    assert fragment in str(excinfo.value)
    assert str(tmp_path) in str(excinfo.value)


@pytest.mark.parametrize(
    ("mode", "refused"),
    [
        (0o600, False),
        (0o400, False),
        # The chart's secret volume: owner and the pod's fsGroup.
        (0o440, False),
        (0o640, False),
        # Anyone on the host who reads it can mint upload tokens for every project.
        (0o644, True),
        (0o604, True),
        (0o444, True),
        (0o602, True),
    ],
    ids=["0600", "0400", "0440", "0640", "0644", "0604", "0444", "0602"],
)
def test_a_key_open_to_other_users_is_refused(tmp_path: Path, mode: int, refused: bool) -> None:
    path = tmp_path / "key.pem"
    write_private_file(path, generate_signing_key_pem())
    path.chmod(mode)
    # Through a symlink, as a Kubernetes secret volume presents it: the file's mode counts.
    link = tmp_path / "keys" / "key.pem"
    link.parent.mkdir()
    link.symlink_to(path)

    if not refused:
        assert load_key_ring(link.parent).signer.kid
        return
    with pytest.raises(ConfigurationError) as excinfo:
        load_key_ring(link.parent)

    message = str(excinfo.value)
    assert message.startswith(f"signing_keys: {link} is open to other users (mode {mode:04o})")
    assert "chmod o-rwx" in message


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_key_ring(tmp_path / "absent.pem")


def test_same_key_twice_is_refused(tmp_path: Path) -> None:
    key = generate_signing_key_pem()
    write_private_file(tmp_path / new_key_file_name(EARLIER), key)
    write_private_file(tmp_path / new_key_file_name(LATER), key)

    with pytest.raises(ConfigurationError, match="the same key is loaded twice"):
        load_key_ring(tmp_path)
