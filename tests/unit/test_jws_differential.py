"""app.oidc.jws against PyJWT: the same verdict on every token, but for the stricter rules.

trustpub verifies CI tokens with `cryptography` directly, after its own structural
checks (app/oidc/jws.py), instead of through PyJWT. This differential fuzz test holds it
to PyJWT's verdict (`jwt.decode` with the same key and `algorithms=["RS256"]`, claim
checks off: those are app.oidc.verify's, tested elsewhere), except where a token breaks
one of trustpub's documented stricter rules (RFC 8725; docs/endpoints.md):

- at most MAX_TOKEN_BYTES;
- base64url without padding (PyJWT accepts `=` padding);
- header and payload are UTF-8 JSON without a byte-order mark, without duplicate keys
  and without lone surrogates (PyJWT accepts UTF-16/32, a BOM, the last duplicate);
- no `jku`, `x5u`, `x5c`, `jwk`, `crit`, `cty`, `zip` or `b64` header;
- `typ`, when present and not null, is "JWT" in any case;
- `kid` is a non-empty string of at most 256 characters;
- the payload's `iss` is a non-empty string (the one claim read before verification).

So: trustpub accepts <=> PyJWT accepts and no stricter rule is broken. The rules are
decided here from the token's bytes, independently of app.oidc.jws. Tokens are signed
over whatever segments the strategies build, so a refusal is the rule's, not a bad
signature's, unless the strategy broke the signature on purpose.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.errors import TrustpubError
from app.oidc.jws import (
    MAX_TOKEN_BYTES,
    check_header,
    parse_compact_jws,
    read_unverified_routing,
    verify_signature,
)

DIFFERENTIAL = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_KEY = KEY.public_key()
ISSUER = "https://token.actions.githubusercontent.com"
FORBIDDEN_HEADERS = ("jku", "x5u", "x5c", "jwk", "crit", "cty", "zip", "b64")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PYJWT_OPTIONS: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


# -- the two verdicts and the rules ----------------------------------------------------------


def trustpub_accepts(token: str) -> bool:
    """What verify_identity_token does before the claims, for an issuer with one key."""
    try:
        parsed = parse_compact_jws(token)
        routing = read_unverified_routing(parsed)
        check_header(parsed)
        if routing.alg != "RS256" or routing.kid is None:
            return False  # the issuer's configured algorithm; a kid is required
        verify_signature(parsed, "RS256", PUBLIC_KEY)
    except TrustpubError:
        return False
    return True


def pyjwt_accepts(token: str) -> bool:
    try:
        jwt.PyJWT().decode_complete(token, PUBLIC_KEY, algorithms=["RS256"], options=PYJWT_OPTIONS)
    except Exception:  # any refusal, and PyJWT's crashes count as refusals too
        return False
    return True


def breaks_a_stricter_rule(token: str) -> bool:
    """True when one of trustpub's own rules refuses the token, PyJWT's verdict aside.

    Where a check below also makes PyJWT refuse (three segments, base64, JSON objects),
    answering True changes nothing: the expected verdict is a refusal either way.
    """
    if len(token) > MAX_TOKEN_BYTES:
        return True
    parts = token.split(".")
    if len(parts) != 3 or any("=" in part for part in parts):
        return True
    objects = []
    for part in parts[:2]:
        try:
            text = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return True
        duplicates: list[bool] = []
        try:
            # json.loads of a str refuses a byte-order mark; PyJWT's of bytes skips it.
            value = json.loads(text, object_pairs_hook=_noting_duplicates(duplicates))
        except (ValueError, RecursionError):
            return True
        if not isinstance(value, dict) or any(duplicates) or _has_lone_surrogate(value):
            return True
        objects.append(value)
    header, payload = objects
    if any(name in header for name in FORBIDDEN_HEADERS):
        return True
    typ = header.get("typ")
    if typ is not None and not (isinstance(typ, str) and typ.upper() == "JWT"):
        return True
    kid = header.get("kid")
    if not (isinstance(kid, str) and 0 < len(kid) <= 256):
        return True
    issuer = payload.get("iss")
    return not (isinstance(issuer, str) and issuer)


def _noting_duplicates(found: list[bool]) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.append(len({key for key, _ in pairs}) != len(pairs))
        return dict(pairs)

    return hook


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def assert_same_verdict(token: str) -> None:
    expected = pyjwt_accepts(token) and not breaks_a_stricter_rule(token)
    assert trustpub_accepts(token) == expected, token


# -- building tokens ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(header_segment: str, payload_segment: str) -> str:
    """Sign exactly these two segments, whatever they hold (the signature stays valid)."""
    message = f"{header_segment}.{payload_segment}".encode("utf-8", "surrogatepass")
    signature = KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return f"{header_segment}.{payload_segment}.{b64url(signature)}"


def json_segment(value: Any) -> str:
    return b64url(json.dumps(value).encode("utf-8", "surrogatepass"))


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
CLAIMS = st.fixed_dictionaries(
    {"iss": st.just(ISSUER) | JSON_VALUES, "aud": st.just("pypi.example.com")},
    optional={"jti": st.text(max_size=20), "sub": JSON_VALUES},
).flatmap(
    lambda claims: st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3).map(
        lambda extra: {**extra, **claims}
    )
)
HEADER_VALUES = {
    "alg": st.sampled_from(["RS256", "RS384", "HS256", "none", "rs256", ""]) | JSON_SCALARS,
    "kid": st.sampled_from(["key-1", "", "k" * 256, "k" * 257]) | JSON_SCALARS,
    "typ": st.sampled_from(["JWT", "jwt", "JOSE", "at+jwt", "trustpub-upload+jwt"]) | JSON_SCALARS,
    **{name: JSON_VALUES for name in FORBIDDEN_HEADERS},
    "x-extra": JSON_VALUES,
}
HEADERS = st.fixed_dictionaries(
    {"alg": st.just("RS256"), "kid": st.just("key-1")},
    optional={"typ": st.just("JWT")},
).flatmap(
    lambda base: st.dictionaries(
        st.sampled_from(sorted(HEADER_VALUES)), st.just(None), max_size=2
    ).flatmap(
        lambda chosen: st.fixed_dictionaries({name: HEADER_VALUES[name] for name in chosen}).map(
            lambda changes: {**base, **changes}
        )
    )
)


@DIFFERENTIAL
@given(header=HEADERS, claims=CLAIMS)
@example(header={"alg": "RS256", "kid": "key-1"}, claims={"iss": ISSUER})
@example(header={"alg": "RS256", "kid": "key-1", "typ": None}, claims={"iss": ISSUER})
@example(header={"alg": "RS256", "kid": "key-1", "b64": True}, claims={"iss": ISSUER})
@example(header={"alg": "RS256", "kid": "key-1", "crit": ["b64"]}, claims={"iss": ISSUER})
def test_well_formed_tokens_with_any_header_and_claims(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    assert_same_verdict(sign(json_segment(header), json_segment(claims)))


def with_issuer(rest: str) -> str:
    """JSON text of a payload with the issuer and `rest`, written out by hand."""
    return '{"iss":"' + ISSUER + '",' + rest + "}"


GOOD_HEADER = '{"alg":"RS256","kid":"key-1","typ":"JWT"}'
GOOD_PAYLOAD = with_issuer('"aud":"pypi.example.com"')
# JSON texts a parser may read differently, or not at all.
HOSTILE_JSON = st.sampled_from(
    [
        '{"alg":"RS256","kid":"key-1","alg":"HS256"}',
        with_issuer('"iss":"https://evil.example"'),
        with_issuer('"aud":{"a":1,"a":2}'),
        '\ufeff{"alg":"RS256","kid":"key-1"}',
        '{"alg":"RS256","kid":"key-1","x":"\\ud800"}',
        with_issuer('"\\udfff":1'),
        with_issuer('"x":["\\ud83d"]'),
        with_issuer('"x":"\\ud83d\\ude00"'),
        with_issuer('"x":"\\\\ud800"'),
        with_issuer('"n":NaN,"m":-Infinity'),
        with_issuer('"deep":' + "[" * 5000 + "]" * 5000),
        with_issuer('"big":' + "9" * 5000),
        " \n" + GOOD_PAYLOAD + "\t ",
        GOOD_PAYLOAD + "x",
        "[]",
        '"just a string"',
        "null",
        "",
        "{",
    ]
)
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "cesu"])


def encode_text(text: str, encoding: str) -> bytes:
    if encoding == "cesu":  # surrogates written out as bytes: not UTF-8
        return text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "surrogatepass")


@DIFFERENTIAL
@given(
    header=st.just(GOOD_HEADER) | HOSTILE_JSON,
    payload=st.just(GOOD_PAYLOAD) | HOSTILE_JSON,
    header_encoding=ENCODINGS,
    payload_encoding=ENCODINGS,
)
def test_hostile_json_texts_and_encodings(
    header: str, payload: str, header_encoding: str, payload_encoding: str
) -> None:
    try:
        raw_header = encode_text(header, header_encoding)
        raw_payload = encode_text(payload, payload_encoding)
    except UnicodeEncodeError:
        return  # latin-1 cannot hold the text: nothing to test
    assert_same_verdict(sign(b64url(raw_header), b64url(raw_payload)))


def noncanonical(segment: str) -> str:
    """The same bytes with the unused low bits of the last character set."""
    unused = {2: 0b1111, 3: 0b11}.get(len(segment) % 4, 0)
    if not unused:
        return segment
    value = ALPHABET.index(segment[-1]) | unused
    return segment[:-1] + ALPHABET[value]


SEGMENT_EDITS = st.sampled_from(
    [
        "none",
        "pad",
        "pad-wrong",
        "noncanonical",
        "standard-alphabet",
        "space",
        "newline",
        "junk",
        "drop-last",
        "empty",
    ]
)


def edit_segment(segment: str, edit: str) -> str:
    if edit == "pad":
        return segment + "=" * (-len(segment) % 4)
    if edit == "pad-wrong":
        return segment + "="
    if edit == "noncanonical":
        return noncanonical(segment)
    if edit == "standard-alphabet":
        return segment.replace("-", "+").replace("_", "/")
    if edit == "space":
        return segment[:4] + " " + segment[4:]
    if edit == "newline":
        return segment + "\n"
    if edit == "junk":
        return segment[:3] + "!" + segment[3:]
    if edit == "drop-last":
        return segment[:-1]
    if edit == "empty":
        return ""
    return segment


# Payloads whose segment lengths end in every residue mod 4, with "-" and "_" in them.
PAYLOADS = st.integers(min_value=0, max_value=7).map(
    lambda n: with_issuer(f'"aud":"pypi.example.com","p":"{"?>~" * n}"')
)


@DIFFERENTIAL
@given(
    payload=PAYLOADS,
    header_edit=SEGMENT_EDITS,
    payload_edit=SEGMENT_EDITS,
    signature_edit=SEGMENT_EDITS,
)
@example(
    payload=GOOD_PAYLOAD, header_edit="none", payload_edit="none", signature_edit="noncanonical"
)
def test_base64url_spellings_of_each_segment(
    payload: str, header_edit: str, payload_edit: str, signature_edit: str
) -> None:
    header_segment = edit_segment(b64url(GOOD_HEADER.encode()), header_edit)
    payload_segment = edit_segment(b64url(payload.encode()), payload_edit)
    # Header and payload edits are signed over; the signature's own spelling is not.
    head, body, signature = sign(header_segment, payload_segment).split(".")
    token = f"{head}.{body}.{edit_segment(signature, signature_edit)}"
    if not token.isascii():
        return
    assert_same_verdict(token)


TOKEN_EDITS = st.sampled_from(
    [
        "flip-signature",
        "other-signature",
        "truncate-signature",
        "empty-signature",
        "extra-segment",
        "two-segments",
        "swap",
        "oversize",
        "leading-space",
        "trailing-dot",
    ]
)
OTHER_TOKEN = sign(b64url(GOOD_HEADER.encode()), b64url(b'{"iss":"other"}'))


def edit_token(token: str, edit: str, position: int) -> str:
    head, body, signature = token.split(".")
    if edit == "flip-signature":
        index = position % len(signature)
        replacement = "A" if signature[index] != "A" else "B"
        return f"{head}.{body}.{signature[:index]}{replacement}{signature[index + 1 :]}"
    if edit == "other-signature":
        return f"{head}.{body}.{OTHER_TOKEN.split('.')[2]}"
    if edit == "truncate-signature":
        return f"{head}.{body}.{signature[: position % len(signature)]}"
    if edit == "empty-signature":
        return f"{head}.{body}."
    if edit == "extra-segment":
        return f"{token}.{signature}"
    if edit == "two-segments":
        return f"{head}.{body}"
    if edit == "swap":
        return f"{body}.{head}.{signature}"
    if edit == "oversize":
        padded = GOOD_PAYLOAD[:-1] + ',"pad":"%s"}' % ("x" * MAX_TOKEN_BYTES)
        return sign(head, b64url(padded.encode()))
    if edit == "leading-space":
        return " " + token
    return token + "."


@DIFFERENTIAL
@given(edit=TOKEN_EDITS, position=st.integers(min_value=0, max_value=400))
def test_tampered_and_malformed_tokens(edit: str, position: int) -> None:
    token = sign(b64url(GOOD_HEADER.encode()), b64url(GOOD_PAYLOAD.encode()))
    assert_same_verdict(edit_token(token, edit, position))


def test_a_valid_token_is_accepted_by_both() -> None:
    token = sign(b64url(GOOD_HEADER.encode()), b64url(GOOD_PAYLOAD.encode()))

    assert trustpub_accepts(token)
    assert pyjwt_accepts(token)


def test_a_noncanonical_signature_is_refused_like_pyjwt_does() -> None:
    # Same signature bytes, another spelling: accepting it would make tokens malleable.
    head, body, signature = sign(b64url(GOOD_HEADER.encode()), b64url(GOOD_PAYLOAD.encode())).split(
        "."
    )
    token = f"{head}.{body}.{noncanonical(signature)}"
    assert token.split(".")[2] != signature

    assert not pyjwt_accepts(token)
    assert not trustpub_accepts(token)
