"""The one exception hierarchy of trustpub.

Every failure a caller can see is a `TrustpubError` with a stable, kebab-case `code`
(clients print it), an HTTP `status` and a public `description` that is safe to show
to the caller: it never contains a token, a secret or another project's configuration.
The API layer maps these to each endpoint family's wire format in one place
(`app.api.errors`); domain code only raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class TrustpubError(Exception):
    """Base of every error a caller may see."""

    code: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    # Seconds for a Retry-After header; a class default that an instance may refine.
    retry_after: int | None = None
    # The RFC 6749 error name used by the OAuth endpoints (introspection, revocation).
    oauth_error: ClassVar[str] = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidPayload(TrustpubError):
    """The request is not what the endpoint takes: not JSON, no token, not a JWT, unknown issuer."""

    code = "invalid-payload"
    status = 422


class PayloadTooLarge(TrustpubError):
    code = "payload-too-large"
    status = 413


class NotEnabled(TrustpubError):
    """Trusted publishing (or this provider) is switched off."""

    code = "not-enabled"
    status = 422


class InvalidToken(TrustpubError):
    """The OIDC token did not verify: signature, key, algorithm, audience, issuer or timing.

    The description names the check that failed and nothing else: a caller whose token
    did not verify learns only that, and why in one phrase.
    """

    code = "invalid-token"
    status = 422


@dataclass(frozen=True)
class ClaimMismatch:
    """One of the caller's own claims that differs from what a publisher expects."""

    claim: str
    expected: str
    received: str | None

    def describe(self) -> str:
        received = "missing" if self.received is None else repr(self.received)
        return f"claim {self.claim!r}: expected {self.expected}, received {received}"


class InvalidPublisher(TrustpubError):
    """The token verified but no registered publisher matches it."""

    code = "invalid-publisher"
    status = 422

    def __init__(self, description: str, mismatches: tuple[ClaimMismatch, ...] = ()) -> None:
        if mismatches:
            description = f"{description}: " + "; ".join(m.describe() for m in mismatches)
        super().__init__(description)
        self.mismatches = mismatches


class InvalidReuseToken(TrustpubError):
    code = "invalid-reuse-token"
    status = 422


class InvalidRequest(TrustpubError):
    code = "invalid-request"
    status = 400


class RateLimited(TrustpubError):
    code = "rate-limited"
    status = 429
    oauth_error = "temporarily_unavailable"

    def __init__(self, description: str, retry_after: int) -> None:
        super().__init__(description)
        self.retry_after = max(1, retry_after)


class Unauthenticated(TrustpubError):
    """No valid client credentials. The description never says which part was wrong."""

    code = "unauthenticated"
    status = 401
    oauth_error = "invalid_client"


class Forbidden(TrustpubError):
    code = "insufficient-scope"
    status = 403
    oauth_error = "insufficient_scope"


class StoreUnavailable(TrustpubError):
    """The state store (Redis) cannot be reached: fail closed and ask the caller to retry."""

    code = "store-unavailable"
    status = 503
    retry_after = 5
    oauth_error = "temporarily_unavailable"


class StoreMayEvict(StoreUnavailable):
    """Redis may evict keys under memory pressure: a replay record or a revocation could
    vanish before its time, so the store is not fit to serve until that is set right.

    The public description says what to fix but not how Redis is set up; `detail`, for
    the operator's log and for start-up's error, says that too."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "the token store may evict keys, which could undo a revocation or a replay "
            "record: set Redis's maxmemory-policy to noeviction"
        )
        self.detail = detail


class KeySetUnavailable(TrustpubError):
    """The CI provider's key set cannot be fetched and no usable cached copy exists."""

    code = "issuer-keys-unavailable"
    status = 503
    retry_after = 30
    oauth_error = "temporarily_unavailable"


class ConfigurationError(Exception):
    """Settings or policies that stop start-up. Not an HTTP error: the operator must act."""


class DeclarationsLost(TrustpubError):
    """A confirmation that every project is declared, naming an epoch the store left:
    it lost its data since, and the declarations with it."""

    code = "declarations-lost"
    status = 409

    def __init__(self) -> None:
        super().__init__(
            "the token store lost its data after those declarations began, and the names "
            "with it: declare every project again, then confirm with the epoch that "
            "declaration answers"
        )


class InvalidPendingPublisher(TrustpubError):
    """A pending publisher matched, but its project exists now (or it was taken first)."""

    code = "invalid-pending-publisher"
    status = 422


class InvalidRegistration(TrustpubError):
    """A publisher registration that the policy schema or its provider refuses."""

    code = "invalid-registration"
    status = 422


class DuplicatePublisher(TrustpubError):
    code = "duplicate-publisher"
    status = 409


class ReadOnlyPublisher(TrustpubError):
    """A publisher from a policy file: change it in Git, not through the API."""

    code = "read-only-publisher"
    status = 409


class TooManyPublishers(TrustpubError):
    """The project holds as many registered publishers as one project may."""

    code = "too-many-publishers"
    status = 409


class ProjectExists(TrustpubError):
    """A pending publisher was asked for a project that exists already."""

    code = "project-exists"
    status = 409


class NotFound(TrustpubError):
    code = "not-found"
    status = 404


class ProjectsUnconfirmed(TrustpubError):
    """Pending publishers wait until the index has confirmed which projects exist since
    the store began: a store that lost its data (or a new one) knows none of them."""

    code = "projects-unconfirmed"
    status = 409


class ProjectForbidden(TrustpubError):
    """The client may manage other projects, not this one."""

    code = "project-forbidden"
    status = 403
    oauth_error = "insufficient_scope"
