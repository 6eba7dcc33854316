"""The providers trustpub knows, by the `provider` name used in policies and issuer configs.

Adding a provider means adding one module and one line here; no other provider changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.publishers.github import GitHubProvider
from app.publishers.model import Provider

PROVIDERS: Mapping[str, Provider] = {
    "github": GitHubProvider(),
}
