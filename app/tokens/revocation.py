"""Revocation and introspection of upload tokens.

A revocation is a moment per scope: "tokens covered by this scope and issued at or
before t are revoked". Scopes are one token (its jti), a project, a repository and a
repository's workflow. Introspection reads the entries of exactly the scopes a token
belongs to, plus the epoch, in one round trip: its cost does not depend on how many
revocations exist. Entries expire once every token they cover has expired.

A token's `iat` is the clock of the replica that minted it, and replicas may differ by
up to CLOCK_SKEW_SECONDS (which introspection tolerates). So a moment meant as "now"
reaches that far ahead, one token's moment is never before its own `iat`, and every
entry lives that much longer than the tokens it covers: an acknowledged revocation must
hold on every replica, whichever clock minted the token or checks it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.audit import AuditTrail
from app.clocks import CLOCK_SKEW_SECONDS, check_store_clock
from app.errors import InvalidRequest, InvalidToken, StoreUnavailable
from app.metrics import labelled, metrics
from app.publishers import github, gitlab, google
from app.publishers.policy_files import normalized_project
from app.stores.base import RevocationStore
from app.tokens.mint import JTI
from app.tokens.scopes import project_scope, publisher_scope, token_scope
from app.tokens.verify import UploadTokenVerifier

# The repository a token of each provider carries, as its publishers name it.
_REPOSITORY_FORMS: Mapping[str, tuple[re.Pattern[str], str]] = {
    "github": (github.REPOSITORY, "a GitHub repository's OWNER/NAME"),
    "gitlab": (gitlab.PROJECT_PATH, "a GitLab project's path (GROUP/PROJECT)"),
    "google": (google.EMAIL, "a Google service account's e-mail address"),
}
# The workflow a token of each provider carries; None: its tokens name none (a workflow
# scope of it would be acknowledged and cover no token).
_WORKFLOW_FORMS: Mapping[str, tuple[Callable[[str], bool], str] | None] = {
    "github": (github.is_workflow_file, "the workflow's file name (release.yml), not a path"),
    "gitlab": (gitlab.is_ci_file, "the CI file's path in the project (ci/release.yml)"),
    "google": None,
}


@dataclass(frozen=True)
class Revocation:
    scope: str
    before: int
    expires_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "expires_at": self.expires_at}


@dataclass(frozen=True)
class TokenRevoker:
    """Every revocation, whoever asks (the API, the OAuth endpoint, the CLI), is
    recorded in the audit trail by `actor`, in the same step as its entry."""

    # None: built without keys (the CLI revoking a project, a publisher or a jti).
    verifier: UploadTokenVerifier | None
    store: RevocationStore
    clock: Callable[[], float]
    # The longest an upload token can live: how long a bulk entry must be kept.
    max_token_ttl: int
    audit: AuditTrail
    # The CI issuers this deployment trusts, with their provider: a repository of any
    # other was never minted for.
    issuers: Mapping[str, str]

    def revoke_token(self, raw_token: str, *, actor: str) -> Revocation | None:
        """Revoke a token that trustpub minted; None for anything else (RFC 7009: not an error)."""
        if self.verifier is None:
            raise ValueError("this revoker was built without signing keys")
        now = self._now()
        try:
            # Up to CLOCK_SKEW_SECONDS past its `exp`: a replica whose clock is behind this
            # one's still takes it that long, and `_revoke` keeps the entry so long.
            token = self.verifier.verify(raw_token, now, expiry_grace=CLOCK_SKEW_SECONDS)
        except InvalidToken:
            return None
        # Never the token itself in the record: its jti names it.
        record = {"scope": "token", "jti": token.jti}
        moment = max(now, token.issued_at)
        return self._revoke(token_scope(token.jti), moment, token.expires_at, actor, record)

    def revoke_jti(self, jti: str, *, actor: str) -> Revocation:
        if not JTI.fullmatch(jti):
            # A jti no token carries (most often the token itself, pasted in its place)
            # would be acknowledged, revoke nothing, and put a live token in the audit.
            raise InvalidRequest("'jti' is an upload token's jti (24 base64url characters)")
        # The token is not at hand: minted already, its `iat` is at most this far ahead.
        moment = self._now() + CLOCK_SKEW_SECONDS
        record = {"scope": "jti", "jti": jti}
        return self._revoke(token_scope(jti), moment, moment + self.max_token_ttl, actor, record)

    def revoke_project(self, project: str, before: int | None = None, *, actor: str) -> Revocation:
        # Checked as every project name is: a name no token can carry would be
        # acknowledged as revoked and revoke nothing.
        project = normalized_project(project)
        moment = self._moment(before)
        record = {"scope": "project", "project": project}
        scope = project_scope(project)
        return self._revoke(scope, moment, moment + self.max_token_ttl, actor, record)

    def revoke_publisher(
        self,
        issuer: str,
        repository: str,
        workflow: str | None,
        before: int | None = None,
        *,
        actor: str,
    ) -> Revocation:
        provider = self.issuers.get(issuer)
        if provider is None:
            # Not quoted: what was sent in its place may be a token, pasted in the wrong
            # field. The trusted ones are the deployment's configuration, no secret.
            raise InvalidRequest(
                "'issuer' is not a CI issuer this service trusts: "
                + ", ".join(sorted(self.issuers))
            )
        if repository != repository.strip().strip("/") or "://" in repository:
            raise InvalidRequest("'repository' is a repository's path (owner/name), not a URL")
        form = _REPOSITORY_FORMS.get(provider)
        if form is not None and not form[0].fullmatch(repository):
            # An owner alone, a host in front: acknowledged, it would revoke nothing.
            raise InvalidRequest(f"'repository' is {form[1]}")
        if workflow is not None and provider in _WORKFLOW_FORMS:
            # GitHub tokens name the workflow by its file; GitLab's by its path; Google's
            # none. Anything else would be acknowledged and revoke nothing.
            workflow_form = _WORKFLOW_FORMS[provider]
            if workflow_form is None:
                raise InvalidRequest(f"tokens of {issuer!r} name no workflow: leave it out")
            if not workflow_form[0](workflow):
                raise InvalidRequest(f"'workflow' is {workflow_form[1]}")
        moment = self._moment(before)
        scope = publisher_scope(issuer, repository, workflow)
        record = {
            "scope": "repository",
            "issuer": issuer,
            "repository": repository,
            "workflow": workflow,
        }
        return self._revoke(scope, moment, moment + self.max_token_ttl, actor, record)

    def _now(self) -> int:
        """This replica's clock, once it agrees with the store's: a moment or an entry's
        life judged by a clock that stepped would leave tokens out, or drop the entry
        early."""
        now = self.clock()
        check_store_clock(now, self.store.server_time())
        return int(now)

    def _moment(self, before: int | None) -> int:
        now = self._now()
        if before is None:
            # "Everything minted so far", on whichever replica's clock minted it.
            return now + CLOCK_SKEW_SECONDS
        if before > now:
            raise InvalidRequest("'before' must not be in the future")
        return before

    def _revoke(
        self,
        scope: str,
        moment: int,
        expires_at: int,
        actor: str,
        fields: Mapping[str, str | None],
    ) -> Revocation:
        now = int(self.clock())
        record = self.audit.prepare("revoke", actor, {**fields, "before": str(moment)})
        if expires_at + CLOCK_SKEW_SECONDS >= now:
            # +1: an entry must outlive the last second in which a covered token is
            # valid, on a replica whose clock is behind this one's too.
            ttl = expires_at + CLOCK_SKEW_SECONDS - now + 1
            self.store.revoke_before(scope, moment, ttl, audit=record)
            labelled(metrics().revocations, scope.split(":")[1]).inc()
            self.audit.log(record)
        else:
            # Every covered token has expired: nothing left to store, but the request
            # is recorded all the same.
            self.audit.append(record)
        return Revocation(scope=scope, before=moment, expires_at=expires_at + CLOCK_SKEW_SECONDS)


@dataclass(frozen=True)
class TokenIntrospector:
    verifier: UploadTokenVerifier
    store: RevocationStore
    clock: Callable[[], float]

    def introspect(self, raw_token: str) -> str | None:
        """RFC 7662's answer for an active token, as JSON text; None for anything else."""
        now = int(self.clock())
        try:
            token = self.verifier.verify(raw_token, now)
        except InvalidToken:
            labelled(metrics().introspections, "inactive").inc()
            return None
        try:
            state = self.store.revocation_state(token.revocation_scopes)
            # A clock off Redis's would judge `exp` against entries Redis expires by its
            # own: a revocation gone while this replica still takes the token for valid.
            check_store_clock(self.clock(), state.server_time)
        except StoreUnavailable:
            labelled(metrics().introspections, "store-unavailable").inc()
            raise
        if state.epoch is None or state.epoch.id != token.epoch:
            # The store lost its data since this token was minted: its revocations may
            # be lost too, so it is no longer vouched for.
            labelled(metrics().introspections, "inactive").inc()
            return None
        if any(moment is not None and token.issued_at <= moment for moment in state.revoked_before):
            labelled(metrics().introspections, "inactive").inc()
            return None
        labelled(metrics().introspections, "active").inc()
        return token.introspection
