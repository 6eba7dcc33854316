"""An adversarial corpus for `POST /_/oidc/mint-token`: crafted tokens and request bodies.

Every case is sent to a real app (real Redis, real HTTPS issuer) and must be refused
with the status and error code the contract gives for it (contract.md, "Mint
endpoint"), in the contract envelope: none may produce a 200 or a 500. After every case:

- no replay record was written (a refused token never burns a `jti`);
- no URL named by the token or the body was contacted (the attacker's HTTP server and
  the attacker's HTTPS issuer count zero requests);
- the trusted issuer was asked for its keys at most once (discovery + JWKS), and not at
  all when the token named an issuer that is not configured;
- the description does not echo the token.

Most tokens carry a real RS256 signature by the trusted issuer's key over exactly the
bytes shown, so only the rule under test can refuse them.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from flask.testing import FlaskClient
from integration.exchange_api import (
    AUDIENCE,
    MINT_PATH,
    assert_failure,
    assert_minted,
    mint,
    replay_keys,
)
from integration.handmade import b64url, rs256_jws
from support.claims import REMOVE, github_claims, gitlab_claims
from support.oidc_issuer import OIDCIssuer
from werkzeug.test import TestResponse

from app.oidc.dev_issuer import DEV_ISSUER

from .conftest import ATTACKER_KID, CountingServer

PAYLOAD = "invalid-payload"
TOKEN = "invalid-token"
PUBLISHER = "invalid-publisher"
TOO_LARGE = "payload-too-large"

MAX_TOKEN_BYTES = 16 * 1024
MAX_MINT_BODY_BYTES = MAX_TOKEN_BYTES + 1024

GITHUB_REQUIRED_CLAIMS = (
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "sha",
    "event_name",
    "run_id",
)
WORKFLOWS = "octo-org/demo/.github/workflows/"


@dataclass(frozen=True)
class Body:
    """A raw request body, for cases about the body rather than the token."""

    data: bytes
    chunked: bool = False
    content_type: str = "application/json"


@dataclass
class Env:
    """What a case may use to build its request."""

    issuer: OIDCIssuer
    attacker: OIDCIssuer
    attacker_http: CountingServer
    client: FlaskClient
    now: int

    @property
    def kid(self) -> str:
        return self.issuer.current_kid

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return self.issuer.private_key(self.kid)

    @property
    def attacker_key(self) -> rsa.RSAPrivateKey:
        return self.attacker.private_key(ATTACKER_KID)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return github_claims(self.issuer.url, AUDIENCE, now=self.now, **overrides)

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        for name, value in overrides.items():
            if value is REMOVE:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def sign(
        self,
        payload: Mapping[str, Any] | bytes | None = None,
        header: Mapping[str, Any] | bytes | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """A real RS256 signature over exactly this header and payload."""
        return rs256_jws(
            self.header() if header is None else header,
            self.claims() if payload is None else payload,
            key or self.key,
        )

    def token(self, **claim_overrides: Any) -> str:
        return self.sign(self.claims(**claim_overrides))

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, str]:
        (entry,) = (k for k in self.issuer.jwks()["keys"] if k["kid"] == self.kid)
        return entry

    def upload_token(self) -> str:
        """A genuine upload token minted by this app (it burns one valid OIDC token)."""
        minted: str = assert_minted(mint(self.client, self.token()))["token"]
        return minted


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Env], str | Body]
    status: int
    code: str
    # The token names an issuer that is not configured: the trusted one must not be
    # asked for keys either (nothing is fetched before the issuer is known).
    no_fetch: bool = False
    # The description must name this claim (the caller's own verified claim).
    names: str | None = None


def _segments(token: str) -> list[str]:
    return token.split(".")


def _seg(value: Mapping[str, Any] | bytes) -> str:
    return b64url(value if isinstance(value, bytes) else json.dumps(value).encode())


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value)


def _with_duplicate(text: str, name: str, first: Any) -> bytes:
    """JSON text whose object has `name` twice: `first`, then the original value last."""
    return ('{"' + name + '": ' + json.dumps(first) + ", " + text[1:]).encode()


def _hmac_token(env: Env, secret: bytes, alg: str = "HS256") -> str:
    return env.issuer.sign(env.claims(), kid=env.kid, alg=alg, key=secret)


def _self_signed_cert_b64(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token.actions.attacker")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _eddsa_token(env: Env) -> str:
    key = Ed25519PrivateKey.generate()
    signing_input = f"{_seg(env.header(alg='EdDSA'))}.{_seg(env.claims())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def _std_alphabet_signature(env: Env) -> str:
    header, payload, signature = _segments(env.token())
    standard = signature.replace("-", "+").replace("_", "/")
    if standard == signature:  # no - or _ in this signature: force one
        standard = "+" + signature[1:]
    return f"{header}.{payload}.{standard}"


def _signature_of_another_token(env: Env) -> str:
    header, payload, _ = _segments(env.token(run_id="1"))
    *_, other_signature = _segments(env.token(run_id="2"))
    return f"{header}.{payload}.{other_signature}"


def _payload_swapped(env: Env) -> str:
    header, _, signature = _segments(env.token(repository_owner_id="666"))
    _, genuine_payload, _ = _segments(env.token())
    return f"{header}.{genuine_payload}.{signature}"


def _non_canonical_signature(env: Env) -> str:
    """The same signature bytes, spelled with non-zero spare bits in the last character."""
    header, payload, signature = _segments(env.token())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare_bits = {2: 0b1111, 3: 0b11}[len(signature) % 4]
    last = alphabet[alphabet.index(signature[-1]) ^ spare_bits]
    respelled = signature[:-1] + last
    assert base64.urlsafe_b64decode(respelled + "==") == base64.urlsafe_b64decode(signature + "==")
    return f"{header}.{payload}.{respelled}"


def _truncated_signature(env: Env) -> str:
    header, payload, signature = _segments(env.token())
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return f"{header}.{payload}.{b64url(raw[:-1])}"


def _oversized_token(env: Env, total: int, claim: str = "actor") -> str:
    """A signed token of about `total` characters, padded through one claim."""
    base = env.token()
    padding_chars = max(0, (total - len(base)) * 3 // 4)
    return env.token(**{claim: "A" * padding_chars})


def _deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _body(value: Any) -> Body:
    return Body(json.dumps(value).encode())


def _replaced(token: str, index: int, segment: str) -> str:
    parts = _segments(token)
    parts[index] = segment
    return ".".join(parts)


def _edit_segment(token: str, index: int, edit: Callable[[str], str]) -> str:
    parts = _segments(token)
    parts[index] = edit(parts[index])
    return ".".join(parts)


# -- the corpus ---------------------------------------------------------------------------

ALGORITHM_CASES = [
    Case(
        "alg-none-without-signature",
        lambda e: f"{_seg(e.header(alg='none'))}.{_seg(e.claims())}.",
        422,
        PAYLOAD,  # an empty third part is not a JWS at all
    ),
    Case("alg-none-with-signature", lambda e: e.sign(header=e.header(alg="none")), 422, TOKEN),
    Case("alg-None-mixed-case", lambda e: e.sign(header=e.header(alg="None")), 422, TOKEN),
    Case(
        "alg-none-no-kid-with-signature",
        lambda e: e.sign(header=e.header(alg="none", kid=REMOVE)),
        422,
        TOKEN,
    ),
    Case("hs256-keyed-with-public-pem", lambda e: _hmac_token(e, e.public_pem()), 422, TOKEN),
    Case(
        "hs512-keyed-with-public-pem",
        lambda e: _hmac_token(e, e.public_pem(), "HS512"),
        422,
        TOKEN,
    ),
    Case("hs256-keyed-with-jwk-n", lambda e: _hmac_token(e, e.jwk()["n"].encode()), 422, TOKEN),
    Case(
        "hs256-keyed-with-jwk-json",
        lambda e: _hmac_token(e, json.dumps(e.jwk()).encode()),
        422,
        TOKEN,
    ),
    Case("rs384-right-key", lambda e: e.issuer.sign(e.claims(), alg="RS384"), 422, TOKEN),
    Case("rs512-right-key", lambda e: e.issuer.sign(e.claims(), alg="RS512"), 422, TOKEN),
    Case("ps256-right-key", lambda e: e.issuer.sign(e.claims(), alg="PS256"), 422, TOKEN),
    Case("es256-header-rsa-signature", lambda e: e.sign(header=e.header(alg="ES256")), 422, TOKEN),
    Case("eddsa-header-rsa-signature", lambda e: e.sign(header=e.header(alg="EdDSA")), 422, TOKEN),
    Case("eddsa-signed-by-stranger", _eddsa_token, 422, TOKEN),
    Case("alg-lower-case-rs256", lambda e: e.sign(header=e.header(alg="rs256")), 422, TOKEN),
    Case("alg-missing", lambda e: e.sign(header=e.header(alg=REMOVE)), 422, TOKEN),
    Case("alg-list", lambda e: e.sign(header=e.header(alg=["RS256"])), 422, TOKEN),
    Case("alg-null", lambda e: e.sign(header=e.header(alg=None)), 422, TOKEN),
]

KID_CASES = [
    Case(
        "kid-path-traversal", lambda e: e.sign(header=e.header(kid="../../etc/passwd")), 422, TOKEN
    ),
    Case(
        "kid-attacker-url",
        lambda e: e.sign(header=e.header(kid=e.attacker.jwks_url)),
        422,
        TOKEN,
    ),
    Case(
        "kid-attacker-http-url",
        lambda e: e.sign(header=e.header(kid=e.attacker_http.url + "/jwks")),
        422,
        TOKEN,
    ),
    Case("kid-empty", lambda e: e.sign(header=e.header(kid="")), 422, TOKEN),
    Case("kid-10KB", lambda e: e.sign(header=e.header(kid="k" * 10 * 1024)), 422, TOKEN),
    Case("kid-integer", lambda e: e.sign(header=e.header(kid=1)), 422, TOKEN),
    Case("kid-list", lambda e: e.sign(header=e.header(kid=[e.kid])), 422, TOKEN),
    Case("kid-object", lambda e: e.sign(header=e.header(kid={"kid": e.kid})), 422, TOKEN),
    Case("kid-null", lambda e: e.sign(header=e.header(kid=None)), 422, TOKEN),
    Case("kid-missing", lambda e: e.sign(header=e.header(kid=REMOVE)), 422, TOKEN),
    Case("kid-nul-byte", lambda e: e.sign(header=e.header(kid=e.kid + "\x00")), 422, TOKEN),
    Case("kid-other-case", lambda e: e.sign(header=e.header(kid=e.kid.upper())), 422, TOKEN),
    Case(
        "kid-of-another-issuers-key",
        lambda e: e.sign(header=e.header(kid=ATTACKER_KID), key=e.attacker_key),
        422,
        TOKEN,
    ),
    Case(
        "known-kid-signed-by-another-issuers-key",
        lambda e: e.sign(key=e.attacker_key),
        422,
        TOKEN,
    ),
]

HEADER_CASES = [
    Case(
        "jku-attacker-jwks",
        lambda e: e.sign(
            header=e.header(jku=e.attacker.jwks_url, kid=ATTACKER_KID), key=e.attacker_key
        ),
        422,
        TOKEN,
    ),
    Case(
        "jku-attacker-http-with-valid-signature",
        lambda e: e.sign(header=e.header(jku=e.attacker_http.url + "/jwks.json")),
        422,
        TOKEN,
    ),
    Case(
        "x5u-attacker",
        lambda e: e.sign(
            header=e.header(x5u=e.attacker_http.url + "/cert.pem", kid=ATTACKER_KID),
            key=e.attacker_key,
        ),
        422,
        TOKEN,
    ),
    Case(
        "x5c-attacker-certificate",
        lambda e: e.sign(
            header=e.header(x5c=[_self_signed_cert_b64(e.attacker_key)], kid=REMOVE),
            key=e.attacker_key,
        ),
        422,
        TOKEN,
    ),
    Case(
        "jwk-embedded-attacker-key",
        lambda e: e.sign(
            header=e.header(jwk=e.attacker.jwks()["keys"][-1], kid=ATTACKER_KID),
            key=e.attacker_key,
        ),
        422,
        TOKEN,
    ),
    Case(
        "jwk-embedded-with-known-kid",
        lambda e: e.sign(header=e.header(jwk=e.attacker.jwks()["keys"][-1]), key=e.attacker_key),
        422,
        TOKEN,
    ),
    Case("crit-exp", lambda e: e.sign(header=e.header(crit=["exp"])), 422, TOKEN),
    Case("crit-empty-list", lambda e: e.sign(header=e.header(crit=[])), 422, TOKEN),
    Case("cty-jwt-header", lambda e: e.sign(header=e.header(cty="JWT")), 422, TOKEN),
    Case(
        "cty-jwt-nested-token-payload",
        # The payload is another (valid!) JWT rather than a claim set.
        lambda e: e.sign(payload=e.token().encode(), header=e.header(cty="JWT")),
        422,
        PAYLOAD,
    ),
    Case("zip-deflate", lambda e: e.sign(header=e.header(zip="DEF")), 422, TOKEN),
    Case("b64-false", lambda e: e.sign(header=e.header(b64=False)), 422, TOKEN),
    Case(
        "typ-upload-token",
        lambda e: e.sign(header=e.header(typ="trustpub-upload+jwt")),
        422,
        TOKEN,
    ),
    Case("typ-access-token", lambda e: e.sign(header=e.header(typ="at+jwt")), 422, TOKEN),
    Case("typ-with-space", lambda e: e.sign(header=e.header(typ="JWT ")), 422, TOKEN),
    Case(
        "header-duplicate-alg",
        lambda e: e.sign(header=_with_duplicate(_dumps(e.header()), "alg", "none")),
        422,
        PAYLOAD,
    ),
    Case(
        "header-duplicate-kid",
        lambda e: e.sign(header=_with_duplicate(_dumps(e.header()), "kid", ATTACKER_KID)),
        422,
        PAYLOAD,
    ),
    Case("header-json-array", lambda e: e.sign(header=b'["RS256"]'), 422, PAYLOAD),
    Case(
        "header-lone-surrogate",
        lambda e: e.sign(header=_dumps(e.header(kid="\ud800")).encode()),
        422,
        PAYLOAD,
    ),
    Case(
        "header-not-utf8",
        lambda e: e.sign(header=b'{"alg": "RS256", "kid": "\xff\xfe"}'),
        422,
        PAYLOAD,
    ),
]

ISSUER_CASES = [
    Case("iss-trailing-slash", lambda e: e.token(iss=e.issuer.url + "/"), 422, PAYLOAD, True),
    Case("iss-upper-case", lambda e: e.token(iss=e.issuer.url.upper()), 422, PAYLOAD, True),
    Case(
        "iss-http-scheme",
        lambda e: e.token(iss=e.issuer.url.replace("https://", "http://")),
        422,
        PAYLOAD,
        True,
    ),
    Case(
        "iss-attacker-http-server",
        lambda e: e.token(iss=e.attacker_http.url),
        422,
        PAYLOAD,
        True,
    ),
    Case(
        "iss-attacker-issuer-with-its-own-key",
        lambda e: e.sign(
            e.claims(iss=e.attacker.url), e.header(kid=ATTACKER_KID), key=e.attacker_key
        ),
        422,
        PAYLOAD,
        True,
    ),
    Case(
        "iss-enterprise-path-of-trusted-host",
        lambda e: e.token(iss=e.issuer.url + "/enterprise"),
        422,
        PAYLOAD,
        True,
    ),
    Case("iss-leading-space", lambda e: e.token(iss=" " + e.issuer.url), 422, PAYLOAD, True),
    Case("iss-trailing-newline", lambda e: e.token(iss=e.issuer.url + "\n"), 422, PAYLOAD, True),
    Case("iss-dev-issuer-on-non-dev-app", lambda e: e.token(iss=DEV_ISSUER), 422, PAYLOAD, True),
    Case(
        "iss-public-github-not-configured",
        lambda e: e.token(iss="https://token.actions.githubusercontent.com"),
        422,
        PAYLOAD,
        True,
    ),
    Case("iss-missing", lambda e: e.token(iss=REMOVE), 422, PAYLOAD, True),
    Case("iss-null", lambda e: e.token(iss=None), 422, PAYLOAD, True),
    Case("iss-list", lambda e: e.token(iss=[e.issuer.url]), 422, PAYLOAD, True),
    Case("iss-object", lambda e: e.token(iss={"url": e.issuer.url}), 422, PAYLOAD, True),
    Case("iss-number", lambda e: e.token(iss=1), 422, PAYLOAD, True),
    Case(
        "iss-duplicate-attacker-first",
        lambda e: e.sign(_with_duplicate(_dumps(e.claims()), "iss", e.attacker.url)),
        422,
        PAYLOAD,
        True,
    ),
]

AUDIENCE_CASES = [
    Case("aud-list-containing-ours", lambda e: e.token(aud=[AUDIENCE]), 422, TOKEN),
    Case("aud-list-ours-and-other", lambda e: e.token(aud=[AUDIENCE, "pypi"]), 422, TOKEN),
    Case("aud-upper-case", lambda e: e.token(aud=AUDIENCE.upper()), 422, TOKEN),
    Case("aud-trailing-space", lambda e: e.token(aud=AUDIENCE + " "), 422, TOKEN),
    Case("aud-missing", lambda e: e.token(aud=REMOVE), 422, TOKEN),
    Case("aud-null", lambda e: e.token(aud=None), 422, TOKEN),
    Case("aud-pypi", lambda e: e.token(aud="pypi"), 422, TOKEN),
    Case(
        "aud-upload-token-audience",
        lambda e: e.token(aud=f"urn:trustpub:upload:{AUDIENCE}"),
        422,
        TOKEN,
    ),
]

# A token that lives ten years, starting now.
TEN_YEARS = 10 * 365 * 24 * 3600

TIME_CASES = [
    Case("exp-far-future", lambda e: e.token(exp=e.now + TEN_YEARS), 422, TOKEN),
    Case("exp-lifetime-one-over-cap", lambda e: e.token(exp=e.now + 901), 422, TOKEN),
    Case("exp-expired-hour-ago", lambda e: e.token(iat=e.now - 3900, exp=e.now - 3600), 422, TOKEN),
    Case("exp-before-iat", lambda e: e.token(exp=e.now - 1), 422, TOKEN),
    Case("iat-far-future", lambda e: e.token(iat=e.now + 3600, exp=e.now + 3900), 422, TOKEN),
    Case(
        "nbf-future",
        lambda e: e.token(nbf=e.now + 600, iat=e.now, exp=e.now + 900),
        422,
        TOKEN,
    ),
    Case("exp-string", lambda e: e.token(exp=str(e.now + 300)), 422, TOKEN),
    Case("exp-float-nan", lambda e: e.token(exp=float("nan")), 422, TOKEN),
    Case("exp-float-infinity", lambda e: e.token(exp=float("inf")), 422, TOKEN),
    Case("exp-1e308", lambda e: e.token(exp=1e308), 422, TOKEN),
    Case("exp-negative", lambda e: e.token(exp=-1), 422, TOKEN),
    Case("exp-bool", lambda e: e.token(exp=True), 422, TOKEN),
    Case("exp-null", lambda e: e.token(exp=None), 422, TOKEN),
    Case("exp-list", lambda e: e.token(exp=[e.now + 300]), 422, TOKEN),
    Case("exp-missing", lambda e: e.token(exp=REMOVE), 422, TOKEN),
    # JSON integers have no size limit; a 400-digit one is valid JSON, larger than any
    # float. Only a configured issuer can sign one, but it must still be a clean refusal.
    Case("exp-400-digit-integer", lambda e: e.token(exp=10**400), 422, TOKEN),
    Case("iat-string", lambda e: e.token(iat=str(e.now)), 422, TOKEN),
    Case("iat-float-nan", lambda e: e.token(iat=float("nan")), 422, TOKEN),
    Case("iat-1e308", lambda e: e.token(iat=1e308), 422, TOKEN),
    Case("iat-minus-1e308", lambda e: e.token(iat=-1e308), 422, TOKEN),
    Case("iat-negative", lambda e: e.token(iat=-1), 422, TOKEN),
    Case("iat-400-digit-integer", lambda e: e.token(iat=10**400), 422, TOKEN),
    Case("nbf-string", lambda e: e.token(nbf="0"), 422, TOKEN),
    Case("nbf-float-nan", lambda e: e.token(nbf=float("nan")), 422, TOKEN),
    Case("nbf-minus-infinity", lambda e: e.token(nbf=float("-inf")), 422, TOKEN),
    Case("nbf-1e308", lambda e: e.token(nbf=1e308), 422, TOKEN),
    Case("nbf-null", lambda e: e.token(nbf=None), 422, TOKEN),
    Case("nbf-400-digit-integer", lambda e: e.token(nbf=10**400), 422, TOKEN),
]

JTI_CASES = [
    Case("jti-empty", lambda e: e.token(jti=""), 422, TOKEN),
    Case("jti-300-chars", lambda e: e.token(jti="j" * 300), 422, TOKEN),
    Case("jti-number", lambda e: e.token(jti=12345), 422, TOKEN),
    Case("jti-list", lambda e: e.token(jti=["a"]), 422, TOKEN),
    Case("jti-null", lambda e: e.token(jti=None), 422, TOKEN),
    Case("jti-missing", lambda e: e.token(jti=REMOVE), 422, TOKEN),
]

WRONG_TYPE_VALUES: list[tuple[str, Any]] = [
    ("number", 65),
    ("list", ["octo-org/demo"]),
    ("null", None),
    ("bool", True),
    ("object", {"value": "x"}),
]

WRONG_TYPE_CASES = [
    Case(
        f"{claim}-as-{kind}",
        lambda e, claim=claim, value=value: e.token(**{claim: value}),
        422,
        PUBLISHER,
        names=claim,
    )
    for claim in GITHUB_REQUIRED_CLAIMS
    for kind, value in WRONG_TYPE_VALUES
] + [
    Case(
        f"optional-{claim}-as-{kind}",
        lambda e, claim=claim, value=value: e.token(**{claim: value}),
        422,
        PUBLISHER,
        names=claim,
    )
    for claim, kind, value in [
        ("environment", "list", ["pypi"]),
        ("environment", "object", {"name": "pypi"}),
        ("ref_type", "number", 1),
        ("run_attempt", "number", 1),
        ("runner_environment", "bool", False),
    ]
]


def _workflow_ref(ref: str) -> Callable[[Env], str]:
    return lambda e: e.token(workflow_ref=ref, job_workflow_ref=ref)


GITHUB_CASES = [
    Case(
        "workflow-ref-second-at",
        _workflow_ref(WORKFLOWS + "release.yml@fake.yml@refs/heads/main"),
        422,
        PUBLISHER,
        names="workflow_ref",
    ),
    Case("workflow-ref-empty-ref", _workflow_ref(WORKFLOWS + "release.yml@"), 422, PUBLISHER),
    Case("workflow-ref-no-ref", _workflow_ref(WORKFLOWS + "release.yml"), 422, PUBLISHER),
    Case("workflow-ref-double-at", _workflow_ref(WORKFLOWS + "release.yml@@v1"), 422, PUBLISHER),
    Case(
        "workflow-ref-subdirectory",
        _workflow_ref(WORKFLOWS + "sub/release.yml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-dot-dot",
        _workflow_ref(WORKFLOWS + "../workflows/release.yml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-other-repository",
        _workflow_ref("evil-org/demo/.github/workflows/release.yml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-repository-name-prefix",
        _workflow_ref("octo-org/demo-evil/.github/workflows/release.yml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-other-case-file",
        _workflow_ref(WORKFLOWS + "Release.yml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-yaml-not-yml",
        _workflow_ref(WORKFLOWS + "release.yaml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-not-yaml",
        _workflow_ref(WORKFLOWS + "release.yml.txt@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-newline-before-at",
        _workflow_ref(WORKFLOWS + "release.yml\n@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-space-before-at",
        _workflow_ref(WORKFLOWS + "release.yml @refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-like-pattern-underscore",
        # PyPI's old SQL LIKE matched release_yml against release.yml-ish names.
        _workflow_ref(WORKFLOWS + "release_yml@refs/heads/main"),
        422,
        PUBLISHER,
    ),
    Case(
        "workflow-ref-only-job-workflow-matches",
        lambda e: e.token(
            workflow_ref=WORKFLOWS + "untrusted.yml@refs/heads/main",
            job_workflow_ref=WORKFLOWS + "release.yml@refs/heads/main",
        ),
        422,
        PUBLISHER,
        names="workflow_ref",
    ),
    Case(
        "event-pull-request-target",
        lambda e: e.token(event_name="pull_request_target"),
        422,
        PUBLISHER,
        names="event_name",
    ),
    Case("ref-and-sha-empty", lambda e: e.token(ref="", sha=""), 422, PUBLISHER),
    Case(
        "owner-id-leading-zero",
        lambda e: e.token(repository_owner_id="065"),
        422,
        PUBLISHER,
        names="repository_owner_id",
    ),
    Case("owner-id-space", lambda e: e.token(repository_owner_id="65 "), 422, PUBLISHER),
    Case(
        "owner-id-fullwidth-digit", lambda e: e.token(repository_owner_id="6\uff15"), 422, PUBLISHER
    ),
    Case("owner-id-other", lambda e: e.token(repository_owner_id="66"), 422, PUBLISHER),
    Case("repository-id-other", lambda e: e.token(repository_id="75"), 422, PUBLISHER),
    Case("repository-id-empty", lambda e: e.token(repository_id=""), 422, PUBLISHER),
    Case("environment-missing", lambda e: e.token(environment=REMOVE), 422, PUBLISHER),
    Case("environment-empty", lambda e: e.token(environment=""), 422, PUBLISHER),
    Case("environment-trailing-space", lambda e: e.token(environment="pypi "), 422, PUBLISHER),
    Case("environment-other", lambda e: e.token(environment="pypi-staging"), 422, PUBLISHER),
    Case("environment-dotted-capital-i", lambda e: e.token(environment="PYPİ"), 422, PUBLISHER),
    Case(
        "environment-fullwidth",
        lambda e: e.token(environment="\uff50\uff59\uff50\uff49"),
        422,
        PUBLISHER,
    ),
    Case("repository-other", lambda e: e.token(repository="octo-org/demo2"), 422, PUBLISHER),
    Case(
        "repository-extra-segment", lambda e: e.token(repository="octo-org/demo/x"), 422, PUBLISHER
    ),
    Case(
        "repository-trailing-newline",
        lambda e: e.token(repository="octo-org/demo\n"),
        422,
        PUBLISHER,
    ),
    Case("repository-empty", lambda e: e.token(repository=""), 422, PUBLISHER),
    Case(
        "repository-nested-100-deep",
        lambda e: e.sign(
            _dumps(e.claims(repository=0))
            .replace('"repository": 0', '"repository": ' + _deeply_nested(100))
            .encode()
        ),
        422,
        PUBLISHER,
    ),
    Case(
        "gitlab-claims-signed-by-github-issuer",
        lambda e: e.sign(gitlab_claims(e.issuer.url, AUDIENCE, now=e.now)),
        422,
        PUBLISHER,
        names="repository",
    ),
]

ENCODING_CASES = [
    Case(
        "payload-base64-padding",
        lambda e: _edit_segment(e.token(), 1, lambda s: s + "=="),
        422,
        PAYLOAD,
    ),
    Case("signature-standard-alphabet", _std_alphabet_signature, 422, PAYLOAD),
    # Otherwise one token has 16 spellings: a denylist or cache keyed on the text misses.
    Case("signature-non-canonical-spare-bits", _non_canonical_signature, 422, PAYLOAD),
    Case(
        "payload-inner-whitespace",
        lambda e: _edit_segment(e.token(), 1, lambda s: s[:10] + "\n" + s[10:]),
        422,
        PAYLOAD,
    ),
    Case("token-surrounding-spaces", lambda e: " " + e.token() + " ", 422, PAYLOAD),
    Case(
        "signature-invalid-length",
        # 4n+1 characters cannot be base64 of anything.
        lambda e: _edit_segment(e.token(), 2, lambda s: s + "A" * ((1 - len(s)) % 4)),
        422,
        PAYLOAD,
    ),
    Case("token-non-ascii", lambda e: e.token().replace(".", "\u2024", 1), 422, PAYLOAD),
    Case(
        "payload-not-utf8",
        lambda e: e.sign(_dumps(e.claims()).encode().replace(b"octocat", b"octo\xffcat")),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-utf16-with-bom",
        lambda e: e.sign(_dumps(e.claims()).encode("utf-16")),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-utf16le-no-bom",
        lambda e: e.sign(_dumps(e.claims()).encode("utf-16-le")),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-utf8-bom",
        lambda e: e.sign(b"\xef\xbb\xbf" + _dumps(e.claims()).encode()),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-duplicate-repository",
        lambda e: e.sign(_with_duplicate(_dumps(e.claims()), "repository", "evil-org/demo")),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-duplicate-owner-id-last-wins-would-match",
        lambda e: e.sign(_with_duplicate(_dumps(e.claims()), "repository_owner_id", "666")),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-duplicate-key-in-nested-object",
        lambda e: e.sign(
            _dumps(e.claims(extra=0)).replace('"extra": 0', '"extra": {"a": 1, "a": 2}').encode()
        ),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-lone-surrogate-value",
        lambda e: e.sign(_dumps(e.claims(actor="\ud800")).encode()),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-lone-surrogate-key",
        lambda e: e.sign(_dumps(e.claims(**{"x\udc00": "1"})).encode()),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-lone-surrogate-in-nested-list",
        lambda e: e.sign(_dumps(e.claims(extra=[["\udfff"]])).encode()),
        422,
        PAYLOAD,
    ),
    Case(
        "payload-nested-3000-deep",
        lambda e: e.sign(
            _dumps(e.claims(extra=0))
            .replace('"extra": 0', '"extra": ' + _deeply_nested(3000))
            .encode()
        ),
        422,
        PAYLOAD,
    ),
    Case("payload-json-array", lambda e: e.sign(b"[1, 2]"), 422, PAYLOAD),
    Case("payload-json-null", lambda e: e.sign(b"null"), 422, PAYLOAD),
    Case("payload-nan-bare-word", lambda e: e.sign(b'{"iss": NaN}'), 422, PAYLOAD, True),
    Case(
        "payload-5000-digit-integer",
        lambda e: e.sign(
            _dumps(e.claims(exp=0)).replace('"exp": 0', '"exp": ' + "9" * 5000).encode()
        ),
        422,
        PAYLOAD,
    ),
    Case("claim-15KB", lambda e: e.token(actor="a" * 15 * 1024), 413, TOO_LARGE),
    Case("token-20KB", lambda e: _oversized_token(e, 20 * 1024), 413, TOO_LARGE),
    Case(
        "token-just-over-cap",
        lambda e: _edit_segment(
            e.token(), 2, lambda s: "A" * (MAX_TOKEN_BYTES + 1 - len(e.token()) + len(s))
        ),
        422,
        PAYLOAD,
    ),
    Case(
        "claim-10KB-in-repository",
        lambda e: e.token(repository="octo-org/" + "d" * 10 * 1024),
        422,
        PUBLISHER,
    ),
]

SIGNATURE_CASES = [
    Case("signature-stripped", lambda e: e.token().rsplit(".", 1)[0] + ".", 422, PAYLOAD),
    Case("signature-and-dot-stripped", lambda e: e.token().rsplit(".", 1)[0], 422, PAYLOAD),
    Case("signature-of-another-token", _signature_of_another_token, 422, TOKEN),
    Case("payload-swapped-between-tokens", _payload_swapped, 422, TOKEN),
    Case("signature-truncated-one-byte", _truncated_signature, 422, TOKEN),
    Case("signature-single-zero-byte", lambda e: _replaced(e.token(), 2, "AA"), 422, TOKEN),
    Case("signature-all-zero", lambda e: _replaced(e.token(), 2, b64url(bytes(256))), 422, TOKEN),
    Case("four-parts", lambda e: _edit_segment(e.token(), 2, lambda s: s + "." + s), 422, PAYLOAD),
    Case(
        "jwe-five-parts",
        lambda e: ".".join([_seg({"alg": "RSA-OAEP", "enc": "A256GCM"}), "AA", "AA", "AA", "AA"]),
        422,
        PAYLOAD,
    ),
]

UPLOAD_TOKEN_CASES = [
    Case("upload-token-with-prefix", lambda e: e.upload_token(), 422, PAYLOAD, True),
    Case(
        "upload-token-without-prefix",
        lambda e: e.upload_token().removeprefix("pypi-"),
        422,
        PAYLOAD,
        True,
    ),
]

BODY_CASES = [
    Case("body-token-number", lambda e: _body({"token": 1}), 422, PAYLOAD, True),
    Case("body-token-list", lambda e: _body({"token": [e.token()]}), 422, PAYLOAD, True),
    Case("body-token-object", lambda e: _body({"token": {"jwt": e.token()}}), 422, PAYLOAD, True),
    Case("body-token-null", lambda e: _body({"token": None}), 422, PAYLOAD, True),
    Case("body-token-bool", lambda e: _body({"token": True}), 422, PAYLOAD, True),
    Case("body-token-empty", lambda e: _body({"token": ""}), 422, PAYLOAD, True),
    Case("body-json-array", lambda e: _body([e.token()]), 422, PAYLOAD, True),
    Case("body-json-string", lambda e: _body(e.token()), 422, PAYLOAD, True),
    Case("body-wrong-field-name", lambda e: _body({"jwt": e.token()}), 422, PAYLOAD, True),
    Case(
        "body-extra-fields-naming-attacker-keys",
        lambda e: _body(
            {
                "token": e.sign(header=e.header(kid=ATTACKER_KID), key=e.attacker_key),
                "jwks_uri": e.attacker.jwks_url,
                "jku": e.attacker_http.url,
                "jwk": e.attacker.jwks()["keys"][-1],
                "iss": e.attacker.url,
            }
        ),
        422,
        TOKEN,
    ),
    Case(
        # RFC 8259 leaves duplicate names undefined and security.md (rule 6) says to
        # reject duplicate input: a proxy or logger that reads the first "token" must
        # not see a different credential than the one that is exchanged.
        "body-duplicate-token-key",
        lambda e: Body(('{"token": "not-a-jwt", "token": ' + json.dumps(e.token()) + "}").encode()),
        422,
        PAYLOAD,
    ),
    Case("body-70KB", lambda e: _body({"token": "A" * 70 * 1024}), 413, TOO_LARGE, True),
    Case(
        "body-70KB-chunked-no-length",
        lambda e: Body(json.dumps({"token": "A" * 70 * 1024}).encode(), chunked=True),
        413,
        TOO_LARGE,
        True,
    ),
    Case(
        "body-chunked-garbage",
        lambda e: Body(b'{"token": "eyJ.eyJ.sig"}', chunked=True),
        422,
        PAYLOAD,
        True,
    ),
    Case(
        "body-utf16",
        lambda e: Body(json.dumps({"token": e.token()}).encode("utf-16")),
        422,
        PAYLOAD,
        True,
    ),
    Case(
        "body-not-utf8",
        lambda e: Body(b'{"token": "' + e.token().encode() + b'\xff"}'),
        422,
        PAYLOAD,
        True,
    ),
    Case("body-nan-token", lambda e: Body(b'{"token": NaN}'), 422, PAYLOAD, True),
    Case("body-deeply-nested", lambda e: Body(_deeply_nested(8_000).encode()), 422, PAYLOAD, True),
    Case(
        "body-form-encoded",
        lambda e: Body(
            b"token=" + e.token().encode(), content_type="application/x-www-form-urlencoded"
        ),
        422,
        PAYLOAD,
        True,
    ),
    Case("body-empty", lambda e: Body(b""), 422, PAYLOAD, True),
]

CASES: list[Case] = [
    *ALGORITHM_CASES,
    *KID_CASES,
    *HEADER_CASES,
    *ISSUER_CASES,
    *AUDIENCE_CASES,
    *TIME_CASES,
    *JTI_CASES,
    *WRONG_TYPE_CASES,
    *GITHUB_CASES,
    *ENCODING_CASES,
    *SIGNATURE_CASES,
    *UPLOAD_TOKEN_CASES,
    *BODY_CASES,
]


def _send(client: FlaskClient, request: str | Body) -> TestResponse:
    if isinstance(request, str):
        return mint(client, request)
    if request.chunked:
        # As gunicorn hands over a chunked request: no Content-Length, a terminated stream.
        return client.post(
            MINT_PATH,
            input_stream=io.BytesIO(request.data),
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    return client.post(MINT_PATH, data=request.data, content_type=request.content_type)


def test_corpus_ids_are_unique_and_large_enough() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_adversarial_request_is_refused(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    attacker_issuer: OIDCIssuer,
    attacker_http: CountingServer,
    store: redis.Redis,
    case: Case,
) -> None:
    env = Env(oidc_issuer, attacker_issuer, attacker_http, client, now=int(time.time()))
    request = case.build(env)
    # Building may mint (upload-token cases) and so fetch keys: count from here on.
    oidc_issuer.reset_counts()
    burned_before = replay_keys(store)

    response = _send(client, request)

    description = assert_failure(response, case.status, case.code)
    if case.names is not None:
        assert case.names in description
    raw = request if isinstance(request, str) else request.data.decode("utf-8", "replace")
    assert len(raw) < 40 or raw not in description, "the token was echoed back"
    assert replay_keys(store) == burned_before, "a refused token burned a replay record"
    assert attacker_http.requests == 0, "fetched a URL the token named"
    assert attacker_issuer.requests() == 0, "fetched from an issuer the token named"
    if case.no_fetch:
        assert oidc_issuer.requests() == 0, "fetched keys for a token it could not route"
    else:
        assert oidc_issuer.requests() <= 2, "more than one discovery + JWKS fetch"
