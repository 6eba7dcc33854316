"""The providers trustpub knows, by the `provider` name used in policies and issuer configs.

Adding a provider means adding one module, one line here, its issuer setting in
`app.settings` and its `$defs` entry in `policy.schema.json`; no other provider changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.publishers.github import GitHubProvider
from app.publishers.gitlab import GitLabProvider
from app.publishers.google import GoogleProvider
from app.publishers.model import Provider

PROVIDERS: Mapping[str, Provider] = {
    "github": GitHubProvider(),
    "gitlab": GitLabProvider(),
    "google": GoogleProvider(),
}
