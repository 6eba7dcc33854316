"""GitLab CI/CD (gitlab.com and self-managed instances): claims and publishers.

A publisher names its project (`group/sub/project`: the namespace is everything before
the last `/`; compared ignoring case, as GitLab paths are), the CI file the pipeline ran
from, read from `ci_config_ref_uri` (`HOST/PROJECT//PATH/FILE.yml@REF`; subdirectories
allowed; compared exactly), and the issuer of its instance: a token of one instance never
matches a publisher of another, because publishers are looked up per issuer. GitLab
environment names are case-sensitive, unlike GitHub's. `namespace_id` and `project_id`
may be pinned against resurrection of a deleted group or project; a publisher that pins
neither pins both from the first token it matches (trust on first use: a registration
cannot look them up). `sub` is never parsed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

from app.errors import ClaimMismatch, InvalidPublisher
from app.oidc.verify import IssuerConfig
from app.publishers.constraints import (
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
    pinned_on_first_use,
    string_claims,
)
from app.settings import PUBLIC_GITLAB_ISSUER

# GitLab ID tokens live as long as the job's timeout (1 hour by default for a project,
# 5 minutes when none applies). A cap still matters: it bounds how long a leaked token is
# worth anything and how long its replay record is kept. Jobs with a timeout above this
# cannot publish.
MAX_TOKEN_LIFETIME = 6 * 3600

REQUIRED_CLAIMS = (
    "project_path",
    "project_id",
    "namespace_path",
    "namespace_id",
    "ci_config_ref_uri",
    "ref_path",
    "sha",
    "pipeline_source",
    "pipeline_id",
    "job_id",
)
# Checked by type when present; used by policies or recorded for audit.
OPTIONAL_CLAIMS = (
    "ref",
    "ref_type",
    "ref_protected",
    "environment",
    "environment_protected",
    "deployment_tier",
    "environment_action",
    "runner_environment",
    "ci_config_sha",
    "user_id",
    "user_login",
)
# Deliberately not checked: `sub` (never parsed), personal data, and claims of other
# types (`runner_id` is a number, `groups_direct` a list).
IGNORED_CLAIMS = (
    "sub",
    "user_email",
    "user_identities",
    "user_access_level",
    "groups_direct",
    "runner_id",
    "project_visibility",
    "job_namespace_id",
    "job_namespace_path",
    "job_project_id",
    "job_project_path",
)
_KNOWN_CLAIMS = frozenset(REGISTERED_CLAIMS + REQUIRED_CLAIMS + OPTIONAL_CLAIMS + IGNORED_CLAIMS)

_PATH_SEGMENT = r"[A-Za-z0-9_.][A-Za-z0-9_.+-]{0,254}"
PROJECT_PATH = re.compile(rf"^{_PATH_SEGMENT}(/{_PATH_SEGMENT})+$")
_CI_FILE = re.compile(r"^[^\s@]*[^\s@/]\.ya?ml$")

# Policy keys that constrain a run beyond its identity, and the claim each one reads.
# The immutable IDs a publisher without either pins from its first token.
FIRST_USE_PINS = ("namespace_id", "project_id")

CONSTRAINTS: Mapping[str, RuleFactory] = {
    "refs": matches_any("ref_path"),
    "ref_protected": is_true("ref_protected"),
    "pipeline_sources": one_of("pipeline_source"),
    "runner_environment": equal_to("runner_environment"),
}


@dataclass(frozen=True)
class GitLabClaims(ProviderClaims):
    project_path: str = ""
    project_id: str = ""
    namespace_id: str = ""
    workflow_filepath: str = ""
    environment: str | None = None


@dataclass(frozen=True)
class GitLabPublisher:
    issuer: str
    project_path: str
    workflow_filepath: str
    projects: frozenset[str]
    source: str
    environment: str | None = None
    namespace_id: str | None = None
    project_id: str | None = None
    rules: tuple[Rule, ...] = ()
    # (claim, value) pinned by the first token it matched, when it names no ID itself;
    # None stands for a pin the store lost a part of, which no token can pass.
    first_use_pins: tuple[tuple[str, str | None], ...] = ()
    provider: str = field(default="gitlab", init=False)
    id_claims: ClassVar[frozenset[str]] = frozenset({"namespace_id", "project_id"})

    @property
    def lookup_key(self) -> str:
        return self.project_path.lower()

    @property
    def namespace(self) -> str:
        """Everything before the last `/`: the group and its subgroups, or the user."""
        return self.project_path.rpartition("/")[0]

    @property
    def specificity(self) -> int:
        pins = (self.environment, self.namespace_id, self.project_id)
        return sum(pin is not None for pin in pins) + len(self.rules)

    @property
    def identity_key(self) -> tuple[str, ...]:
        return (
            self.provider,
            self.issuer,
            self.project_path.lower(),
            self.workflow_filepath,
            self.environment or "",  # case-sensitive on GitLab
            self.namespace_id or "",
            self.project_id or "",
            *(rule.key for rule in self.rules),
        )

    @property
    def pins_on_first_use(self) -> tuple[str, ...]:
        unpinned = self.namespace_id is None and self.project_id is None
        return FIRST_USE_PINS if unpinned and not self.first_use_pins else ()

    def with_pins(self, pins: Mapping[str, str]) -> GitLabPublisher:
        return replace(self, first_use_pins=tuple((c, pins.get(c)) for c in FIRST_USE_PINS))

    def mismatches(self, claims: ProviderClaims) -> tuple[ClaimMismatch, ...]:
        return failed(self.checks(claims))

    def checks(self, claims: ProviderClaims) -> tuple[ClaimCheck, ...]:
        if not isinstance(claims, GitLabClaims):
            return (ClaimCheck("iss", "a GitLab CI/CD token", claims.issuer, False),)
        expected = self._expected
        checks = [
            ClaimCheck(
                "project_path",
                expected.project_path,
                claims.project_path,
                claims.project_path.lower() == expected.lookup_key,
            ),
            ClaimCheck(
                "ci_config_ref_uri",
                expected.workflow_filepath,
                claims.workflow_filepath,
                claims.workflow_filepath == self.workflow_filepath,
            ),
        ]
        if self.environment is not None:
            checks.append(
                ClaimCheck(
                    "environment",
                    expected.environment,
                    claims.environment,
                    claims.environment == self.environment,
                )
            )
        for claim, pinned, described, received in (
            ("namespace_id", self.namespace_id, expected.namespace_id, claims.namespace_id),
            ("project_id", self.project_id, expected.project_id, claims.project_id),
        ):
            if pinned is not None:
                checks.append(ClaimCheck(claim, described, received, received == pinned))
        for claim, first in self.first_use_pins:
            carried = claims.values.get(claim)
            passed = first is not None and carried == first
            checks.append(ClaimCheck(claim, pinned_on_first_use(first), carried, passed))
        if self.rules:
            checks.extend(check_rules(self.rules, claims.values))
        return tuple(checks)

    @cached_property
    def _expected(self) -> _Expected:
        # What each check expects, in words: the same for every token, so written once,
        # on the first token that reaches this publisher.
        return _Expected(
            lookup_key=self.lookup_key,
            project_path=f"{self.project_path!r} (any case)",
            workflow_filepath=f"CI file {self.workflow_filepath!r}",
            environment=f"{self.environment!r} (exact case)",
            namespace_id=repr(self.namespace_id),
            project_id=repr(self.project_id),
        )


class _Expected(NamedTuple):
    lookup_key: str
    project_path: str
    workflow_filepath: str
    environment: str
    namespace_id: str
    project_id: str


class GitLabProvider:
    name = "gitlab"

    def issuer_config(self, url: str, *, enabled: bool) -> IssuerConfig:
        return IssuerConfig(
            url=url, provider=self.name, max_lifetime=MAX_TOKEN_LIFETIME, enabled=enabled
        )

    def parse_publisher(self, entry: Mapping[str, Any], source: str) -> GitLabPublisher:
        return GitLabPublisher(
            issuer=entry.get("issuer", PUBLIC_GITLAB_ISSUER),
            project_path=entry["project_path"],
            workflow_filepath=entry["workflow_filepath"],
            environment=entry.get("environment"),
            namespace_id=entry.get("namespace_id"),
            project_id=entry.get("project_id"),
            rules=rules_from_policy(entry, CONSTRAINTS),
            projects=frozenset(normalize_project_name(name) for name in entry["projects"]),
            source=source,
        )

    def parse_claims(self, issuer: str, claims: Mapping[str, Any]) -> GitLabClaims:
        log_unknown_claims(self.name, claims, _KNOWN_CLAIMS)
        values, optional = string_claims(claims, REQUIRED_CLAIMS, OPTIONAL_CLAIMS)
        project_path = values["project_path"]
        _require(
            PROJECT_PATH.fullmatch(project_path), "project_path", "group/project", project_path
        )
        for name in ("ref_path", "sha"):
            # Every pipeline runs at a ref and a commit; a token without them was not
            # made by one, and ci_config_ref_uri cannot be checked against them.
            _require(values[name], name, "a non-empty string", values[name])
        workflow_filepath = _ci_file(
            project_path, values["ci_config_ref_uri"], values["ref_path"], values["sha"]
        )
        environment = optional["environment"] or None
        identity = {
            "provider": self.name,
            "issuer": issuer,
            # "repository" and "workflow" are the names revocation scopes use.
            "repository": project_path,
            "namespace": project_path.rpartition("/")[0],
            "project_id": values["project_id"],
            "namespace_id": values["namespace_id"],
            "workflow": workflow_filepath,
            "environment": environment or "",
            "ref": values["ref_path"],
            "sha": values["sha"],
            "pipeline_source": values["pipeline_source"],
            "run_id": values["pipeline_id"],
            "job_id": values["job_id"],
        }
        return GitLabClaims(
            issuer=issuer,
            lookup_key=project_path.lower(),
            identity=identity,
            values={**values, **optional},
            project_path=project_path,
            project_id=values["project_id"],
            namespace_id=values["namespace_id"],
            workflow_filepath=workflow_filepath,
            environment=environment,
        )


def _ci_file(project_path: str, uri: str, ref_path: str, sha: str) -> str:
    """PATH/FILE.yml of `HOST/PROJECT//PATH/FILE.yml@REF`, refusing anything odd.

    PROJECT must be the token's own project (GitLab sends no ci_config_ref_uri when the
    CI configuration lives elsewhere) and REF its ref_path or sha. HOST is the instance's
    own host and is not compared: the issuer already binds the token to its instance.
    """
    expected = f"HOST/{project_path}//<path>.yml@{ref_path}"
    location, separator, rest = uri.partition("//")
    project_suffix = "/" + project_path.lower()
    own_project = (
        separator == "//"
        and location.lower().endswith(project_suffix)
        and len(location) > len(project_suffix)  # a host comes first
        and not any(char.isspace() for char in location)
    )
    _require(own_project, "ci_config_ref_uri", expected, uri)
    file_path = next(
        (rest[: -len(suffix)] for suffix in (f"@{ref_path}", f"@{sha}") if rest.endswith(suffix)),
        "",
    )
    _require(is_ci_file(file_path), "ci_config_ref_uri", expected, uri)
    return file_path


def is_ci_file(path: str) -> bool:
    """Whether `path` is a CI file as GitLab tokens name it: a path in the project."""
    if not _CI_FILE.fullmatch(path) or path.startswith("/"):
        return False
    return all(segment not in ("", ".", "..") for segment in path.split("/"))


def _require(condition: object, claim: str, expected: str, received: str) -> None:
    if not condition:
        raise InvalidPublisher(
            f"token claim {claim!r} is malformed", (ClaimMismatch(claim, expected, received),)
        )
