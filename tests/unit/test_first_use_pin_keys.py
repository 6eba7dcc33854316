"""Where first-use pins are kept, and what a pin refuses, without a store behind HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from support.claims import gitlab_claims

from app.errors import InvalidPublisher
from app.publishers.gitlab import GitLabClaims, GitLabProvider, GitLabPublisher
from app.publishers.providers import PROVIDERS
from app.registrations import LivePublishers, file_pin_key
from app.settings import PUBLIC_GITLAB_ISSUER
from app.stores.memory import MemoryStore

NOW = 1_700_000_000
SELF_MANAGED = "https://gitlab.example.com"
TRUSTED = {"gitlab": frozenset({PUBLIC_GITLAB_ISSUER, SELF_MANAGED})}
PROVIDER = GitLabProvider()


def publisher(index: int = 0, **changes: Any) -> GitLabPublisher:
    entry: dict[str, Any] = {
        "provider": "gitlab",
        "issuer": PUBLIC_GITLAB_ISSUER,
        "project_path": "group/sub/project",
        "workflow_filepath": ".gitlab-ci.yml",
        "projects": ["gitlab-pkg"],
        **changes,
    }
    return PROVIDER.parse_publisher(entry, f"policies/gitlab.toml: publisher[{index}]")


def claims(**overrides: Any) -> GitLabClaims:
    token = gitlab_claims(PUBLIC_GITLAB_ISSUER, "pypi", now=NOW, **overrides)
    return PROVIDER.parse_claims(PUBLIC_GITLAB_ISSUER, token)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ({"workflow_filepath": "ci/release.yml", "projects": ["other-pkg"]}, True),
        ({"environment": "pypi", "refs": ["refs/tags/v*"]}, True),
        ({"project_path": "Group/Sub/Project"}, True),  # GitLab paths ignore case
        ({"project_path": "group/sub/other"}, False),
        ({"issuer": SELF_MANAGED}, False),
    ],
    ids=["workflow-and-projects", "constraints", "path-case", "other-path", "other-issuer"],
)
def test_file_publishers_of_one_repository_and_issuer_share_their_pins(
    other: dict[str, Any], same: bool
) -> None:
    # The IDs belong to the repository: editing a file publisher's constraints must not
    # let a new first token pin other ones.
    assert (file_pin_key(publisher()) == file_pin_key(publisher(1, **other))) is same


def test_every_file_publisher_of_a_repository_follows_its_first_pin() -> None:
    store = MemoryStore(clock=lambda: NOW)
    files = (publisher(0), publisher(1, projects=["other-pkg"]))
    live = LivePublishers(files, store, PROVIDERS, TRUSTED, clock=lambda: NOW)
    match = live.match(claims())
    first, key = match.first_use[0]

    assert [key for _, key in match.first_use] == [key, key]
    assert live.pin_on_first_use(first, key, claims()) is True
    live.refresh()

    assert live.match(claims()).first_use == ()
    with pytest.raises(InvalidPublisher) as refused:
        live.match(claims(project_id="7"))
    assert [m.claim for m in refused.value.mismatches] == ["project_id"]


def test_a_token_without_a_claim_its_publisher_pins_is_refused() -> None:
    # Every provider that pins requires the claims it pins; should one not, the token
    # is refused rather than pinned to nothing.
    store = MemoryStore(clock=lambda: NOW)
    live = LivePublishers((publisher(),), store, PROVIDERS, TRUSTED, clock=lambda: NOW)
    (found, key), *_ = live.match(claims()).first_use
    lacking = claims()
    values = {name: value for name, value in lacking.values.items() if name != "project_id"}
    lacking = GitLabClaims(lacking.issuer, lacking.lookup_key, lacking.identity, values)

    with pytest.raises(InvalidPublisher) as refused:
        live.pin_on_first_use(found, key, lacking)

    assert [(m.claim, m.received) for m in refused.value.mismatches] == [("project_id", None)]
    assert store.load_registrations().pins == {}
