"""What `trustpub publishers add` registers and how `publishers list` prints it, in
process (the commands' round trips to a service are in test_publishers_cli.py)."""

from __future__ import annotations

from typing import Any

import click
import pytest

from app.cli import listing_line, publisher_entry


@pytest.mark.parametrize(
    ("provider", "options", "entry"),
    [
        (
            "github",
            {"repository": "o/r", "workflow": "release.yml", "owner_id": "65", "project_id": None},
            {"provider": "github", "repository": "o/r", "workflow": "release.yml",
             "repository_owner_id": "65"},
        ),
        (
            "gitlab",
            {"repository": "g/p", "workflow": "ci/release.yml", "namespace_id": "7",
             "project_id": "9", "environment": "pypi"},
            {"provider": "gitlab", "project_path": "g/p", "workflow_filepath": "ci/release.yml",
             "namespace_id": "7", "project_id": "9", "environment": "pypi"},
        ),
        (
            "google",
            {"email": "sa@p.iam.gserviceaccount.com", "subject": "1234", "issuer": None},
            {"provider": "google", "email": "sa@p.iam.gserviceaccount.com", "sub": "1234"},
        ),
    ],
)  # fmt: skip
def test_each_option_fills_its_providers_policy_key(
    provider: str, options: dict[str, str | None], entry: dict[str, str]
) -> None:
    assert publisher_entry(provider, options) == entry


@pytest.mark.parametrize(
    ("provider", "options", "message"),
    [
        # Dropped in silence, these would leave a publisher unpinned that its maintainer
        # believes pinned.
        ("gitlab", {"repository": "g/p", "workflow": "a.yml", "owner_id": "65"},
         "gitlab takes no --owner-id"),
        ("github", {"repository": "o/r", "workflow": "a.yml", "namespace_id": "7",
                    "project_id": "9"},
         "github takes no --namespace-id, --project-id"),
        ("google", {"email": "sa@p.iam.gserviceaccount.com", "environment": "pypi"},
         "google takes no --environment"),
        ("github", {"repository": "o/r"}, "github needs --workflow"),
        ("gitlab", {}, "gitlab needs --repository, --workflow"),
        ("google", {"subject": "1"}, "google needs --email"),
    ],
)  # fmt: skip
def test_missing_options_and_another_providers_are_refused(
    provider: str, options: dict[str, str | None], message: str
) -> None:
    with pytest.raises(click.UsageError) as refused:
        publisher_entry(provider, options)

    assert refused.value.message == message


def _item(**fields: Any) -> dict[str, Any]:
    return {"id": "rp_1", "pending": False, "source": "registered", **fields}


@pytest.mark.parametrize(
    ("item", "line"),
    [
        (
            _item(
                publisher={"provider": "gitlab", "project_path": "g/p",
                           "workflow_filepath": ".gitlab-ci.yml"},
                pinned_on_first_use={"namespace_id": "7", "project_id": "9"},
            ),
            "rp_1\tregistered\tgitlab\tg/p\t.gitlab-ci.yml\tnamespace_id=7,project_id=9",
        ),
        (
            _item(
                pending=True,
                publisher={"provider": "github", "repository": "o/r", "workflow": "r.yml"},
                pinned_on_first_use=None,
            ),
            "rp_1\tpending\tgithub\to/r\tr.yml\t",
        ),
        (
            _item(publisher={"provider": "google", "email": "sa@p.iam.gserviceaccount.com"}),
            "rp_1\tregistered\tgoogle\tsa@p.iam.gserviceaccount.com\t\t",
        ),
        (
            # Its issuer is no longer configured: matched by nothing, shown as such.
            _item(
                ignored="invalid publisher: issuer: ...",
                publisher={"provider": "github", "repository": "o/r", "workflow": "r.yml"},
            ),
            "rp_1\tignored\tgithub\to/r\tr.yml\t",
        ),
    ],
)  # fmt: skip
def test_a_listing_line_shows_the_ids_pinned_on_first_use(item: dict[str, Any], line: str) -> None:
    assert listing_line(item) == line
