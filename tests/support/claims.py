"""Claim sets shaped like real CI identity tokens (GitHub Actions, gitlab.com, Google Cloud)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, Final


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


# Pass as an override to delete a claim: github_claims(iss, aud, environment=REMOVE).
REMOVE: Final[Any] = _Remove()

# Fixed commit ids keep failures reproducible; only jti and the times vary per call.
GITHUB_SHA = "8d1c1f3c2b7f4a9e0d6b5a4c3e2f1a0b9c8d7e6f"
GITLAB_SHA = "714a629c0b401fdce83e847fc9589983fc6f46bc"

TOKEN_LIFETIME = 300
NBF_SKEW = 5


def github_claims(
    issuer: str, audience: str, *, now: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """A GitHub Actions token for octo-org/demo's release.yml run on tag v1.0.0.

    GitHub sends every custom claim as a string (ids included); only iat/nbf/exp are
    numbers.
    """
    issued = int(time.time()) if now is None else now
    workflow_ref = "octo-org/demo/.github/workflows/release.yml@refs/tags/v1.0.0"
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "sub": "repo:octo-org/demo:environment:pypi",
        "aud": audience,
        "ref": "refs/tags/v1.0.0",
        "sha": GITHUB_SHA,
        "repository": "octo-org/demo",
        "repository_owner": "octo-org",
        "repository_owner_id": "65",
        "repository_visibility": "public",
        "repository_id": "74",
        "run_id": "8105469023",
        "run_number": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "Release",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_type": "tag",
        "ref_protected": "true",
        "environment": "pypi",
        "workflow_ref": workflow_ref,
        "workflow_sha": GITHUB_SHA,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": GITHUB_SHA,
        "iss": issuer,
        "nbf": issued - NBF_SKEW,
        "exp": issued + TOKEN_LIFETIME,
        "iat": issued,
    }
    return _apply(claims, overrides)


def gitlab_claims(
    issuer: str, audience: str, *, now: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """A gitlab.com token for group/sub/project's pipeline on branch main.

    As in real GitLab tokens, custom claims are strings except ``runner_id``, which
    GitLab sends as a number.
    """
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "namespace_id": "4231",
        "namespace_path": "group/sub",
        "project_id": "58112",
        "project_path": "group/sub/project",
        "project_visibility": "public",
        "user_id": "1907",
        "user_login": "gitlab-user",
        "user_email": "gitlab-user@example.com",
        "pipeline_id": "1283475561",
        "pipeline_source": "push",
        "job_id": "6639250871",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "environment": "pypi",
        "environment_protected": "true",
        "deployment_tier": "production",
        "environment_action": "start",
        "runner_id": 12270837,
        "runner_environment": "gitlab-hosted",
        "sha": GITLAB_SHA,
        "ci_config_ref_uri": "gitlab.com/group/sub/project//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": GITLAB_SHA,
        "jti": str(uuid.uuid4()),
        "iss": issuer,
        "iat": issued,
        "nbf": issued - NBF_SKEW,
        "exp": issued + TOKEN_LIFETIME,
        "sub": "project_path:group/sub/project:ref_type:branch:ref:main",
        "aud": audience,
    }
    return _apply(claims, overrides)


GOOGLE_LIFETIME = 3600
GOOGLE_ACCOUNT_ID = "117923427451383423156"
GOOGLE_EMAIL = "pypi-publisher@octo-project.iam.gserviceaccount.com"


def google_claims(
    issuer: str, audience: str, *, now: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """A Google service account ID token, as the metadata server of a Cloud Build or
    Compute Engine job returns it with ``format=full``.

    Unlike CI tokens it has no ``jti`` and no ``nbf``, lives one hour, carries
    ``email_verified`` as a JSON boolean and ``google`` as a nested object.
    """
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "aud": audience,
        "azp": GOOGLE_ACCOUNT_ID,
        "email": GOOGLE_EMAIL,
        "email_verified": True,
        "exp": issued + GOOGLE_LIFETIME,
        "google": {
            "compute_engine": {
                "instance_creation_timestamp": issued - 86_400,
                "instance_id": "4387265723413625001",
                "instance_name": "cloudbuild-worker",
                "project_id": "octo-project",
                "project_number": 836461539218,
                "zone": "europe-west1-b",
            }
        },
        "iat": issued,
        "iss": issuer,
        "sub": GOOGLE_ACCOUNT_ID,
    }
    return _apply(claims, overrides)


def _apply(claims: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is REMOVE:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, signature unchecked (an upload token's `pypi-` prefix
    sits on its first segment, so it needs no stripping)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims
