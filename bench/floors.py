"""The floors no implementation in this stack can go below, measured in-process.

- crypto: `cryptography` alone, no JWT library: the RS256 verification of a realistic
  CI token (2048-bit key, GitHub's claim set) and the Ed25519 signature of an upload
  token's signing input (what a mint must do), plus the Ed25519 verification that an
  introspection must do.
- Redis: one round trip (PING) through redis-py on a fresh connection pool, as the
  service's workers do it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def per_op_us(operation: Callable[[], object], iterations: int, rounds: int = 5) -> float:
    """The best over `rounds` of the mean time per call, in microseconds.

    The best, not the median: a floor is what the operation costs when nothing else
    gets in its way; interruptions only ever add time.
    """
    operation()  # warm caches and lazy initialisation
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            operation()
        samples.append((time.perf_counter() - start) / iterations * 1e6)
    return min(samples)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def crypto_floor(
    ci_token: str, ci_public_key: rsa.RSAPublicKey, upload_token: str, iterations: int
) -> dict[str, float]:
    """Per-operation microseconds of the raw signature work of mint and introspection.

    `upload_token` is a real one (prefix stripped): its signing input is what the
    minter signs, and a fresh Ed25519 key signs it here.
    """
    header, payload, signature = ci_token.split(".")
    ci_input, ci_signature = f"{header}.{payload}".encode(), _b64decode(signature)
    ci_public_key.verify(ci_signature, ci_input, padding.PKCS1v15(), hashes.SHA256())
    upload_input = upload_token.rpartition(".")[0].encode()
    ed_key = Ed25519PrivateKey.generate()
    ed_public = ed_key.public_key()
    ed_signature = ed_key.sign(upload_input)

    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    rs256_verify = per_op_us(
        lambda: ci_public_key.verify(ci_signature, ci_input, pkcs1, sha256), iterations
    )
    ed25519_sign = per_op_us(lambda: ed_key.sign(upload_input), iterations)
    ed25519_verify = per_op_us(lambda: ed_public.verify(ed_signature, upload_input), iterations)
    return {
        "rs256_verify_us": rs256_verify,
        "ed25519_sign_us": ed25519_sign,
        "ed25519_verify_us": ed25519_verify,
        "ci_token_bytes": len(ci_token),
        "upload_token_bytes": len(upload_token),
        # What a mint cannot avoid: verify the CI token, sign the upload token.
        "mint_us": rs256_verify + ed25519_sign,
        # What an introspection cannot avoid: verify the upload token.
        "introspect_us": ed25519_verify,
    }


def redis_floor(url: str, iterations: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    try:
        return {"ping_us": per_op_us(client.ping, iterations)}
    finally:
        client.close()
