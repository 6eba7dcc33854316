"""trustpub: trusted-publishing OIDC token exchange.

The composition root is `app.wiring.create_app`. Importing this package stays cheap,
so the CLI's small commands and the index-side `app.integrations` never load Flask,
Redis or the policy machinery they do not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.wiring import create_app as create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.wiring import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
