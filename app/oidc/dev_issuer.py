"""The local development issuer: lets a newcomer mint a token with no CI at all.

Its key lives in the development directory; only a service started in development mode
trusts it, and its URL is on the reserved `.invalid` domain so it can never be a real issuer.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.oidc.keysets import StaticKeySet
from app.oidc.verify import IssuerConfig
from app.private_files import write_private_file

DEV_ISSUER = "https://dev-issuer.trustpub.invalid"
DEV_KID = "dev-issuer-key"
_KEY_FILE = "dev-issuer.pem"


def dev_issuer_config(*, enabled: bool = True) -> IssuerConfig:
    # GitHub-shaped tokens: a GitHub issuer, covered by GitHub's kill switch.
    return IssuerConfig(url=DEV_ISSUER, provider="github", enabled=enabled)


def dev_issuer_key_path(dev_dir: Path) -> Path:
    return dev_dir / _KEY_FILE


def load_or_create_dev_issuer_key(dev_dir: Path) -> rsa.RSAPrivateKey:
    path = dev_issuer_key_path(dev_dir)
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return loaded


def dev_issuer_keyset(key: rsa.RSAPrivateKey) -> StaticKeySet:
    return StaticKeySet({DEV_KID: key.public_key()})


def dev_github_token(
    key: rsa.RSAPrivateKey,
    *,
    audience: str,
    repository: str,
    workflow: str,
    owner_id: str,
    repository_id: str,
    environment: str | None = None,
    ref: str = "refs/heads/main",
    lifetime: int = 300,
) -> str:
    """A token shaped like GitHub Actions', signed by the development issuer."""
    now = int(time.time())
    owner = repository.split("/", 1)[0]
    workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": audience,
        "iat": now,
        "nbf": now - 5,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "sub": f"repo:{repository}:ref:{ref}",
        "repository": repository,
        "repository_id": repository_id,
        "repository_owner": owner,
        "repository_owner_id": owner_id,
        "workflow_ref": workflow_ref,
        "job_workflow_ref": workflow_ref,
        "ref": ref,
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "sha": "0" * 40,
        "event_name": "workflow_dispatch",
        "run_id": str(now),
        "run_attempt": "1",
        "actor": owner,
        "runner_environment": "self-hosted",
    }
    if environment:
        claims["environment"] = environment
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": DEV_KID, "typ": "JWT"})
