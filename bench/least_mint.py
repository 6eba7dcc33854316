"""The least mint: what any mint must do in Python, under exactly trustpub's gunicorn
runner and settings, and nothing else.

A bare WSGI callable (no framework) that reads the JSON body, decodes the CI token's
header and payload, verifies its RS256 signature with a key it was given, makes one
Redis round trip (`SET NX EX` of the token's `jti`, on a connection per thread), and
answers with a freshly signed Ed25519 upload token. No claim checks, no publisher
matching, no rate limits, metrics, logs, request ids or error handling: a measuring
stick, never a service. Between it and trustpub's mint is the cost of trustpub's own
logic (docs/performance.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.api.observe import StartResponse, WSGIApp
from app.stores.redis_connections import ThreadConnections

from .floor_app import runner_arguments, serve_like_trustpub

_HEADER = base64.urlsafe_b64encode(b'{"alg":"EdDSA","kid":"least","typ":"least+jwt"}').rstrip(b"=")
_PKCS1, _SHA256 = padding.PKCS1v15(), hashes.SHA256()


def _b64decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def create_least_mint_app(public_key: rsa.RSAPublicKey, redis_url: str) -> WSGIApp:
    signer = Ed25519PrivateKey.generate()
    connections = ThreadConnections(redis.ConnectionPool.from_url(redis_url))

    def least_mint(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        token = json.loads(environ["wsgi.input"].read(length))["token"].encode("ascii")
        header, payload, signature = token.split(b".")
        json.loads(_b64decode(header))
        claims = json.loads(_b64decode(payload))
        public_key.verify(_b64decode(signature), header + b"." + payload, _PKCS1, _SHA256)
        connections.call(("SET", "least:" + claims["jti"], "1", "NX", "EX", "900"))
        upload_claims = {
            "iss": "urn:least",
            "aud": "urn:least:upload",
            "sub": claims["sub"],
            "iat": claims["iat"],
            "nbf": claims["iat"],
            "exp": claims["exp"],
            "jti": claims["jti"],
            "scope": "upload",
            "projects": ["demo-pkg"],
            "publisher": {
                "provider": "github",
                "repository": claims["repository"],
                "workflow": claims["job_workflow_ref"],
                "ref": claims["ref"],
                "sha": claims["sha"],
            },
        }
        signing_input = _HEADER + b"." + _b64encode(json.dumps(upload_claims).encode())
        upload_token = signing_input + b"." + _b64encode(signer.sign(signing_input))
        body = json.dumps({"success": True, "token": upload_token.decode()}).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return least_mint


def main() -> None:
    parser = runner_arguments(__doc__)
    parser.add_argument("--public-key", type=Path, required=True, help="the CI issuer's, PEM")
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    public_key = serialization.load_pem_public_key(args.public_key.read_bytes())
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SystemExit("--public-key must be an RSA public key")
    serve_like_trustpub(create_least_mint_app(public_key, args.redis_url), args)


if __name__ == "__main__":
    main()
