"""A claim no provider model lists is logged once per process, never refused."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from support.claims import github_claims, gitlab_claims, google_claims

from app.publishers.providers import PROVIDERS
from app.settings import GOOGLE_ISSUER, PUBLIC_GITHUB_ISSUER, PUBLIC_GITLAB_ISSUER

AUDIENCE = "trustpub.example"
CLAIMS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "github": (PUBLIC_GITHUB_ISSUER, github_claims),
    "gitlab": (PUBLIC_GITLAB_ISSUER, gitlab_claims),
    "google": (GOOGLE_ISSUER, google_claims),
}


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # What this process logged so far (and its bound) belongs to the tests before.
    monkeypatch.setattr("app.publishers.model._UNKNOWN_LOGGED", set())


def _parse(provider: str, **extra: Any) -> None:
    issuer, make = CLAIMS[provider]
    PROVIDERS[provider].parse_claims(issuer, {**make(issuer, AUDIENCE), **extra})


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]


@pytest.mark.parametrize("provider", sorted(CLAIMS))
def test_an_unknown_claim_is_logged_once_and_the_token_still_parses(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.publishers.model")
    name = "new_claim"

    _parse(provider)  # a token of today's shape: nothing to say
    _parse(provider, **{name: "x"})
    _parse(provider, **{name: "x"})

    assert _logged(caplog) == [
        f"{provider} tokens carry claims trustpub does not know (ignored): [{name!r}]"
    ]


def test_github_repository_properties_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.publishers.model")

    _parse("github", repo_property_team="release", check_run_id="1", workflow="Release")

    assert _logged(caplog) == []


def test_a_process_logs_a_bounded_number_of_claim_names(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.publishers.model")

    for index in range(150):
        _parse("github", **{f"new_{index}": "x"})

    assert len(_logged(caplog)) == 100


def test_one_token_with_many_unknown_claims_logs_no_more_than_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The bound holds the log (and the set) to 100 names, however they arrive: a token
    # of a self-managed issuer may carry thousands of claims, in one line otherwise.
    caplog.set_level(logging.INFO, logger="app.publishers.model")

    _parse("gitlab", **{f"new_{index:04d}": "x" for index in range(5000)})
    _parse("gitlab", extra_one="x")

    names = [name for line in _logged(caplog) for name in line.split(": ", 1)[1].split(", ")]
    assert len(names) == 100
