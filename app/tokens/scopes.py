"""Revocation scopes: the keys a revocation is recorded under and an introspection reads.

A token belongs to exactly these scopes: itself (its jti), each of its projects, its
repository, and its repository's workflow. Names are digested: every key has one bounded
length, and no client-chosen character reaches Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from app.publishers.model import normalize_project_name


def _digest(*parts: str) -> str:
    material = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def token_scope(jti: str) -> str:
    return "rev:jti:" + _digest(jti)


def project_scope(project: str) -> str:
    return "rev:project:" + _digest(normalize_project_name(project))


def publisher_scope(issuer: str, repository: str, workflow: str | None = None) -> str:
    """A repository (all workflows) when `workflow` is None, else one workflow of it."""
    return "rev:publisher:" + _digest(issuer, repository.lower(), workflow or "*")


def scopes_of(jti: str, projects: Iterable[str], publisher: Mapping[str, str]) -> tuple[str, ...]:
    """Every scope whose revocation covers the token with these claims."""
    issuer = publisher.get("issuer", "")
    repository = publisher.get("repository", "")
    return (
        token_scope(jti),
        *(project_scope(project) for project in projects),
        publisher_scope(issuer, repository),
        publisher_scope(issuer, repository, publisher.get("workflow", "")),
    )
