"""Strict compact-JWS parsing, the one unverified read, header rules and signatures."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.errors import InvalidPayload, InvalidToken, TrustpubError
from app.oidc.jws import (
    MAX_TOKEN_BYTES,
    ParsedToken,
    check_header,
    parse_compact_jws,
    read_unverified_routing,
    verify_signature,
)

ISSUER = "https://token.actions.githubusercontent.com"

# RSA key generation is slow: one 2048-bit key for the whole module.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_P384_KEY = ec.generate_private_key(ec.SECP384R1())
ED_KEY = Ed25519PrivateKey.generate()
OTHER_ED_KEY = Ed25519PrivateKey.generate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    """A JSON value as a base64url segment; a str is taken as raw JSON text."""
    text = value if isinstance(value, str) else json.dumps(value)
    return b64url(text.encode("utf-8"))


HEADER = segment({"alg": "RS256", "kid": "k1", "typ": "JWT"})
PAYLOAD = segment({"iss": ISSUER, "aud": "pypi.example.com"})
SIGNATURE = b64url(b"not-a-real-signature")


def compact(header: str = HEADER, payload: str = PAYLOAD, signature: str = SIGNATURE) -> str:
    return f"{header}.{payload}.{signature}"


def parsed_with_header(header: dict[str, Any]) -> ParsedToken:
    return parse_compact_jws(compact(header=segment(header)))


# -- parse_compact_jws ---------------------------------------------------------------


def test_parse_valid_token() -> None:
    token = parse_compact_jws(compact())

    assert token.header == {"alg": "RS256", "kid": "k1", "typ": "JWT"}
    assert token.claims == {"iss": ISSUER, "aud": "pypi.example.com"}
    assert token.signing_input == f"{HEADER}.{PAYLOAD}".encode("ascii")
    assert token.signature == b"not-a-real-signature"


def test_parse_size_limit_is_exact() -> None:
    # Fill the signature segment so the token is exactly MAX_TOKEN_BYTES long; vary the
    # payload by a character until that segment's length is valid base64url (not 4n+1).
    for pad in range(4):
        prefix = f"{HEADER}.{segment({'iss': ISSUER, 'pad': 'x' * pad})}."
        room = MAX_TOKEN_BYTES - len(prefix)
        if room % 4 != 1:
            break
    at_limit = prefix + "A" * room
    assert len(at_limit) == MAX_TOKEN_BYTES

    assert parse_compact_jws(at_limit).claims["iss"] == ISSUER
    with pytest.raises(InvalidPayload, match="too large"):
        parse_compact_jws(at_limit + "A")


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("A" * (MAX_TOKEN_BYTES + 1), "too large"),
        (compact() + "." * 20_000, "too large"),
        (compact(signature=SIGNATURE + "é"), "non-ASCII"),
        (compact(payload=segment({"iss": ISSUER})[:-2] + "\u00ff\u00ff"), "non-ASCII"),
        (f"{HEADER}.{PAYLOAD}", "three non-empty"),
        (f"{HEADER}.{PAYLOAD}.{SIGNATURE}.{SIGNATURE}", "three non-empty"),
        (f"{HEADER}", "three non-empty"),
        ("", "three non-empty"),
        (f".{PAYLOAD}.{SIGNATURE}", "three non-empty"),
        (f"{HEADER}..{SIGNATURE}", "three non-empty"),
        (f"{HEADER}.{PAYLOAD}.", "three non-empty"),
        ("..", "three non-empty"),
        # The standard alphabet, padding and whitespace are not base64url.
        (compact(header="eyJhbGciOiJSUzI1NiJ9+"), "header is not base64url"),
        (compact(payload=PAYLOAD[:8] + "/" + PAYLOAD[9:]), "payload is not base64url"),
        (compact(signature=SIGNATURE[:4] + "+/" + SIGNATURE[6:]), "signature is not base64url"),
        (compact(signature=b64url(b"sig") + "="), "signature is not base64url"),
        (compact(header=segment({"alg": "RS256", "k": "v"}) + "=="), "header is not base64url"),
        (compact(payload=PAYLOAD[:10] + " " + PAYLOAD[10:]), "payload is not base64url"),
        (compact(payload=PAYLOAD + "\n"), "payload is not base64url"),
        # A length of 4n+1 cannot come from any byte string.
        (compact(signature="abcde"), "signature is not base64url"),
        (compact(header=HEADER + "A" * (4 - len(HEADER) % 4 + 1)), "header is not base64url"),
    ],
    ids=[
        "over-16KiB",
        "over-16KiB-of-dots",
        "non-ascii-signature",
        "non-ascii-payload",
        "two-parts",
        "four-parts",
        "one-part",
        "empty-string",
        "empty-header",
        "empty-payload",
        "empty-signature",
        "only-dots",
        "plus-in-header",
        "slash-in-payload",
        "plus-slash-in-signature",
        "padding-in-signature",
        "padding-in-header",
        "space-in-payload",
        "newline-after-payload",
        "length-mod-4-is-1",
        "header-length-mod-4-is-1",
    ],
)
def test_parse_rejects_malformed_structure(token: str, fragment: str) -> None:
    with pytest.raises(InvalidPayload) as excinfo:
        parse_compact_jws(token)

    assert excinfo.value.code == "invalid-payload"
    assert fragment in excinfo.value.description


@pytest.mark.parametrize(
    ("part", "raw_json", "fragment"),
    [
        ("header", b'{"alg":"RS256","x":"\xff\xfe"}', "header is not UTF-8"),
        ("payload", b'{"iss":"\xc3\x28"}', "payload is not UTF-8"),
        ("payload", b"\xef\xbb\xbf" + b'{"iss":"x"}', "payload is not a JSON object"),
        ("header", b"[1, 2]", "header is not a JSON object"),
        ("payload", b'"https://issuer"', "payload is not a JSON object"),
        ("payload", b"42", "payload is not a JSON object"),
        ("payload", b"null", "payload is not a JSON object"),
        ("payload", b"{", "payload is not a JSON object"),
        ("payload", b'{"iss": "x"} {"iss": "y"}', "payload is not a JSON object"),
        ("payload", b"[" * 5000 + b"]" * 5000, "payload is not a JSON object"),
        # Two parsers could read two different values from one token.
        ("header", b'{"alg":"RS256","alg":"none"}', "header is not a JSON object"),
        ("payload", b'{"iss":"a","aud":"x","iss":"b"}', "payload is not a JSON object"),
        ("payload", b'{"iss":"a","nested":{"k":1,"k":2}}', "payload is not a JSON object"),
        ("payload", b'{"iss":"a","list":[{"k":1,"k":1}]}', "payload is not a JSON object"),
        # Lone surrogate escapes parse as str but cannot be encoded again.
        ("header", rb'{"alg":"RS256","kid":"\ud800"}', "header is not a JSON object"),
        ("payload", rb'{"iss":"\udc00"}', "payload is not a JSON object"),
        ("payload", rb'{"iss":"x","\ud800":"key"}', "payload is not a JSON object"),
        ("payload", rb'{"iss":"x","aud":["ok","\ud800"]}', "payload is not a JSON object"),
        ("payload", rb'{"iss":"x","deep":[["\udfff"]]}', "payload is not a JSON object"),
        ("payload", rb'{"iss":"x","obj":{"k":"\ud800"}}', "payload is not a JSON object"),
        ("payload", rb'{"iss":"x","pair":"\ude00\ud83d"}', "payload is not a JSON object"),
    ],
    ids=[
        "header-not-utf8",
        "payload-not-utf8",
        "payload-utf8-bom",
        "header-array",
        "payload-string",
        "payload-number",
        "payload-null",
        "payload-truncated",
        "payload-two-objects",
        "payload-deeply-nested",
        "duplicate-header-key",
        "duplicate-payload-key",
        "duplicate-nested-key",
        "duplicate-key-in-list",
        "lone-surrogate-header",
        "lone-surrogate-payload",
        "lone-surrogate-in-key",
        "lone-surrogate-in-list",
        "lone-surrogate-in-nested-list",
        "lone-surrogate-in-nested-object",
        "reversed-surrogate-pair",
    ],
)
def test_parse_rejects_bad_json(part: str, raw_json: bytes, fragment: str) -> None:
    encoded = b64url(raw_json)
    token = compact(header=encoded) if part == "header" else compact(payload=encoded)

    with pytest.raises(InvalidPayload) as excinfo:
        parse_compact_jws(token)

    assert excinfo.value.code == "invalid-payload"
    assert fragment in excinfo.value.description


@pytest.mark.parametrize(
    ("raw_json", "expected"),
    [
        (rb'{"iss":"x","emoji":"\ud83d\ude00"}', "\U0001f600"),
        ('{"iss":"x","emoji":"\U0001f600"}'.encode(), "\U0001f600"),
        ('{"iss":"x","emoji":"caf\u00e9"}'.encode(), "caf\u00e9"),
    ],
    ids=["escaped-surrogate-pair", "raw-utf8-astral", "raw-utf8-latin"],
)
def test_parse_accepts_valid_unicode(raw_json: bytes, expected: str) -> None:
    token = parse_compact_jws(compact(payload=b64url(raw_json)))

    assert token.claims["emoji"] == expected


# -- read_unverified_routing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "claims", "expected"),
    [
        ({"alg": "RS256", "kid": "k1"}, {"iss": ISSUER}, (ISSUER, "k1", "RS256")),
        ({"alg": "ES256"}, {"iss": ISSUER}, (ISSUER, None, "ES256")),
        ({"alg": "RS256", "kid": "k" * 256}, {"iss": ISSUER}, (ISSUER, "k" * 256, "RS256")),
    ],
    ids=["issuer-kid-alg", "no-kid", "kid-256-chars"],
)
def test_routing_reads_issuer_kid_alg(
    header: dict[str, Any], claims: dict[str, Any], expected: tuple[str, str | None, str]
) -> None:
    routing = read_unverified_routing(
        parse_compact_jws(compact(header=segment(header), payload=segment(claims)))
    )

    assert (routing.issuer, routing.kid, routing.alg) == expected


@pytest.mark.parametrize(
    ("header", "claims", "error", "fragment"),
    [
        ({"alg": "RS256", "kid": "k1"}, {"aud": "x"}, InvalidPayload, "'iss'"),
        ({"alg": "RS256", "kid": "k1"}, {"iss": None}, InvalidPayload, "'iss'"),
        ({"alg": "RS256", "kid": "k1"}, {"iss": ""}, InvalidPayload, "'iss'"),
        ({"alg": "RS256", "kid": "k1"}, {"iss": 5}, InvalidPayload, "'iss'"),
        ({"alg": "RS256", "kid": "k1"}, {"iss": [ISSUER]}, InvalidPayload, "'iss'"),
        ({"alg": "RS256", "kid": "k1"}, {"iss": {"url": ISSUER}}, InvalidPayload, "'iss'"),
        ({"alg": "RS256", "kid": 1}, {"iss": ISSUER}, InvalidToken, "'kid'"),
        ({"alg": "RS256", "kid": ["k1"]}, {"iss": ISSUER}, InvalidToken, "'kid'"),
        ({"alg": "RS256", "kid": True}, {"iss": ISSUER}, InvalidToken, "'kid'"),
        ({"alg": "RS256", "kid": ""}, {"iss": ISSUER}, InvalidToken, "'kid'"),
        ({"alg": "RS256", "kid": "k" * 257}, {"iss": ISSUER}, InvalidToken, "'kid'"),
        ({"kid": "k1"}, {"iss": ISSUER}, InvalidToken, "'alg'"),
        ({"alg": None, "kid": "k1"}, {"iss": ISSUER}, InvalidToken, "'alg'"),
        ({"alg": ["RS256"], "kid": "k1"}, {"iss": ISSUER}, InvalidToken, "'alg'"),
    ],
    ids=[
        "iss-missing",
        "iss-null",
        "iss-empty",
        "iss-number",
        "iss-list",
        "iss-object",
        "kid-number",
        "kid-list",
        "kid-bool",
        "kid-empty",
        "kid-257-chars",
        "alg-missing",
        "alg-null",
        "alg-list",
    ],
)
def test_routing_rejects(
    header: dict[str, Any],
    claims: dict[str, Any],
    error: type[TrustpubError],
    fragment: str,
) -> None:
    token = parse_compact_jws(compact(header=segment(header), payload=segment(claims)))

    with pytest.raises(error) as excinfo:
        read_unverified_routing(token)

    assert type(excinfo.value) is error
    assert fragment in excinfo.value.description


# -- check_header --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"jku": "https://attacker.example/jwks.json"}, "jku"),
        ({"x5u": "https://attacker.example/cert.pem"}, "x5u"),
        ({"x5c": ["MIIB..."]}, "x5c"),
        ({"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, "jwk"),
        ({"crit": ["exp"]}, "crit"),
        ({"crit": []}, "crit"),
        ({"cty": "JWT"}, "cty"),
        ({"zip": "DEF"}, "zip"),
        ({"b64": False}, "b64"),
        ({"jku": "https://a.example", "x5u": "https://b.example"}, "jku, x5u"),
        ({"typ": "trustpub-upload+jwt"}, "'typ' is not JWT"),
        ({"typ": "at+jwt"}, "'typ' is not JWT"),
        ({"typ": "JOSE"}, "'typ' is not JWT"),
        ({"typ": "JWT "}, "'typ' is not JWT"),
        ({"typ": ""}, "'typ' is not JWT"),
        ({"typ": 1}, "'typ' is not JWT"),
        ({"typ": ["JWT"]}, "'typ' is not JWT"),
        ({"typ": None}, None),  # explicit null is the same as absent
    ],
    ids=[
        "jku",
        "x5u",
        "x5c",
        "jwk",
        "crit",
        "crit-empty",
        "cty",
        "zip",
        "b64",
        "jku-and-x5u",
        "typ-upload-token",
        "typ-access-token",
        "typ-JOSE",
        "typ-trailing-space",
        "typ-empty",
        "typ-number",
        "typ-list",
        "typ-null",
    ],
)
def test_check_header_rejects(extra: dict[str, Any], fragment: str | None) -> None:
    token = parsed_with_header({"alg": "RS256", "kid": "k1", **extra})

    if fragment is None:
        check_header(token)
        return
    with pytest.raises(InvalidToken) as excinfo:
        check_header(token)

    assert excinfo.value.code == "invalid-token"
    assert fragment in excinfo.value.description


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "kid": "k1", "typ": "JWT"},
        {"alg": "RS256", "kid": "k1", "typ": "jwt"},
        {"alg": "RS256", "kid": "k1"},
        # GitHub sends x5t next to kid: informational, not a key source.
        {"alg": "RS256", "kid": "k1", "typ": "JWT", "x5t": "abc"},
    ],
    ids=["typ-JWT", "typ-jwt", "typ-absent", "x5t-allowed"],
)
def test_check_header_accepts(header: dict[str, Any]) -> None:
    check_header(parsed_with_header(header))  # no exception


# -- verify_signature ----------------------------------------------------------------

SignKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Ed25519PrivateKey


def signed(alg: str, key: SignKey, claims: dict[str, Any] | None = None) -> ParsedToken:
    token = jwt.encode(claims or {"iss": ISSUER, "sub": "x"}, key, algorithm=alg)
    return parse_compact_jws(token)


@pytest.mark.parametrize(
    ("alg", "key"),
    [("RS256", RSA_KEY), ("ES256", EC_KEY), ("EdDSA", ED_KEY)],
    ids=["RS256", "ES256", "EdDSA"],
)
def test_signature_with_right_key_verifies(alg: str, key: SignKey) -> None:
    verify_signature(signed(alg, key), alg, key.public_key())  # no exception


@pytest.mark.parametrize(
    ("sign_alg", "sign_key", "verify_alg", "verify_key", "fragment"),
    [
        # Key type must fit the algorithm, whatever the header or the caller says.
        ("ES256", EC_KEY, "ES256", RSA_KEY.public_key(), "did not verify"),
        ("RS256", RSA_KEY, "RS256", EC_KEY.public_key(), "did not verify"),
        ("RS256", RSA_KEY, "RS256", ED_KEY.public_key(), "did not verify"),
        ("EdDSA", ED_KEY, "EdDSA", EC_KEY.public_key(), "did not verify"),
        ("ES256", EC_KEY, "ES256", EC_P384_KEY.public_key(), "did not verify"),
        ("ES256", EC_KEY, "ES384", EC_KEY.public_key(), "did not verify"),
        # Same key type, another key.
        ("ES256", EC_KEY, "ES256", OTHER_EC_KEY.public_key(), "did not verify"),
        ("EdDSA", ED_KEY, "EdDSA", OTHER_ED_KEY.public_key(), "did not verify"),
        # Right key, other algorithm of the same family.
        ("RS256", RSA_KEY, "RS512", RSA_KEY.public_key(), "did not verify"),
        # Never taken from the header; never HMAC, never unsigned.
        ("RS256", RSA_KEY, "HS256", RSA_KEY.public_key(), "algorithm HS256 is not supported"),
        ("RS256", RSA_KEY, "none", RSA_KEY.public_key(), "algorithm none is not supported"),
        ("RS256", RSA_KEY, "PS256", RSA_KEY.public_key(), "algorithm PS256 is not supported"),
        ("RS256", RSA_KEY, "rs256", RSA_KEY.public_key(), "algorithm rs256 is not supported"),
    ],
    ids=[
        "ES256-alg-RSA-key",
        "RS256-alg-EC-key",
        "RS256-alg-Ed25519-key",
        "EdDSA-alg-EC-key",
        "ES256-alg-P384-key",
        "ES384-alg-P256-key",
        "ES256-other-key",
        "EdDSA-other-key",
        "RS512-for-RS256-signature",
        "HS256",
        "none",
        "PS256",
        "lower-case-alg",
    ],
)
def test_signature_rejected(
    sign_alg: str, sign_key: SignKey, verify_alg: str, verify_key: Any, fragment: str
) -> None:
    token = signed(sign_alg, sign_key)

    with pytest.raises(InvalidToken) as excinfo:
        verify_signature(token, verify_alg, verify_key)

    assert excinfo.value.code == "invalid-token"
    assert fragment in excinfo.value.description


def _tamper_payload(token: ParsedToken) -> ParsedToken:
    header_b64, _ = token.signing_input.split(b".")
    forged = segment({"iss": ISSUER, "sub": "attacker"}).encode("ascii")
    return ParsedToken(
        header=token.header,
        claims={"iss": ISSUER, "sub": "attacker"},
        signing_input=header_b64 + b"." + forged,
        signature=token.signature,
    )


def _tamper_signature(token: ParsedToken) -> ParsedToken:
    flipped = bytes([token.signature[0] ^ 0x01]) + token.signature[1:]
    return ParsedToken(token.header, token.claims, token.signing_input, flipped)


def _truncate_signature(token: ParsedToken) -> ParsedToken:
    return ParsedToken(token.header, token.claims, token.signing_input, token.signature[:-1])


@pytest.mark.parametrize(
    ("alg", "key"),
    [("RS256", RSA_KEY), ("ES256", EC_KEY), ("EdDSA", ED_KEY)],
    ids=["RS256", "ES256", "EdDSA"],
)
@pytest.mark.parametrize(
    "tamper",
    [_tamper_payload, _tamper_signature, _truncate_signature],
    ids=["payload", "signature-bit", "signature-truncated"],
)
def test_tampered_token_does_not_verify(alg: str, key: SignKey, tamper: Any) -> None:
    token = tamper(signed(alg, key))

    with pytest.raises(InvalidToken, match="did not verify"):
        verify_signature(token, alg, key.public_key())


def test_tampered_payload_through_the_parser() -> None:
    token = jwt.encode({"iss": ISSUER, "sub": "octo"}, RSA_KEY, algorithm="RS256")
    header, _, signature = token.split(".")
    forged = parse_compact_jws(f"{header}.{segment({'iss': ISSUER, 'sub': 'evil'})}.{signature}")

    with pytest.raises(InvalidToken, match="did not verify"):
        verify_signature(forged, "RS256", RSA_KEY.public_key())


def test_es256_der_signature_is_rejected() -> None:
    """JWS ECDSA signatures are raw r||s; a DER-encoded one is not accepted as well."""
    token = signed("ES256", EC_KEY)
    der = EC_KEY.sign(token.signing_input, ec.ECDSA(hashes.SHA256()))
    token = ParsedToken(token.header, token.claims, token.signing_input, der)

    with pytest.raises(InvalidToken, match="did not verify"):
        verify_signature(token, "ES256", EC_KEY.public_key())


def test_rsa_key_below_2048_bits_never_verifies() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (on purpose)
    header = segment({"alg": "RS256", "kid": "weak"})
    payload = segment({"iss": ISSUER})
    signature = weak.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    token = parse_compact_jws(f"{header}.{payload}.{b64url(signature)}")

    with pytest.raises(InvalidToken, match="did not verify"):
        verify_signature(token, "RS256", weak.public_key())


def test_signature_segment_decodes_as_base64_does_for_every_length_and_last_character() -> None:
    # The decoder translates the alphabet itself rather than calling base64: for every
    # segment length mod 4 and every possible last character, it must give exactly what
    # base64.urlsafe_b64decode gives, or refuse where the canonical spelling rule does.
    header, claims = segment({"alg": "RS256"}), segment({"iss": ISSUER})
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    decoded = refused = 0
    for stem in ("", "Q", "QU", "QUJ", "QUJD", "-_-_", "_-_-z"):
        for last in alphabet:
            signature = stem + last
            padded = signature + "=" * (-len(signature) % 4)
            try:
                expected = base64.urlsafe_b64decode(padded)
                canonical = b64url(expected) == signature
            except ValueError:
                expected, canonical = None, False
            token = f"{header}.{claims}.{signature}"
            if canonical:
                assert parse_compact_jws(token).signature == expected, signature
                decoded += 1
            else:
                with pytest.raises(InvalidPayload, match="signature is not base64url"):
                    parse_compact_jws(token)
                refused += 1
    # Both sides of the rule were reached.
    assert decoded > 50
    assert refused > 50


def test_segments_accept_exactly_the_url_safe_alphabet() -> None:
    # Every ASCII character (tokens are ASCII-checked first; "." splits segments) in
    # the middle of a segment whose length needs no padding: decoded as base64 decodes
    # it if it belongs to base64url, refused otherwise, whatever base64 would skip or read.
    header, claims = segment({"alg": "RS256"}), segment({"iss": ISSUER})
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    refused = 0
    for character in map(chr, range(128)):
        if character == ".":
            continue
        signature = f"QUJD{character}QUJ"
        token = f"{header}.{claims}.{signature}"
        if character in alphabet:
            expected = base64.urlsafe_b64decode(signature)
            assert parse_compact_jws(token).signature == expected, repr(character)
        else:
            with pytest.raises(InvalidPayload, match="signature is not base64url"):
                parse_compact_jws(token)
            refused += 1
    assert refused == 128 - 1 - len(alphabet)


def test_a_parsed_token_keeps_the_token_out_of_its_repr() -> None:
    parsed = parse_compact_jws(compact())

    assert HEADER not in repr(parsed)
    # The signature is held decoded: its base64url text could never appear in a repr,
    # so look for the field and its bytes instead.
    assert "signature=" not in repr(parsed)
    assert repr(parsed.signature) not in repr(parsed)
    assert repr(parsed).startswith("ParsedToken(header=")
