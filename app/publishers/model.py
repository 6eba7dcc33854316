"""What every provider's publisher and claims look like to the rest of the service."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.errors import ClaimMismatch, InvalidPublisher


@dataclass(frozen=True)
class ProviderClaims:
    """A verified token's provider claims, checked by type and shape.

    `lookup_key` is the exact identity used to find candidate publishers (never a
    pattern); `identity` is what gets recorded in the upload token and the audit trail.
    """

    issuer: str
    lookup_key: str
    identity: Mapping[str, str]


class Publisher(Protocol):
    # Read-only members: publishers are frozen once loaded.
    @property
    def provider(self) -> str: ...

    @property
    def issuer(self) -> str: ...

    @property
    def projects(self) -> frozenset[str]: ...

    @property
    def source(self) -> str:
        """Where it was registered, e.g. `policies/demo.toml: publisher[0]`."""
        ...

    @property
    def lookup_key(self) -> str: ...

    @property
    def specificity(self) -> int:
        """How many optional constraints it sets: when several match, the most specific wins."""
        ...

    @property
    def identity_key(self) -> tuple[str, ...]:
        """Two publishers with the same identity key are duplicates."""
        ...

    def mismatches(self, claims: ProviderClaims) -> tuple[ClaimMismatch, ...]: ...


class Provider(Protocol):
    name: str

    def parse_publisher(self, entry: Mapping[str, Any], source: str) -> Publisher:
        """Build a publisher from a schema-valid policy entry."""
        ...

    def parse_claims(self, issuer: str, claims: Mapping[str, Any]) -> ProviderClaims:
        """Type- and shape-check a verified token's claims; raise InvalidPublisher."""
        ...


_NAME_SEPARATORS = re.compile(r"[-_.]+")


def normalize_project_name(name: str) -> str:
    """PEP 503 normalisation: `Demo_Pkg` and `demo-pkg` are one project."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def string_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    """A claim that must be a JSON string when present; every CI claim is one."""
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidPublisher(
                "token is missing a required claim",
                (ClaimMismatch(name, "a string", None),),
            )
        return None
    if not isinstance(value, str):
        raise InvalidPublisher(
            "token has a claim of the wrong type",
            (ClaimMismatch(name, "a string", f"<{type(value).__name__}>"),),
        )
    return value
