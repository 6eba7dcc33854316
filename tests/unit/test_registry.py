"""`PublisherRegistry.match`: exact lookup per issuer, closest mismatches, most specific wins."""

from __future__ import annotations

from typing import Any

import pytest
from support.claims import github_claims

from app.errors import ClaimMismatch, InvalidPublisher
from app.publishers.github import GitHubClaims, GitHubProvider, GitHubPublisher
from app.publishers.registry import PublisherRegistry, choose
from app.settings import PUBLIC_GITHUB_ISSUER

PUBLIC = PUBLIC_GITHUB_ISSUER
ENTERPRISE = "https://token.actions.githubusercontent.com/acme"
GHES = "https://git.acme.example/_services/token"
AUDIENCE = "pypi.example.com"
NOW = 1_700_000_000


def claims(issuer: str = PUBLIC, **overrides: Any) -> GitHubClaims:
    return GitHubProvider().parse_claims(
        issuer, github_claims(issuer, AUDIENCE, now=NOW, **overrides)
    )


def publisher(name: str, **changes: Any) -> GitHubPublisher:
    fields: dict[str, Any] = {
        "issuer": PUBLIC,
        "repository": "octo-org/demo",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": frozenset({name}),
        "source": f"policies/{name}.toml: publisher[0]",
    }
    fields.update(changes)
    return GitHubPublisher(**fields)


@pytest.mark.parametrize(
    "registered",
    [
        [],
        [publisher("other", repository="octo-org/other")],
        [publisher("fork", repository="evil-org/demo")],
        [publisher("prefix", repository="octo-org/dem")],
    ],
    ids=["empty", "other-repository", "same-name-other-owner", "name-prefix"],
)
def test_no_candidate(registered: list[GitHubPublisher]) -> None:
    with pytest.raises(InvalidPublisher) as excinfo:
        PublisherRegistry(registered).match(claims())

    error = excinfo.value
    assert error.code == "invalid-publisher"
    assert error.mismatches == ()
    assert "no trusted publisher is registered for 'octo-org/demo'" in error.description
    # Nothing about other repositories' publishers leaks into the answer.
    for other in registered:
        assert next(iter(other.projects)) not in error.description


def test_closest_publisher_mismatches_are_reported() -> None:
    far = publisher("far", repository_owner_id="999", workflow="ci.yml", environment="prod")
    close = publisher("close", environment="production")
    registry = PublisherRegistry([far, close])

    with pytest.raises(
        InvalidPublisher, match="no trusted publisher matches this token"
    ) as excinfo:
        registry.match(claims(environment="pypi"))

    assert excinfo.value.mismatches == (
        ClaimMismatch("environment", "'production' (any case)", "pypi"),
    )
    assert "claim 'environment': expected 'production' (any case), received 'pypi'" in (
        excinfo.value.description
    )


@pytest.mark.parametrize(
    ("registered", "token", "winners", "projects"),
    [
        # Environment publisher beats the environment-less one when both match ...
        (
            [publisher("plain"), publisher("env", environment="pypi")],
            {"environment": "pypi"},
            ["env"],
            {"env"},
        ),
        # ... order of registration does not matter ...
        (
            [publisher("env", environment="pypi"), publisher("plain")],
            {"environment": "pypi"},
            ["env"],
            {"env"},
        ),
        # ... and the environment-less one still serves other environments.
        (
            [publisher("plain"), publisher("env", environment="pypi")],
            {"environment": "staging"},
            ["plain"],
            {"plain"},
        ),
        (
            [publisher("plain"), publisher("env", environment="pypi")],
            {"environment": None},
            ["plain"],
            {"plain"},
        ),
        # Two constraints beat one.
        (
            [
                publisher("env", environment="pypi"),
                publisher("pinned", environment="pypi", repository_id="74"),
            ],
            {},
            ["pinned"],
            {"pinned"},
        ),
        # Equal specificity: every winner counts and their projects are united.
        (
            [publisher("a"), publisher("b")],
            {},
            ["a", "b"],
            {"a", "b"},
        ),
        (
            [publisher("env", environment="pypi"), publisher("pin", repository_id="74")],
            {},
            ["env", "pin"],
            {"env", "pin"},
        ),
        # A non-matching more specific publisher does not hide a matching one.
        (
            [publisher("plain"), publisher("pinned", repository_id="1")],
            {},
            ["plain"],
            {"plain"},
        ),
    ],
    ids=[
        "environment-wins",
        "environment-wins-any-order",
        "other-environment-falls-back",
        "no-environment-falls-back",
        "two-constraints-win",
        "equal-unions-projects",
        "equal-different-constraints",
        "mismatching-specific-ignored",
    ],
)
def test_most_specific_match_wins(
    registered: list[GitHubPublisher],
    token: dict[str, Any],
    winners: list[str],
    projects: set[str],
) -> None:
    match = PublisherRegistry(registered).match(claims(**token))

    assert sorted(next(iter(p.projects)) for p in match.publishers) == winners
    assert match.projects == projects


# Each publisher's authority (who declared it) is the first letter of its project.
@pytest.mark.parametrize(
    ("registered", "winners"),
    [
        # One authority: its more specific publisher narrows what it grants.
        ([publisher("a1"), publisher("a2", environment="pypi")], ["a2"]),
        # Another authority's more specific publisher takes nothing away.
        ([publisher("a1"), publisher("b1", environment="pypi")], ["a1", "b1"]),
        (
            [
                publisher("a1"),
                publisher("a2", environment="pypi"),
                publisher("b1", environment="pypi", repository_id="74"),
            ],
            ["a2", "b1"],
        ),
    ],
    ids=["same-authority-narrows", "other-authority-adds", "each-its-own-most-specific"],
)
def test_specificity_decides_within_one_authority(
    registered: list[GitHubPublisher], winners: list[str]
) -> None:
    reports = PublisherRegistry(registered).explain(claims(environment="pypi"))

    match = choose(claims(), reports, authority=lambda p: next(iter(p.projects))[0])

    assert sorted(next(iter(p.projects)) for p in match.publishers) == winners
    assert match.projects == set(winners)


def test_projects_of_one_publisher_are_all_granted() -> None:
    registered = publisher("x", projects=frozenset({"demo-pkg", "demo-pkg-extras"}))

    assert PublisherRegistry([registered]).match(claims()).projects == {
        "demo-pkg",
        "demo-pkg-extras",
    }


@pytest.mark.parametrize(
    ("publisher_issuer", "token_issuer"),
    [
        (PUBLIC, ENTERPRISE),
        (ENTERPRISE, PUBLIC),
        (PUBLIC, GHES),
        (GHES, PUBLIC),
        (ENTERPRISE, "https://token.actions.githubusercontent.com/acme2"),
    ],
    ids=[
        "public-vs-enterprise",
        "enterprise-vs-public",
        "public-vs-ghes",
        "ghes-vs-public",
        "enterprise-vs-other-enterprise",
    ],
)
def test_publishers_never_match_another_issuers_tokens(
    publisher_issuer: str, token_issuer: str
) -> None:
    registry = PublisherRegistry([publisher("demo-pkg", issuer=publisher_issuer)])

    with pytest.raises(InvalidPublisher, match="with this token's issuer") as excinfo:
        registry.match(claims(issuer=token_issuer))

    assert excinfo.value.mismatches == ()


def test_same_repository_at_two_issuers_stays_separate() -> None:
    registry = PublisherRegistry(
        [publisher("public-pkg", issuer=PUBLIC), publisher("ghes-pkg", issuer=GHES)]
    )

    assert registry.match(claims(issuer=PUBLIC)).projects == {"public-pkg"}
    assert registry.match(claims(issuer=GHES)).projects == {"ghes-pkg"}
    assert len(registry) == 2


@pytest.mark.parametrize(
    ("registered_repository", "token_repository"),
    [("octo-org/demo", "Octo-Org/Demo"), ("OCTO-ORG/DEMO", "octo-org/demo")],
    ids=["token-mixed-case", "publisher-upper-case"],
)
def test_lookup_ignores_repository_case(registered_repository: str, token_repository: str) -> None:
    registry = PublisherRegistry([publisher("demo-pkg", repository=registered_repository)])
    token = claims(
        repository=token_repository,
        workflow_ref=f"{token_repository}/.github/workflows/release.yml@refs/heads/main",
    )

    assert registry.match(token).projects == {"demo-pkg"}


@pytest.mark.parametrize(
    ("registered", "expected"),
    [([], 0), ([publisher("a")], 1), ([publisher("a"), publisher("b", issuer=GHES)], 2)],
    ids=["empty", "one", "two-issuers"],
)
def test_len_counts_publishers(registered: list[GitHubPublisher], expected: int) -> None:
    assert len(PublisherRegistry(registered)) == expected


# -- explain: the per-publisher checks that match() decides on ------------------------


def test_explain_reports_every_check_of_every_publisher_of_the_callers_repository() -> None:
    close = publisher("close", environment="production")
    exact = publisher("exact", environment="pypi")
    other_repository = publisher("other", repository="octo-org/other")
    other_issuer = publisher("ghes", issuer=GHES)
    registry = PublisherRegistry([close, other_repository, exact, other_issuer])

    reports = registry.explain(claims(environment="pypi"))

    assert [report.publisher for report in reports] == [close, exact]
    assert [report.matches for report in reports] == [False, True]
    assert [(c.claim, c.ok) for c in reports[0].checks] == [
        ("repository", True),
        ("repository_owner_id", True),
        ("workflow_ref", True),
        ("environment", False),
    ]
    assert all(check.ok for check in reports[1].checks)


def test_explain_of_an_unregistered_repository_is_empty() -> None:
    registry = PublisherRegistry([publisher("other", repository="octo-org/other")])

    assert registry.explain(claims()) == ()


@pytest.mark.parametrize(
    "registered",
    [
        [publisher("a")],
        [publisher("a", environment="prod"), publisher("b", repository_owner_id="1")],
        [publisher("a", environment="pypi"), publisher("b")],
        [],
    ],
    ids=["one-match", "no-match", "specific-wins", "none-registered"],
)
def test_match_is_the_decision_on_explains_reports(registered: list[GitHubPublisher]) -> None:
    registry = PublisherRegistry(registered)
    token = claims(environment="pypi")
    reports = registry.explain(token)

    if not any(report.matches for report in reports):
        closest = min(reports, key=lambda r: sum(not c.ok for c in r.checks), default=None)
        expected = (
            ()
            if closest is None
            else tuple(check.mismatch for check in closest.checks if not check.ok)
        )
        with pytest.raises(InvalidPublisher) as excinfo:
            registry.match(token)
        assert excinfo.value.mismatches == expected
        return
    match = registry.match(token)
    matching = [report.publisher for report in reports if report.matches]
    assert set(match.publishers) <= set(matching)
    for report in reports:
        assert report.matches is (report.publisher.mismatches(token) == ())
