"""GitHub Actions: the claims its tokens carry and the publishers that match them.

Identity is bound to immutable IDs (`repository_owner_id`, optionally `repository_id`)
so a deleted and re-registered owner or repository cannot inherit a publisher. The
publisher's workflow is matched against `workflow_ref` (the calling workflow, which
the maintainer controls), never against `sub`, whose template organisations customise.
A policy may add constraints (`CONSTRAINTS`): refs, protected refs, events, runners, and
the reusable workflow that actually runs the job (`job_workflow_ref`, `job_workflow_sha`),
which may live in another repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

from app.errors import ClaimMismatch, InvalidPublisher
from app.oidc.verify import IssuerConfig
from app.publishers.constraints import (
    NO_CLAIMS,
    Claims,
    Glob,
    Rule,
    RuleFactory,
    check_rules,
    equal_to,
    is_true,
    matches_any,
    one_of,
    rules_from_policy,
)
from app.publishers.model import (
    REGISTERED_CLAIMS,
    ClaimCheck,
    ProviderClaims,
    failed,
    log_unknown_claims,
    normalize_project_name,
    string_claims,
)
from app.settings import PUBLIC_GITHUB_ISSUER

REQUIRED_CLAIMS = (
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "sha",
    "event_name",
    "run_id",
)
# Checked by type when present; used by policies or recorded for audit.
OPTIONAL_CLAIMS = (
    "environment",
    "ref_type",
    "ref_protected",
    "runner_environment",
    "run_attempt",
    "workflow_sha",
    "job_workflow_sha",
    "actor",
    "actor_id",
)
# Deliberately not checked: `sub` (customisable template) and descriptive claims.
IGNORED_CLAIMS = (
    "sub",
    "repository_visibility",
    "run_number",
    "enterprise",
    "enterprise_id",
    "workflow",
    "head_ref",
    "base_ref",
    "environment_node_id",
    "check_run_id",
)
# Custom repository properties, one claim each (`repo_property_team`): not logged either.
_IGNORED_PREFIXES = ("repo_property_",)
_KNOWN_CLAIMS = frozenset(REGISTERED_CLAIMS + REQUIRED_CLAIMS + OPTIONAL_CLAIMS + IGNORED_CLAIMS)

REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_WORKFLOW_FILE = re.compile(r"^[^/@\s]+\.ya?ml$")
_WORKFLOWS_DIR = "/.github/workflows/"


@dataclass(frozen=True)
class ReusableWorkflowRule:
    """`job_workflow_ref` is OWNER/REPO/.github/workflows/FILE@REF of the policy.

    The repository may be any repository (a shared workflow of the organisation); it is
    compared ignoring case like every GitHub owner/name, FILE exactly, and REF as an
    exact value or a pattern (`refs/tags/v*`).
    """

    repository: str
    file: str
    ref: Glob
    claim: str = "job_workflow_ref"

    @classmethod
    def from_policy(cls, value: str) -> ReusableWorkflowRule:
        split = split_workflow_ref(value)
        if split is None:
            raise ValueError(f"{value!r} is not OWNER/REPO/.github/workflows/FILE@REF")
        repository, file, ref = split
        return cls(repository=repository, file=file, ref=Glob(ref))

    @property
    def text(self) -> str:
        return f"{self.repository}{_WORKFLOWS_DIR}{self.file}@{self.ref.text}"

    @property
    def key(self) -> str:
        return f"{self.claim}~{self.repository.lower()}{_WORKFLOWS_DIR}{self.file}@{self.ref.text}"

    def check(self, received: str | None, claims: Claims = NO_CLAIMS) -> ClaimCheck:
        # The run's `ref` and `sha` are the only refs that may hold an "@" (a monorepo
        # tag `refs/tags/pkg@1.0.0` running a same-repository reusable workflow), as
        # `_workflow_file` accepts them in `workflow_ref`.
        own_refs = tuple(ref for ref in (claims.get("ref"), claims.get("sha")) if ref)
        split = split_workflow_ref(received, own_refs) if received is not None else None
        ok = split is not None and (
            split[0].lower() == self.repository.lower()
            and split[1] == self.file
            and self.ref.matches(split[2])
        )
        return ClaimCheck(self.claim, self._expected, received, ok)

    @cached_property
    def _expected(self) -> str:
        how = "matching" if not self.ref.is_exact else "equal to"
        return f"{how} {self.text!r} (repository ignoring case)"


def is_workflow_file(name: str) -> bool:
    """Whether `name` is a workflow as GitHub tokens name it: a file name (release.yml)."""
    return _WORKFLOW_FILE.fullmatch(name) is not None


def split_workflow_ref(value: str, own_refs: tuple[str, ...] = ()) -> tuple[str, str, str] | None:
    """(OWNER/REPO, FILE, REF) of `OWNER/REPO/.github/workflows/FILE@REF`, or None if odd.

    REF may hold an "@" only when it is one of `own_refs` (the run's own ref or sha)."""
    repository, marker, rest = value.partition(_WORKFLOWS_DIR)
    file_name, at, ref = rest.partition("@")
    if not (marker and at and ref and ("@" not in ref or ref in own_refs)):
        return None
    if not (REPOSITORY.fullmatch(repository) and is_workflow_file(file_name)):
        return None
    return repository, file_name, ref


# Policy keys that constrain a run beyond its identity, and the claim each one reads.
CONSTRAINTS: Mapping[str, RuleFactory] = {
    "refs": matches_any("ref"),
    "ref_protected": is_true("ref_protected"),
    "event_names": one_of("event_name"),
    "runner_environment": equal_to("runner_environment"),
    "job_workflow_ref": ReusableWorkflowRule.from_policy,
    "job_workflow_sha": equal_to("job_workflow_sha"),
}


@dataclass(frozen=True)
class GitHubClaims(ProviderClaims):
    repository: str = ""
    repository_id: str = ""
    repository_owner_id: str = ""
    workflow: str = ""
    environment: str | None = None


@dataclass(frozen=True)
class GitHubPublisher:
    issuer: str
    repository: str
    repository_owner_id: str
    workflow: str
    projects: frozenset[str]
    source: str
    environment: str | None = None
    repository_id: str | None = None
    rules: tuple[Rule, ...] = ()
    provider: str = field(default="github", init=False)
    id_claims: ClassVar[frozenset[str]] = frozenset({"repository_owner_id", "repository_id"})

    @property
    def lookup_key(self) -> str:
        return self.repository.lower()

    @property
    def specificity(self) -> int:
        return (self.environment is not None) + (self.repository_id is not None) + len(self.rules)

    @property
    def identity_key(self) -> tuple[str, ...]:
        return (
            self.provider,
            self.issuer,
            self.repository.lower(),
            self.repository_owner_id,
            self.repository_id or "",
            self.workflow,
            _environment_key(self.environment or ""),
            *(rule.key for rule in self.rules),
        )

    @property
    def pins_on_first_use(self) -> tuple[str, ...]:
        return ()  # the IDs it needs are required when it is registered

    def with_pins(self, pins: Mapping[str, str]) -> GitHubPublisher:
        return self

    def mismatches(self, claims: ProviderClaims) -> tuple[ClaimMismatch, ...]:
        return failed(self.checks(claims))

    def checks(self, claims: ProviderClaims) -> tuple[ClaimCheck, ...]:
        if not isinstance(claims, GitHubClaims):
            return (ClaimCheck("iss", "a GitHub Actions token", claims.issuer, False),)
        expected = self._expected
        checks = [
            ClaimCheck(
                "repository",
                expected.repository,
                claims.repository,
                claims.repository.lower() == expected.lookup_key,
            ),
            ClaimCheck(
                "repository_owner_id",
                expected.repository_owner_id,
                claims.repository_owner_id,
                claims.repository_owner_id == self.repository_owner_id,
            ),
            ClaimCheck(
                "workflow_ref",
                expected.workflow,
                claims.workflow,
                claims.workflow == self.workflow,
            ),
        ]
        if self.repository_id is not None:
            checks.append(
                ClaimCheck(
                    "repository_id",
                    expected.repository_id,
                    claims.repository_id,
                    claims.repository_id == self.repository_id,
                )
            )
        if self.environment is not None:
            # GitHub environment names are case-insensitive.
            checks.append(
                ClaimCheck(
                    "environment",
                    expected.environment,
                    claims.environment,
                    claims.environment is not None
                    and _same_environment(claims.environment, self.environment),
                )
            )
        if self.rules:
            checks.extend(check_rules(self.rules, claims.values))
        return tuple(checks)

    @cached_property
    def _expected(self) -> _Expected:
        # What each check expects, in words: the same for every token, so written once,
        # on the first token that reaches this publisher.
        return _Expected(
            lookup_key=self.lookup_key,
            repository=f"{self.repository!r} (any case)",
            repository_owner_id=repr(self.repository_owner_id),
            workflow=f"workflow file {self.workflow!r}",
            repository_id=repr(self.repository_id),
            environment=f"{self.environment!r} (any case)",
        )


class _Expected(NamedTuple):
    lookup_key: str
    repository: str
    repository_owner_id: str
    workflow: str
    repository_id: str
    environment: str


class GitHubProvider:
    name = "github"

    def issuer_config(self, url: str, *, enabled: bool) -> IssuerConfig:
        # Tokens live about 5 minutes; IssuerConfig's default lifetime cap (900 s) fits.
        return IssuerConfig(url=url, provider=self.name, enabled=enabled)

    def parse_publisher(self, entry: Mapping[str, Any], source: str) -> GitHubPublisher:
        environment = entry.get("environment")
        return GitHubPublisher(
            issuer=entry.get("issuer", PUBLIC_GITHUB_ISSUER),
            repository=entry["repository"],
            repository_owner_id=entry["repository_owner_id"],
            repository_id=entry.get("repository_id"),
            workflow=entry["workflow"],
            environment=environment,
            rules=rules_from_policy(entry, CONSTRAINTS),
            projects=frozenset(normalize_project_name(name) for name in entry["projects"]),
            source=source,
        )

    def parse_claims(self, issuer: str, claims: Mapping[str, Any]) -> GitHubClaims:
        log_unknown_claims(self.name, claims, _KNOWN_CLAIMS, _IGNORED_PREFIXES)
        values, optional = string_claims(claims, REQUIRED_CLAIMS, OPTIONAL_CLAIMS)
        repository = values["repository"]
        _require(REPOSITORY.fullmatch(repository), "repository", "owner/name", repository)
        if values["event_name"] == "pull_request_target":
            # pull_request_target runs with the base repository's credentials on events
            # that forks control: never a publishing context.
            raise InvalidPublisher(
                "workflows triggered by pull_request_target cannot publish",
                (ClaimMismatch("event_name", "not 'pull_request_target'", "pull_request_target"),),
            )
        if not values["ref"] and not values["sha"]:
            raise InvalidPublisher(
                "token has neither a ref nor a sha",
                (ClaimMismatch("ref", "a non-empty ref or sha", ""),),
            )
        workflow = _workflow_file(repository, values["workflow_ref"], values["ref"], values["sha"])
        environment = optional["environment"] or None
        identity = {
            "provider": self.name,
            "issuer": issuer,
            "repository": repository,
            "repository_id": values["repository_id"],
            "repository_owner_id": values["repository_owner_id"],
            "workflow": workflow,
            "job_workflow_ref": values["job_workflow_ref"],
            "environment": environment or "",
            "ref": values["ref"],
            "sha": values["sha"],
            "event_name": values["event_name"],
            "run_id": values["run_id"],
            "run_attempt": optional["run_attempt"] or "",
        }
        return GitHubClaims(
            issuer=issuer,
            lookup_key=repository.lower(),
            identity=identity,
            repository=repository,
            repository_id=values["repository_id"],
            repository_owner_id=values["repository_owner_id"],
            workflow=workflow,
            environment=environment,
            values={**values, **optional},
        )


def _workflow_file(repository: str, workflow_ref: str, ref: str, sha: str) -> str:
    """The file name in `OWNER/REPO/.github/workflows/FILE@REF`, refusing anything odd.

    Odd means another repository (the calling workflow must live in the repository that
    owns the publisher), a path below workflows/, a second `@` (`release.yml@x.yml@ref`),
    an empty ref, or a file that is not YAML. A git ref may hold `@` itself (monorepo
    tags such as `refs/tags/pkg@1.0.0`): REF is then accepted only when it is exactly the
    run's own `ref` or `sha`, as PyPI compares it, so no second `@` can move FILE.
    """
    prefix = repository + _WORKFLOWS_DIR
    if workflow_ref.startswith(prefix):
        file_name, at, at_ref = workflow_ref[len(prefix) :].partition("@")
        plain_ref = "@" not in at_ref or at_ref in (ref, sha)
        if at and at_ref and plain_ref and is_workflow_file(file_name):
            return file_name
    expected = f"{repository}/.github/workflows/<file>.yml@<ref>"
    raise _malformed("workflow_ref", expected, workflow_ref)


def _require(condition: object, claim: str, expected: str, received: str) -> None:
    if not condition:
        raise _malformed(claim, expected, received)


def _malformed(claim: str, expected: str, received: str) -> InvalidPublisher:
    return InvalidPublisher(
        f"token claim {claim!r} is malformed", (ClaimMismatch(claim, expected, received),)
    )


def _environment_key(environment: str) -> str:
    """What two publishers' environments are compared by, as `_same_environment` does."""
    return environment.lower() if environment.isascii() else environment


def _same_environment(received: str, expected: str) -> bool:
    """GitHub folds the case of ASCII letters only: Unicode folding would let the
    KELVIN SIGN (U+212A) in `pypi-\u212a8s` pass for the `k` of `pypi-k8s`."""
    if received.isascii() and expected.isascii():
        return received.lower() == expected.lower()
    return received == expected
