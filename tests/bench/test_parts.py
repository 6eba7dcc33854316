"""bench/parts.py switches each part of a mint off, and back on: table-driven over its
variants, on the development app (in-memory stores), without valgrind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import app.api.observe
import app.exchange
from app.api.observe import _ObservedRequests
from app.audit import AuditTrail
from app.settings import load_settings
from app.wiring import create_app

from .harness import parts

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dev_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    env = {
        "TRUSTPUB_DEV_DIR": str(tmp_path_factory.mktemp("dev")),
        "TRUSTPUB_POLICIES_DIR": str(REPO_ROOT / "policies"),
    }
    return create_app(load_settings(env, dev=True))


def seams(wsgi: Flask) -> dict[str, Any]:
    """Everything a variant may replace, as it is now."""
    exchange, hot_paths = parts._exchange(wsgi), parts._hot_paths(wsgi)
    return {
        "audit trail": exchange.audit,
        "publisher limits": exchange.publisher_limits,
        "providers": exchange.providers,
        "publishers": exchange.publishers,
        "endpoint rate checks": hot_paths._rate_checks,
        "audit log line": AuditTrail.log,
        "request layer": _ObservedRequests.__call__,
        "exchange metrics": app.exchange.labelled,
        "request metrics": app.api.observe.labelled,
    }


# What each part replaces; the variants of several parts replace the union.
REPLACES = {
    "audit_line": {"audit log line"},
    "audit_trail": {"audit trail"},
    "metrics": {"exchange metrics", "request metrics"},
    "request_layer": {"request layer"},
    "rate_limits": {"publisher limits", "endpoint rate checks"},
    "matching": {"providers", "publishers"},
}


@pytest.mark.parametrize("variant", sorted(parts.VARIANTS))
def test_a_variant_replaces_its_parts_and_restores_them(dev_app: Flask, variant: str) -> None:
    before = seams(dev_app)

    with parts.switched_off(dev_app, variant):
        during = seams(dev_app)

    changed = {name for name in before if during[name] is not before[name]}
    expected = set().union(*(REPLACES[part] for part in parts.VARIANTS[variant]))
    assert changed == expected
    after = seams(dev_app)
    assert all(after[name] is before[name] for name in before), variant
    assert parts.variant_label(variant)
