"""Settings of the providers: issuers per provider, kill switches, and how they are built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.errors import ConfigurationError
from app.oidc.dev_issuer import DEV_ISSUER
from app.publishers.providers import PROVIDERS
from app.settings import (
    GOOGLE_ISSUER,
    PROVIDER_ISSUERS,
    PUBLIC_GITHUB_ISSUER,
    PUBLIC_GITLAB_ISSUER,
    Settings,
    load_settings,
)
from app.wiring import build_trusted_issuers

PRODUCTION = {"TRUSTPUB_AUDIENCE": "pypi.example.com", "TRUSTPUB_SIGNING_KEYS": "/keys"}


def load(**environ: str) -> Settings:
    return load_settings({**PRODUCTION, **environ})


def test_defaults() -> None:
    settings = load()

    assert settings.github_issuers == (PUBLIC_GITHUB_ISSUER,)
    assert settings.gitlab_issuers == (PUBLIC_GITLAB_ISSUER,) == ("https://gitlab.com",)
    assert settings.google_issuers == ()  # Google is opt-in
    assert settings.disabled_providers == frozenset()
    assert settings.provider_issuers == {
        "github": (PUBLIC_GITHUB_ISSUER,),
        "gitlab": (PUBLIC_GITLAB_ISSUER,),
        "google": (),
    }


def test_every_provider_has_an_issuer_setting() -> None:
    assert set(PROVIDER_ISSUERS) == set(PROVIDERS)


@pytest.mark.parametrize(
    ("environ", "field", "expected"),
    [
        (
            {"TRUSTPUB_GITLAB_ISSUERS": "https://gitlab.com, https://gitlab.example.com"},
            "gitlab_issuers",
            ("https://gitlab.com", "https://gitlab.example.com"),
        ),
        (
            {"TRUSTPUB_GITLAB_ISSUERS": "https://git.example.com/gitlab"},
            "gitlab_issuers",
            ("https://git.example.com/gitlab",),
        ),
        ({"TRUSTPUB_GOOGLE_ISSUERS": GOOGLE_ISSUER}, "google_issuers", (GOOGLE_ISSUER,)),
        (
            {"TRUSTPUB_DISABLED_PROVIDERS": "gitlab,google"},
            "disabled_providers",
            {"gitlab", "google"},
        ),
        ({"TRUSTPUB_DISABLED_PROVIDERS": " GitLab , "}, "disabled_providers", {"gitlab"}),
        ({"TRUSTPUB_DISABLED_PROVIDERS": ""}, "disabled_providers", set()),
    ],
    ids=[
        "two-gitlab-instances",
        "gitlab-relative-url",
        "google-on",
        "two-disabled",
        "disabled-any-case",
        "disabled-empty-is-unset",
    ],
)
def test_environment(environ: dict[str, str], field: str, expected: Any) -> None:
    assert getattr(load(**environ), field) == expected


def test_file_values(tmp_path: Path) -> None:
    path = tmp_path / "trustpub.toml"
    path.write_text(
        'audience = "pypi.example.com"\nsigning_keys = "/keys"\n'
        'gitlab_issuers = ["https://gitlab.example.com"]\n'
        'google_issuers = ["https://accounts.google.com"]\n'
        'disabled_providers = ["github"]\n',
        encoding="utf-8",
    )

    settings = load_settings({"TRUSTPUB_CONFIG": str(path)})

    assert settings.gitlab_issuers == ("https://gitlab.example.com",)
    assert settings.google_issuers == (GOOGLE_ISSUER,)
    assert settings.disabled_providers == {"github"}


def test_google_issuers_may_be_an_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "trustpub.toml"
    path.write_text(
        'audience = "a.example"\nsigning_keys = "/k"\ngoogle_issuers = []\n', encoding="utf-8"
    )

    assert load_settings({"TRUSTPUB_CONFIG": str(path)}).google_issuers == ()


@pytest.mark.parametrize(
    ("environ", "fragments"),
    [
        ({"TRUSTPUB_GITLAB_ISSUERS": " , "}, ["gitlab_issuers is empty"]),
        ({"TRUSTPUB_GITLAB_ISSUERS": "http://gitlab.example.com"}, ["gitlab_issuers", "https://"]),
        ({"TRUSTPUB_GITLAB_ISSUERS": "https://gitlab.com/"}, ["gitlab_issuers", "end with '/'"]),
        ({"TRUSTPUB_GOOGLE_ISSUERS": "accounts.google.com"}, ["google_issuers", "https://"]),
        (
            {"TRUSTPUB_DISABLED_PROVIDERS": "gitlab,circleci"},
            ["disabled_providers", "unknown provider(s) circleci", "known: github, gitlab, google"],
        ),
        (
            {"TRUSTPUB_GITLAB_ISSUERS": PUBLIC_GITHUB_ISSUER},
            ["gitlab_issuers", PUBLIC_GITHUB_ISSUER, "already one of github_issuers"],
        ),
        (
            {
                "TRUSTPUB_GOOGLE_ISSUERS": "https://sso.example.com",
                "TRUSTPUB_GITLAB_ISSUERS": "https://sso.example.com",
            },
            ["google_issuers", "already one of gitlab_issuers"],
        ),
    ],
    ids=[
        "gitlab-empty",
        "gitlab-http",
        "gitlab-trailing-slash",
        "google-scheme-less",
        "unknown-disabled-provider",
        "issuer-of-two-providers",
        "custom-issuer-of-two-providers",
    ],
)
def test_invalid(environ: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        load(**environ)

    for fragment in fragments:
        assert fragment in str(excinfo.value)


def test_disabled_providers_of_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "trustpub.toml"
    path.write_text(
        'audience = "a.example"\nsigning_keys = "/k"\ndisabled_providers = 5\n', encoding="utf-8"
    )

    with pytest.raises(ConfigurationError, match="list of provider names"):
        load_settings({"TRUSTPUB_CONFIG": str(path)})


# -- build_trusted_issuers: one config per issuer, from its provider, with its switch ---


def test_issuers_are_built_per_provider_with_their_rules(tmp_path: Path) -> None:
    settings = load(
        TRUSTPUB_GITHUB_ISSUERS=f"{PUBLIC_GITHUB_ISSUER},https://ghe.example.com/_services/token",
        TRUSTPUB_GITLAB_ISSUERS="https://gitlab.com,https://gitlab.example.com",
        TRUSTPUB_GOOGLE_ISSUERS=GOOGLE_ISSUER,
        TRUSTPUB_DISABLED_PROVIDERS="gitlab",
    )

    issuers = build_trusted_issuers(settings)

    assert issuers.urls("github") == {
        PUBLIC_GITHUB_ISSUER,
        "https://ghe.example.com/_services/token",
    }
    assert issuers.urls("gitlab") == {"https://gitlab.com", "https://gitlab.example.com"}
    assert issuers.urls("google") == {GOOGLE_ISSUER}
    for url in issuers.urls():
        entry = issuers.get(url)
        assert entry is not None
        config, _ = entry
        assert config == PROVIDERS[config.provider].issuer_config(
            url, enabled=config.provider != "gitlab"
        )
    # The kill switch covers the self-managed instance too.
    gitlab_example = issuers.get("https://gitlab.example.com")
    assert gitlab_example is not None
    assert gitlab_example[0].enabled is False


@pytest.mark.parametrize(("disabled", "enabled"), [("", True), ("github", False)])
def test_github_kill_switch_covers_the_development_issuer(
    tmp_path: Path, disabled: str, enabled: bool
) -> None:
    environ = {"TRUSTPUB_DEV_DIR": str(tmp_path), "TRUSTPUB_DISABLED_PROVIDERS": disabled}
    settings = load_settings(environ, dev=True)

    entry = build_trusted_issuers(settings).get(DEV_ISSUER)

    assert entry is not None
    assert entry[0].provider == "github"
    assert entry[0].enabled is enabled
