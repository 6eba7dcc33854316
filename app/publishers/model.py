"""What every provider's publisher and claims look like to the rest of the service."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from app.errors import ClaimMismatch, InvalidPublisher
from app.oidc.verify import IssuerConfig

log = logging.getLogger(__name__)

# The token's own claims (RFC 7519), checked in app.oidc before a provider reads the rest.
REGISTERED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")


@dataclass(frozen=True)
class ProviderClaims:
    """A verified token's provider claims, checked by type and shape.

    `lookup_key` is the exact identity used to find candidate publishers (never a
    pattern); `identity` is what gets recorded in the upload token and the audit trail;
    `values` holds every type-checked claim by name (None when absent), which is what
    policy constraints read.
    """

    issuer: str
    lookup_key: str
    identity: Mapping[str, str]
    values: Mapping[str, str | None] = field(default_factory=dict)


class ClaimCheck(NamedTuple):
    """One check a publisher made against one of the caller's claims, passed or not.

    A named tuple rather than a frozen dataclass: a mint makes one per check, and a
    tuple is built in one call where a frozen dataclass sets each field in turn.
    """

    claim: str
    expected: str
    received: str | None
    ok: bool

    @property
    def mismatch(self) -> ClaimMismatch:
        return ClaimMismatch(self.claim, self.expected, self.received)


def pinned_on_first_use(value: str | None) -> str:
    """What a check of a claim pinned on first use expects, in words."""
    return f"{value!r} (pinned by the first token it matched)"


def failed(checks: Iterable[ClaimCheck]) -> tuple[ClaimMismatch, ...]:
    """The mismatches among `checks`: `mismatches()` is always derived from `checks()`."""
    return tuple(check.mismatch for check in checks if not check.ok)


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

    @property
    def id_claims(self) -> frozenset[str]:
        """The claims that carry the caller's immutable IDs (owner, repository, group,
        account). A token that fails a check of one is someone else's under the same
        names (a deleted owner registered again, say): it is not told the rest."""
        ...

    @property
    def pins_on_first_use(self) -> tuple[str, ...]:
        """The claims to pin from the first token it matches, because it names no
        immutable ID of its own (trust on first use); empty once pinned, or if it needs
        none. Pins are no constraint: they change neither specificity nor identity key."""
        ...

    def with_pins(self, pins: Mapping[str, str]) -> Publisher:
        """This publisher, also checking that a token's claims equal `pins`."""
        ...

    def checks(self, claims: ProviderClaims) -> tuple[ClaimCheck, ...]:
        """Every check this publisher makes on `claims`, in a stable order, passed or not."""
        ...

    def mismatches(self, claims: ProviderClaims) -> tuple[ClaimMismatch, ...]:
        """The failed `checks`; empty means the publisher matches."""
        ...


class Provider(Protocol):
    name: str

    def issuer_config(self, url: str, *, enabled: bool) -> IssuerConfig:
        """The token rules (algorithms, lifetime, age, jti) for one of its issuers."""
        ...

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


# "provider:claim" names already logged by this process, and how many it logs at most.
_UNKNOWN_LOGGED: set[str] = set()
_UNKNOWN_LOG_LIMIT = 100


def log_unknown_claims(
    provider: str,
    claims: Mapping[str, Any],
    known: frozenset[str],
    ignored_prefixes: tuple[str, ...] = (),
) -> None:
    """Log, once per process, each claim a provider's token carries that its model does
    not list: never a reason to refuse, but a new claim may be one a policy should check."""
    if known.issuperset(claims):  # nearly always: no set is built (the difference cost 1 %)
        return
    new = sorted(
        name
        for name in claims.keys() - known
        if provider + ":" + name not in _UNKNOWN_LOGGED and not name.startswith(ignored_prefixes)
    )
    # The bound is on names, however many one token brings: not on lines.
    new = new[: max(0, _UNKNOWN_LOG_LIMIT - len(_UNKNOWN_LOGGED))]
    if new:
        _UNKNOWN_LOGGED.update(provider + ":" + name for name in new)
        # The list's repr: claim names are the issuer's, quoted and escaped.
        log.info("%s tokens carry claims trustpub does not know (ignored): %s", provider, new)


def string_claims(
    claims: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, str | None]]:
    """The `required` and `optional` claims by name (an absent optional one is None),
    each checked as `string_claim` checks it, and refused by it, in the same order."""
    # A plain loop over the ~20 claims a mint reads: builtins over all of them at once
    # (dict(zip(...)), set(map(type, ...))) ran fewer bytecodes and took twice as long.
    # A value that is not a plain string goes the way that names what is wrong with it.
    present: dict[str, str] = {}
    for name in required:
        value = claims.get(name)
        if type(value) is not str:
            value = string_claim(claims, name, required=True) or ""
        present[name] = value
    maybe: dict[str, str | None] = {}
    for name in optional:
        value = claims.get(name)
        if value is not None and type(value) is not str:
            value = string_claim(claims, name, required=False)
        maybe[name] = value
    return present, maybe


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
