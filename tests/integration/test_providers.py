"""Every CI that publishes: GitLab instances, GitHub Enterprise, Google service accounts,
provider kill switches and policy constraints, end to end.

Each provider's issuer is a real HTTPS issuer on loopback (`make_oidc_issuer`), the app is
the production `create_app`, and replay records land in the real Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from support.claims import gitlab_claims, google_claims, unverified_claims
from support.oidc_issuer import OIDCIssuer

from app.clocks import CLOCK_SKEW_SECONDS

from .conftest import MakeApp, MakeClaims
from .exchange_api import (
    AUDIENCE,
    AUDIENCE_PATH,
    GITLAB_PROJECT,
    MINT_PATH,
    assert_failure,
    assert_minted,
    gitlab_token,
    mint,
    replay_keys,
    upload_token_projects,
)
from .policies import github_publisher, gitlab_publisher, google_publisher, policy_toml

MakeIssuer = Callable[..., OIDCIssuer]
PROJECT = GITLAB_PROJECT


def google_token(issuer: OIDCIssuer, **overrides: Any) -> str:
    return issuer.sign(google_claims(issuer.url, AUDIENCE, **overrides))


def upload_claims(minted: dict[str, Any]) -> dict[str, Any]:
    return unverified_claims(minted["token"].removeprefix("pypi-"))


# -- GitLab: gitlab.com and self-managed instances --------------------------------------


def test_gitlab_token_mints_and_the_upload_token_names_the_gitlab_publisher(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,)).test_client()

    # The documented GitLab recipe: curl -d, so a form content type around a JSON body.
    body = json.dumps({"token": gitlab_token(gitlab)})
    response = client.post(MINT_PATH, data=body, content_type="application/x-www-form-urlencoded")

    minted = assert_minted(response)
    assert upload_token_projects(minted) == ["gitlab-pkg"]
    publisher = upload_claims(minted)["publisher"]
    assert publisher["provider"] == "gitlab"
    assert publisher["issuer"] == gitlab.url
    assert publisher["repository"] == PROJECT
    assert publisher["workflow"] == ".gitlab-ci.yml"
    assert publisher["ref"] == "refs/heads/main"
    assert upload_claims(minted)["sub"] == f"gitlab:{PROJECT}"
    assert len(replay_keys(store)) == 1


def test_gitlab_token_is_exchanged_once(make_app: MakeApp, make_oidc_issuer: MakeIssuer) -> None:
    gitlab = make_oidc_issuer()
    client = make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,)).test_client()
    token = gitlab_token(gitlab)

    assert_minted(mint(client, token))
    assert_failure(mint(client, token), 422, "invalid-reuse-token")


def test_token_of_one_gitlab_instance_never_matches_a_publisher_of_another(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    first = make_oidc_issuer()
    second = make_oidc_issuer("/gitlab")  # a relative-URL install
    client = make_app(
        [gitlab_publisher(first.url, projects=["first-pkg"])],
        gitlab_issuers=(first.url, second.url),
    ).test_client()

    # Same project path, same claims: the second instance's admin could mint these.
    description = assert_failure(mint(client, gitlab_token(second)), 422, "invalid-publisher")
    assert f"no trusted publisher is registered for {PROJECT!r}" in description
    assert second.requests() > 0  # it verified; the refusal is about the publisher
    assert replay_keys(store) == []
    assert upload_token_projects(assert_minted(mint(client, gitlab_token(first)))) == ["first-pkg"]


def test_each_gitlab_instance_publishes_only_its_own_projects(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer
) -> None:
    first, second = make_oidc_issuer(), make_oidc_issuer()
    client = make_app(
        [
            gitlab_publisher(first.url, projects=["first-pkg"]),
            gitlab_publisher(second.url, projects=["second-pkg"]),
        ],
        gitlab_issuers=(first.url, second.url),
    ).test_client()

    assert upload_token_projects(assert_minted(mint(client, gitlab_token(first)))) == ["first-pkg"]
    assert upload_token_projects(assert_minted(mint(client, gitlab_token(second)))) == [
        "second-pkg"
    ]


@pytest.mark.parametrize(
    ("publisher", "claims", "claim", "fragment"),
    [
        ({"environment": "PyPI"}, {"environment": "pypi"}, "environment", "'PyPI' (exact case)"),
        ({"workflow_filepath": "ci/release.yml"}, {}, "ci_config_ref_uri", "'ci/release.yml'"),
        ({"project_id": "1"}, {}, "project_id", "received '58112'"),
        ({"namespace_id": "1"}, {}, "namespace_id", "received '4231'"),
    ],
    ids=["environment-case", "ci-file", "project-id-pin", "namespace-id-pin"],
)
def test_gitlab_mismatch_names_claim_expected_received(
    make_app: MakeApp,
    make_oidc_issuer: MakeIssuer,
    publisher: dict[str, Any],
    claims: dict[str, Any],
    claim: str,
    fragment: str,
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app(
        [gitlab_publisher(gitlab.url, **publisher)], gitlab_issuers=(gitlab.url,)
    ).test_client()

    description = assert_failure(
        mint(client, gitlab_token(gitlab, **claims)), 422, "invalid-publisher"
    )

    assert f"claim {claim!r}" in description
    assert fragment in description


def test_gitlab_project_path_is_case_insensitive(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app(
        [gitlab_publisher(gitlab.url, project_path="Group/Sub/Project")],
        gitlab_issuers=(gitlab.url,),
    ).test_client()

    assert_minted(mint(client, gitlab_token(gitlab)))


@pytest.mark.parametrize(
    ("refs", "ref_path", "minted"),
    [
        (["refs/tags/v*"], "refs/tags/v1.2.0", True),
        (["refs/tags/v*"], "refs/tags/v1.2.0-rc.1", True),
        (["refs/tags/v*"], "refs/heads/main", False),
        (["refs/tags/v?.?.?"], "refs/tags/v1.2.0", True),
        (["refs/tags/v?.?.?"], "refs/tags/v1.2.0-rc.1", False),
        (["refs/tags/v1.2.0"], "refs/tags/v1.2.0-rc.1", False),
    ],
    ids=[
        "tag",
        "pattern-takes-rc",
        "branch-refused",
        "final-release",
        "rc-refused",
        "exact-refuses-rc",
    ],
)
def test_gitlab_tag_only_publishing(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, refs: list[str], ref_path: str, minted: bool
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app(
        [gitlab_publisher(gitlab.url, refs=refs, ref_protected=True, pipeline_sources=["push"])],
        gitlab_issuers=(gitlab.url,),
    ).test_client()

    response = mint(client, gitlab_token(gitlab, ref_path, ref_type="tag"))

    if minted:
        assert_minted(response)
    else:
        description = assert_failure(response, 422, "invalid-publisher")
        assert f"claim 'ref_path': expected matching {refs[0]!r}" in description or (
            f"claim 'ref_path': expected {refs[0]!r}" in description
        )
        assert f"received {ref_path!r}" in description


@pytest.mark.parametrize(
    ("lifetime", "accepted"), [(3600, True), (6 * 3600, True), (6 * 3600 + 1, False)]
)
def test_gitlab_tokens_may_live_as_long_as_a_job_timeout(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, lifetime: int, accepted: bool
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app([gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,)).test_client()
    claims = gitlab_claims(gitlab.url, AUDIENCE)
    claims["exp"] = claims["iat"] + lifetime
    claims["ci_config_ref_uri"] = f"gitlab/{PROJECT}//.gitlab-ci.yml@refs/heads/main"

    response = mint(client, gitlab.sign(claims))

    if accepted:
        assert_minted(response)
    else:
        assert "lifetime" in assert_failure(response, 422, "invalid-token")


# -- GitHub Enterprise: enterprise-slug and Enterprise Server issuers -----------------


@pytest.mark.parametrize("path", ["/my-enterprise", "/_services/token"], ids=["slug", "ghes"])
def test_enterprise_and_github_com_publishers_never_cross(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: MakeIssuer,
    make_claims: MakeClaims,
    store: redis.Redis,
    path: str,
) -> None:
    enterprise = make_oidc_issuer(path)
    client = make_app(
        [
            github_publisher(oidc_issuer.url, projects=["public-pkg"]),
            github_publisher(enterprise.url, projects=["enterprise-pkg"]),
        ],
        issuers=[oidc_issuer.url, enterprise.url],
    ).test_client()

    from_enterprise = assert_minted(mint(client, enterprise.sign(make_claims(iss=enterprise.url))))
    from_public = assert_minted(mint(client, oidc_issuer.sign(make_claims())))

    assert upload_token_projects(from_enterprise) == ["enterprise-pkg"]
    assert upload_token_projects(from_public) == ["public-pkg"]
    assert upload_claims(from_enterprise)["publisher"]["issuer"] == enterprise.url
    assert len(replay_keys(store)) == 2


@pytest.mark.parametrize("path", ["/my-enterprise", "/_services/token"], ids=["slug", "ghes"])
def test_enterprise_token_never_matches_a_github_com_publisher_and_the_reverse(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: MakeIssuer,
    make_claims: MakeClaims,
    path: str,
) -> None:
    enterprise = make_oidc_issuer(path)
    public_only = make_app(
        [github_publisher(oidc_issuer.url)], issuers=[oidc_issuer.url, enterprise.url]
    ).test_client()
    enterprise_only = make_app(
        [github_publisher(enterprise.url)], issuers=[oidc_issuer.url, enterprise.url]
    ).test_client()

    assert_failure(
        mint(public_only, enterprise.sign(make_claims(iss=enterprise.url))),
        422,
        "invalid-publisher",
    )
    assert_failure(mint(enterprise_only, oidc_issuer.sign(make_claims())), 422, "invalid-publisher")


# -- GitHub policy constraints end to end -------------------------------------------------


SHARED = "octo-org/shared/.github/workflows/publish.yml"


@pytest.mark.parametrize(
    ("job_workflow_ref", "minted"),
    [
        (f"{SHARED}@refs/tags/v2.0.0", True),
        (f"{SHARED}@refs/heads/main", False),
        ("evil-org/shared/.github/workflows/publish.yml@refs/tags/v2.0.0", False),
        ("octo-org/demo/.github/workflows/release.yml@refs/tags/v1.0.0", False),
    ],
    ids=["pinned-shared-workflow", "shared-at-branch", "other-owner", "no-reusable-workflow"],
)
def test_reusable_workflow_of_another_repository(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_claims: MakeClaims,
    job_workflow_ref: str,
    minted: bool,
) -> None:
    client = make_app(
        [github_publisher(oidc_issuer.url, job_workflow_ref=f"{SHARED}@refs/tags/v*")]
    ).test_client()

    response = mint(client, oidc_issuer.sign(make_claims(job_workflow_ref=job_workflow_ref)))

    if minted:
        body = assert_minted(response)
        assert upload_claims(body)["publisher"]["job_workflow_ref"] == job_workflow_ref
        assert upload_claims(body)["publisher"]["workflow"] == "release.yml"
    else:
        description = assert_failure(response, 422, "invalid-publisher")
        assert "claim 'job_workflow_ref'" in description
        assert repr(job_workflow_ref) in description


BRANCH_RUN = {
    "ref": "refs/heads/main",
    "workflow_ref": "octo-org/demo/.github/workflows/release.yml@refs/heads/main",
}


@pytest.mark.parametrize(
    ("claims", "failing"),
    [
        ({}, None),
        (BRANCH_RUN, "ref"),
        ({"ref_protected": "false"}, "ref_protected"),
        ({"event_name": "workflow_dispatch"}, "event_name"),
        ({"runner_environment": "self-hosted"}, "runner_environment"),
    ],
    ids=["tag-push-on-hosted-runner", "branch", "unprotected", "manual-run", "self-hosted"],
)
def test_github_run_constraints(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_claims: MakeClaims,
    claims: dict[str, Any],
    failing: str | None,
) -> None:
    client = make_app(
        [
            github_publisher(
                oidc_issuer.url,
                refs=["refs/tags/v*"],
                ref_protected=True,
                event_names=["push", "release"],
                runner_environment="github-hosted",
            )
        ]
    ).test_client()

    response = mint(client, oidc_issuer.sign(make_claims(**claims)))

    if failing is None:
        assert_minted(response)
    else:
        description = assert_failure(response, 422, "invalid-publisher")
        assert f"claim {failing!r}" in description
        assert f"received {claims[failing]!r}" in description


# -- Google service accounts: no jti, an hour's lifetime, exchanged once ---------------


def test_google_token_without_jti_mints_once(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    google = make_oidc_issuer()
    client = make_app([google_publisher(google.url)], google_issuers=(google.url,)).test_client()
    token = google_token(google)
    assert "jti" not in unverified_claims(token)

    minted = assert_minted(mint(client, token))

    assert upload_token_projects(minted) == ["google-pkg"]
    publisher = upload_claims(minted)["publisher"]
    assert publisher["provider"] == "google"
    assert publisher["email"] == "pypi-publisher@octo-project.iam.gserviceaccount.com"
    (key,) = replay_keys(store)
    # The record lives until the token would be refused as expired anyway.
    assert 3600 < store.ttl(key) <= 3600 + 60 + CLOCK_SKEW_SECONDS + 1
    assert_failure(mint(client, token), 422, "invalid-reuse-token")
    assert len(replay_keys(store)) == 1


def test_two_google_tokens_are_two_exchanges(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    google = make_oidc_issuer()
    client = make_app([google_publisher(google.url)], google_issuers=(google.url,)).test_client()

    assert_minted(mint(client, google_token(google)))
    assert_minted(mint(client, google_token(google, azp="another-request")))
    assert len(replay_keys(store)) == 2


def test_google_token_older_than_the_age_window_is_refused(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, store: redis.Redis
) -> None:
    google = make_oidc_issuer()
    client = make_app([google_publisher(google.url)], google_issuers=(google.url,)).test_client()
    stale = google_token(google, now=int(time.time()) - 600)

    assert "too old" in assert_failure(mint(client, stale), 422, "invalid-token")
    assert replay_keys(store) == []


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"email_verified": "true"}, "email_verified"),
        ({"email_verified": False}, "email_verified"),
        (
            {"email": "other@octo-project.iam.gserviceaccount.com"},
            "no trusted publisher is registered",
        ),
        ({"sub": "1"}, "claim 'sub'"),
    ],
    ids=["verified-as-string", "unverified", "other-account", "re-created-account"],
)
def test_google_refusals(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer, claims: dict[str, Any], fragment: str
) -> None:
    google = make_oidc_issuer()
    client = make_app(
        [google_publisher(google.url, sub="117923427451383423156")], google_issuers=(google.url,)
    ).test_client()

    assert fragment in assert_failure(
        mint(client, google_token(google, **claims)), 422, "invalid-publisher"
    )


def test_google_is_off_unless_configured(client: FlaskClient, make_oidc_issuer: MakeIssuer) -> None:
    google = make_oidc_issuer()

    assert_failure(mint(client, google_token(google)), 422, "invalid-payload")
    assert google.requests() == 0


# -- kill switches -------------------------------------------------------------------------


def test_disabled_provider_refuses_its_custom_issuers_without_fetching_keys(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: MakeIssuer,
    make_claims: MakeClaims,
    store: redis.Redis,
) -> None:
    gitlab = make_oidc_issuer()
    google = make_oidc_issuer()
    client = make_app(
        [
            github_publisher(oidc_issuer.url),
            gitlab_publisher(gitlab.url),  # policies of a switched-off provider still load
            google_publisher(google.url),
        ],
        gitlab_issuers=(gitlab.url,),
        google_issuers=(google.url,),
        disabled_providers=frozenset({"gitlab", "google"}),
    ).test_client()

    for token, provider in ((gitlab_token(gitlab), "gitlab"), (google_token(google), "google")):
        description = assert_failure(mint(client, token), 422, "not-enabled")
        assert provider in description
    assert gitlab.requests() == 0
    assert google.requests() == 0
    assert replay_keys(store) == []
    assert_minted(mint(client, oidc_issuer.sign(make_claims())))


def test_github_kill_switch_covers_enterprise_issuers(
    make_app: MakeApp,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: MakeIssuer,
    make_claims: MakeClaims,
) -> None:
    enterprise = make_oidc_issuer("/_services/token")
    gitlab = make_oidc_issuer()
    client = make_app(
        [github_publisher(enterprise.url), gitlab_publisher(gitlab.url)],
        issuers=[oidc_issuer.url, enterprise.url],
        gitlab_issuers=(gitlab.url,),
        disabled_providers=frozenset({"github"}),
    ).test_client()

    for issuer in (oidc_issuer, enterprise):
        assert_failure(mint(client, issuer.sign(make_claims(iss=issuer.url))), 422, "not-enabled")
    assert_minted(mint(client, gitlab_token(gitlab)))
    # The audience endpoint still answers: another provider publishes.
    assert client.get(AUDIENCE_PATH).status_code == 200


def test_global_switch_turns_every_provider_off(
    make_app: MakeApp, make_oidc_issuer: MakeIssuer
) -> None:
    gitlab = make_oidc_issuer()
    client = make_app(
        [gitlab_publisher(gitlab.url)], gitlab_issuers=(gitlab.url,), enabled=False
    ).test_client()

    response = client.get(AUDIENCE_PATH)
    assert response.status_code == 403
    assert response.get_json() == {"message": "Trusted publishing is disabled on this index"}
    assert_failure(mint(client, gitlab_token(gitlab)), 422, "not-enabled")
    assert gitlab.requests() == 0


# -- trustpub check-policies with every provider -------------------------------------------


TRUSTPUB = Path(sys.executable).with_name("trustpub")
CLI_ENV = {
    "TRUSTPUB_GITHUB_ISSUERS": "https://token.actions.githubusercontent.com",
    "TRUSTPUB_GITLAB_ISSUERS": "https://gitlab.com,https://gitlab.example.com",
    "TRUSTPUB_GOOGLE_ISSUERS": "https://accounts.google.com",
}


def _check(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTPUB_")}
    environ.update(env)
    return subprocess.run(
        [str(TRUSTPUB), "check-policies", str(directory)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_policies_reports_every_providers_errors_with_file_and_key(tmp_path: Path) -> None:
    gitlab_file = tmp_path / "gitlab.toml"
    gitlab_file.write_text(
        policy_toml(
            [
                gitlab_publisher("https://gitlab.com", workflow_filepath="../ci.yml"),
                gitlab_publisher("https://gitlab.other.example", projects=["other"]),
            ]
        )
    )
    google_file = tmp_path / "google.toml"
    google_file.write_text(
        policy_toml([google_publisher("https://accounts.google.com", email="PyPI@x.example")])
    )
    github_file = tmp_path / "github.toml"
    github_file.write_text(
        policy_toml([github_publisher("https://token.actions.githubusercontent.com", refs=["v*"])])
    )

    result = _check(tmp_path, **CLI_ENV)

    assert result.returncode == 1, result
    assert f"{github_file}: publisher[0].refs[0]: 'v*' does not match '^refs/'" in result.stderr
    assert f"{gitlab_file}: publisher[0].workflow_filepath:" in result.stderr
    assert f"{google_file}: publisher[0].email:" in result.stderr
    assert "OK" not in result.stdout


def test_check_policies_names_the_setting_of_an_unknown_instance(tmp_path: Path) -> None:
    path = tmp_path / "gitlab.toml"
    path.write_text(policy_toml([gitlab_publisher("https://gitlab.other.example")]))

    result = _check(tmp_path, **CLI_ENV)

    assert result.returncode == 1, result
    assert (
        f"{path}: publisher[0].issuer: 'https://gitlab.other.example' is not a configured "
        "gitlab issuer (see TRUSTPUB_GITLAB_ISSUERS)"
    ) in result.stderr


def test_check_policies_accepts_every_provider_even_when_switched_off(tmp_path: Path) -> None:
    (tmp_path / "all.toml").write_text(
        policy_toml(
            [
                github_publisher(
                    "https://token.actions.githubusercontent.com", refs=["refs/tags/v*"]
                ),
                gitlab_publisher("https://gitlab.example.com", refs=["refs/tags/v*"]),
                google_publisher("https://accounts.google.com"),
            ]
        )
    )

    result = _check(tmp_path, **CLI_ENV, TRUSTPUB_DISABLED_PROVIDERS="gitlab,google")

    assert result.returncode == 0, result
    assert f"{tmp_path}: 3 publisher(s) OK" in result.stdout
