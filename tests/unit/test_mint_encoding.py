"""The upload-token encoder against PyJWT: the same tokens, whatever the claims.

`app.tokens.mint.encode_compact_jws` replaced `jwt.encode` on the mint path for speed
(see docs/performance.md). Its payload is orjson's JSON, which writes non-ASCII text as
UTF-8 where PyJWT's escapes it: for claims of printable ASCII (what CI claims are) the
payload is PyJWT's byte for byte, and Ed25519 and RSA PKCS#1 v1.5 signatures being
deterministic, so is the whole token; ECDSA signatures are not, so for P-256 the header
and payload segments must be equal. For any claims at all, PyJWT verifies the token and
decodes it to exactly the claims that were minted.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.tokens.keys import KeyRing, SigningKey, load_key_ring
from app.tokens.mint import UPLOAD_TOKEN_TYPE, UploadTokenMinter, encode_compact_jws
from app.tokens.verify import UploadTokenVerifier

DIFFERENTIAL = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Key generation is slow: one key per algorithm for the whole module.
PRIVATE_KEYS = {
    "EdDSA": Ed25519PrivateKey.generate(),
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
DETERMINISTIC = ("EdDSA", "RS256")
# PyJWT checks none of the registered claims here: the encoding is under test.
NO_CLAIM_CHECKS = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def _load(key: Any, directory: Path) -> SigningKey:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return load_key_ring(path).signer


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SigningKey]:
    root = tmp_path_factory.mktemp("mint-keys")
    return {alg: _load(key, root / alg) for alg, key in PRIVATE_KEYS.items()}


def pyjwt_encode(claims: dict[str, Any], key: SigningKey) -> str:
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": UPLOAD_TOKEN_TYPE},
    )


def pyjwt_decode(token: str, key: SigningKey) -> dict[str, Any]:
    """PyJWT's verification of the signature; the claims are returned as they are."""
    decoded: dict[str, Any] = jwt.decode(
        token, key.public_key, algorithms=[key.algorithm], options=NO_CLAIM_CHECKS
    )
    return decoded


# Publisher values come from CI claims: any string, including non-ASCII, control
# characters and lone surrogates (which only JSON escapes can carry).
texts = st.text(max_size=40)
# What CI claims are in practice: repository names, refs, ids, e-mail addresses.
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


def claim_sets(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "iss": text,
            "aud": text,
            "sub": text,
            "iat": st.integers(min_value=0, max_value=2**40),
            "nbf": st.integers(min_value=0, max_value=2**40),
            "exp": st.integers(min_value=0, max_value=2**40),
            "jti": text,
            "scope": st.just("upload"),
            "projects": st.lists(text, max_size=5),
            "publisher": st.dictionaries(text, text, max_size=8),
            "epoch": text,
        }
    )


@pytest.mark.parametrize("algorithm", DETERMINISTIC)
@DIFFERENTIAL
@given(claims=claim_sets(printable))
def test_deterministic_signatures_equal_pyjwt_byte_for_byte(
    signing_keys: dict[str, SigningKey], algorithm: str, claims: dict[str, Any]
) -> None:
    key = signing_keys[algorithm]

    token = encode_compact_jws(claims, key, UPLOAD_TOKEN_TYPE)

    assert token == pyjwt_encode(claims, key)
    assert pyjwt_decode(token, key) == claims


@pytest.mark.parametrize("algorithm", sorted(PRIVATE_KEYS))
@DIFFERENTIAL
@given(claims=claim_sets(texts))
def test_any_claims_verify_and_decode_to_themselves_with_pyjwt(
    signing_keys: dict[str, SigningKey], algorithm: str, claims: dict[str, Any]
) -> None:
    key = signing_keys[algorithm]

    token = encode_compact_jws(claims, key, UPLOAD_TOKEN_TYPE)

    header, payload, _ = token.split(".")
    assert header == pyjwt_encode(claims, key).split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == claims
    assert pyjwt_decode(token, key) == claims


@DIFFERENTIAL
@given(claims=claim_sets(printable))
def test_es256_segments_equal_pyjwt_and_pyjwt_verifies_the_signature(
    signing_keys: dict[str, SigningKey], claims: dict[str, Any]
) -> None:
    key = signing_keys["ES256"]

    token = encode_compact_jws(claims, key, UPLOAD_TOKEN_TYPE)

    header, payload, signature = token.split(".")
    reference = pyjwt_encode(claims, key).split(".")
    assert [header, payload] == reference[:2]
    assert len(signature) == len(reference[2]) == 86  # r || s, 64 bytes, not DER
    assert pyjwt_decode(token, key) == claims


@pytest.mark.parametrize("algorithm", sorted(PRIVATE_KEYS))
def test_header_is_pyjwts(signing_keys: dict[str, SigningKey], algorithm: str) -> None:
    key = signing_keys[algorithm]

    token = encode_compact_jws({"iss": "x"}, key, UPLOAD_TOKEN_TYPE)

    assert jwt.get_unverified_header(token) == {
        "alg": algorithm,
        "kid": key.kid,
        "typ": UPLOAD_TOKEN_TYPE,
    }


@pytest.mark.parametrize("algorithm", sorted(PRIVATE_KEYS))
@DIFFERENTIAL
@given(
    projects=st.frozensets(st.text(min_size=1, max_size=20), min_size=1, max_size=4),
    publisher=st.dictionaries(texts, texts, max_size=6),
    now=st.integers(min_value=1_600_000_000, max_value=2_000_000_000),
)
def test_minted_tokens_verify_with_pyjwt_and_with_trustpub(
    signing_keys: dict[str, SigningKey],
    algorithm: str,
    projects: frozenset[str],
    publisher: dict[str, str],
    now: int,
) -> None:
    key = signing_keys[algorithm]
    keys = KeyRing(keys=(key,), signer=key)
    minter = UploadTokenMinter(keys, "urn:trustpub:t", "urn:trustpub:upload:t", 900, "pypi-")
    verifier = UploadTokenVerifier(keys, "urn:trustpub:t", "urn:trustpub:upload:t", "pypi-")
    publisher = {"provider": "github", **publisher}

    minted = minter.mint(projects, publisher, "epoch-id:1", now)

    claims = pyjwt_decode(minted.token.removeprefix("pypi-"), key)
    assert claims["projects"] == sorted(projects)
    assert claims["publisher"] == publisher
    assert claims["jti"] == minted.jti
    verified = verifier.verify(minted.token, now)
    assert verified.claims == claims


def test_a_key_whose_type_does_not_fit_its_algorithm_cannot_sign(
    signing_keys: dict[str, SigningKey],
) -> None:
    ed = signing_keys["EdDSA"]
    mislabelled = SigningKey(
        kid=ed.kid, algorithm="RS256", private_key=ed.private_key, public_jwk=ed.public_jwk
    )

    with pytest.raises(ValueError, match="cannot sign RS256"):
        encode_compact_jws({"iss": "x"}, mislabelled, UPLOAD_TOKEN_TYPE)


def test_a_chosen_jti_is_the_tokens_id(signing_keys: dict[str, SigningKey]) -> None:
    # A caller that records the id before signing (one round trip for the replay claim
    # and the audit record) chooses it; the token must carry exactly that id.
    key = signing_keys["EdDSA"]
    keys = KeyRing(keys=(key,), signer=key)
    minter = UploadTokenMinter(keys, "urn:trustpub:t", "urn:trustpub:upload:t", 900, "pypi-")

    minted = minter.mint(frozenset({"demo"}), {"provider": "github"}, "e:1", 1_700_000_000, "j-1")

    assert minted.jti == "j-1"
    assert pyjwt_decode(minted.token.removeprefix("pypi-"), key)["jti"] == "j-1"


def test_a_minted_token_keeps_the_token_out_of_its_repr(
    signing_keys: dict[str, SigningKey],
) -> None:
    key = signing_keys["EdDSA"]
    keys = KeyRing(keys=(key,), signer=key)
    minter = UploadTokenMinter(keys, "urn:trustpub:t", "urn:trustpub:upload:t", 900, "pypi-")

    minted = minter.mint(frozenset({"demo"}), {"provider": "github"}, "e:1", 1_700_000_000, "j-1")

    signature = minted.token.rsplit(".", 1)[1]
    assert signature not in repr(minted)
    assert "token=" not in repr(minted)
    assert repr(minted).startswith("MintedToken(jti='j-1'")
