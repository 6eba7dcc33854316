"""Google Cloud service accounts (Cloud Build, GCE, Cloud Run, ...): claims and publishers.

A publisher names a service account by its `email`, compared exactly, and may pin its
unique numeric ID (`sub`) so a deleted and re-created account of the same name does not
inherit it. `email_verified` must be the JSON boolean `true`: Google's one claim that is
not a string, and a string "true" is refused rather than coerced.

Google ID tokens live an hour and carry no `jti`. The issuer config therefore accepts a
token only within a few minutes of `iat` (`MAX_TOKEN_AGE`), and the exchange identifies a
jti-less token by a hash of its signed content for the replay check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from app.errors import ClaimMismatch, InvalidPublisher
from app.oidc.verify import LEEWAY_SECONDS, IssuerConfig
from app.publishers.model import (
    REGISTERED_CLAIMS,
    ClaimCheck,
    ProviderClaims,
    failed,
    log_unknown_claims,
    normalize_project_name,
    string_claims,
)
from app.settings import GOOGLE_ISSUER

# Where Google's discovery document puts its keys: https://www.googleapis.com/oauth2/v3/certs.
GOOGLE_KEY_ORIGINS = frozenset({"https://www.googleapis.com"})

# Google ID tokens claim exactly one hour (exp = iat + 3600).
MAX_TOKEN_LIFETIME = 3600 + LEEWAY_SECONDS
# ... but a leaked one must not be exchangeable for that hour: only a fresh token is
# accepted (plus the one leeway). A CI step requests it right before exchanging it.
MAX_TOKEN_AGE = 300

REQUIRED_CLAIMS = ("email", "sub")
# `email_verified` is required too, but as a JSON boolean: checked on its own.
OPTIONAL_CLAIMS = ("azp",)
# Deliberately not checked: Compute Engine details (`google`, an object) and the hosted
# domain of user accounts, which service accounts never have.
IGNORED_CLAIMS = ("google", "hd")
_KNOWN_CLAIMS = frozenset(
    (*REGISTERED_CLAIMS, *REQUIRED_CLAIMS, *OPTIONAL_CLAIMS, *IGNORED_CLAIMS, "email_verified")
)

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True)
class GoogleClaims(ProviderClaims):
    email: str = ""
    subject: str = ""


@dataclass(frozen=True)
class GooglePublisher:
    issuer: str
    email: str
    projects: frozenset[str]
    source: str
    subject: str | None = None
    provider: str = field(default="google", init=False)
    id_claims: ClassVar[frozenset[str]] = frozenset({"sub"})

    @property
    def lookup_key(self) -> str:
        return self.email

    @property
    def specificity(self) -> int:
        return self.subject is not None

    @property
    def identity_key(self) -> tuple[str, ...]:
        return (self.provider, self.issuer, self.email, self.subject or "")

    @property
    def pins_on_first_use(self) -> tuple[str, ...]:
        return ()  # the IDs it needs are required when it is registered

    def with_pins(self, pins: Mapping[str, str]) -> GooglePublisher:
        return self

    def mismatches(self, claims: ProviderClaims) -> tuple[ClaimMismatch, ...]:
        return failed(self.checks(claims))

    def checks(self, claims: ProviderClaims) -> tuple[ClaimCheck, ...]:
        if not isinstance(claims, GoogleClaims):
            return (ClaimCheck("iss", "a Google service account token", claims.issuer, False),)
        expected_email, expected_subject = self._expected
        checks = [
            ClaimCheck("email", expected_email, claims.email, claims.email == self.email),
        ]
        if self.subject is not None:
            checks.append(
                ClaimCheck("sub", expected_subject, claims.subject, claims.subject == self.subject)
            )
        return tuple(checks)

    @cached_property
    def _expected(self) -> tuple[str, str]:
        # The checks' descriptions (e-mail, subject): the same for every token.
        return repr(self.email), repr(self.subject)


class GoogleProvider:
    name = "google"

    def issuer_config(self, url: str, *, enabled: bool) -> IssuerConfig:
        return IssuerConfig(
            url=url,
            provider=self.name,
            max_lifetime=MAX_TOKEN_LIFETIME,
            max_age=MAX_TOKEN_AGE,
            requires_jti=False,
            enabled=enabled,
            key_origins=GOOGLE_KEY_ORIGINS if url == GOOGLE_ISSUER else frozenset(),
        )

    def parse_publisher(self, entry: Mapping[str, Any], source: str) -> GooglePublisher:
        return GooglePublisher(
            issuer=entry.get("issuer", GOOGLE_ISSUER),
            email=entry["email"],
            subject=entry.get("sub"),
            projects=frozenset(normalize_project_name(name) for name in entry["projects"]),
            source=source,
        )

    def parse_claims(self, issuer: str, claims: Mapping[str, Any]) -> GoogleClaims:
        log_unknown_claims(self.name, claims, _KNOWN_CLAIMS)
        values, optional = string_claims(claims, REQUIRED_CLAIMS, OPTIONAL_CLAIMS)
        email = values["email"]
        if not EMAIL.fullmatch(email):
            raise InvalidPublisher(
                "token claim 'email' is malformed",
                (ClaimMismatch("email", "a service account e-mail address", email),),
            )
        verified = claims.get("email_verified")
        if verified is not True:
            raise InvalidPublisher(
                "token e-mail address is not verified",
                (
                    ClaimMismatch(
                        "email_verified",
                        "true (a JSON boolean)",
                        None if verified is None else json.dumps(verified),
                    ),
                ),
            )
        identity = {
            "provider": self.name,
            "issuer": issuer,
            # "repository" is the name revocation scopes use: the account is the publisher.
            "repository": email,
            "email": email,
            "sub": values["sub"],
        }
        return GoogleClaims(
            issuer=issuer,
            lookup_key=email,
            identity=identity,
            values={**values, **optional},
            email=email,
            subject=values["sub"],
        )
