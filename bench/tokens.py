"""Pre-generated CI tokens: every mint needs a distinct OIDC token (replay protection).

An RSA-2048 signature costs about a millisecond, so tokens are signed on every core
before a load phase starts, never while one runs.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.claims import github_claims

_worker_key: Any = None


def _init_worker(pem: bytes) -> None:
    global _worker_key
    _worker_key = serialization.load_pem_private_key(pem, password=None)


def _sign_batch(job: tuple[str, str, str, int, int]) -> list[str]:
    issuer, audience, kid, now, count = job
    # Exactly what support.oidc_issuer.OIDCIssuer.sign produces: PyJWT, header kid.
    return [
        jwt.encode(github_claims(issuer, audience, now=now), _worker_key, "RS256", {"kid": kid})
        for _ in range(count)
    ]


class TokenFactory:
    """Signs GitHub-shaped tokens for octo-org/demo's release.yml with the issuer's key."""

    def __init__(
        self, key: rsa.RSAPrivateKey, kid: str, issuer: str, audience: str, processes: int
    ) -> None:
        self.key = key
        self.kid = kid
        self.issuer = issuer
        self.audience = audience
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._pool = ProcessPoolExecutor(processes, initializer=_init_worker, initargs=(pem,))
        self._processes = processes

    def one(self, now: int) -> str:
        return jwt.encode(
            github_claims(self.issuer, self.audience, now=now), self.key, "RS256", {"kid": self.kid}
        )

    def many(self, count: int, now: int) -> list[str]:
        batches = max(1, self._processes * 4)
        sizes = [count // batches + (1 if i < count % batches else 0) for i in range(batches)]
        jobs = [(self.issuer, self.audience, self.kid, now, size) for size in sizes if size]
        return [token for batch in self._pool.map(_sign_batch, jobs) for token in batch]

    def write_per_thread(self, tokens: list[str], prefix: Path, threads: int) -> None:
        """`prefix.0`, `prefix.1`, ...: one file per wrk thread, so no two threads share one."""
        for index in range(threads):
            Path(f"{prefix}.{index}").write_text("\n".join(tokens[index::threads]) + "\n")

    def close(self) -> None:
        self._pool.shutdown()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
