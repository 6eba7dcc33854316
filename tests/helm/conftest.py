"""Fixtures of the chart tests: the loaded chart and realistic values, rendered once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest

from app.tokens.keys import generate_signing_key_pem

from .chart import CHART_DIR, REQUIRED, Rendered, load_values, merge, render

# The Helm engine logs `fail` calls on stderr; the tests read them from the exceptions.
helm.disable_logging()

SIGNING_KEY_FILE = "trustpub-signing-20261123T013516Z.pem"


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def signing_key_pem() -> str:
    """A real key made at test time, as `--set-file signingKeys.files.<name>=...` would pass."""
    return generate_signing_key_pem().decode("ascii")


@pytest.fixture(scope="session")
def scenarios(signing_key_pem: str) -> dict[str, dict[str, Any]]:
    """Values of realistic installs, by name (tests/helm/values/*.yaml)."""
    evaluation = merge(
        load_values("evaluation.yaml"),
        {"signingKeys": {"files": {SIGNING_KEY_FILE: signing_key_pem}}},
    )
    return {
        "defaults": REQUIRED,
        "minimal": load_values("minimal.yaml"),
        "production": load_values("production.yaml"),
        "evaluation": evaluation,
        "in-memory": load_values("in-memory.yaml"),
    }


SCENARIOS = ["defaults", "minimal", "production", "evaluation", "in-memory"]


@pytest.fixture(scope="session")
def rendered(chart: helm.Chart, scenarios: dict[str, dict[str, Any]]) -> dict[str, Rendered]:
    return {name: render(chart, values) for name, values in scenarios.items()}


@pytest.fixture(scope="session")
def production(rendered: dict[str, Rendered]) -> Rendered:
    return rendered["production"]


@pytest.fixture(scope="session")
def evaluation(rendered: dict[str, Rendered]) -> Rendered:
    return rendered["evaluation"]
