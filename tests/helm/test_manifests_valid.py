"""Every rendered manifest is valid Kubernetes, and Helm's linter has nothing to say."""

from __future__ import annotations

import tomllib
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from .chart import CHART_DIR, NAMESPACE, ROOT, Rendered
from .conftest import SCENARIOS

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion), one in between, and the
# newest kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.25.0", "1.30.0", "1.37.0"]

# Custom resources have no upstream schema; they are checked by hand in test_render.py.
CUSTOM_RESOURCES = {"monitoring.coreos.com/v1"}


def test_chart_metadata_matches_the_project() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        metadata = chart.metadata
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["apiVersion"] == "v2"
    assert metadata["name"] == "trustpub"
    assert metadata["appVersion"] == project["version"]
    assert metadata["kubeVersion"] == ">=1.25.0-0"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_validates_strictly(
    rendered: dict[str, Rendered], scenario: str, version: str
) -> None:
    manifests = rendered[scenario].manifests
    assert manifests
    for manifest in manifests:
        if manifest["apiVersion"] in CUSTOM_RESOURCES:
            continue
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{scenario}: {where} is invalid for Kubernetes {version}: {path}: {error}")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_is_namespaced_and_labelled(
    chart: helm.Chart, rendered: dict[str, Rendered], scenario: str
) -> None:
    chart_version = chart.version
    for manifest in rendered[scenario].manifests:
        metadata = manifest["metadata"]
        assert metadata["namespace"] == NAMESPACE, manifest["kind"]
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert metadata["labels"]["app.kubernetes.io/instance"] == "trustpub"
        assert metadata["labels"]["helm.sh/chart"] == f"trustpub-{chart_version}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_is_clean(scenarios: dict[str, dict[str, Any]], scenario: str) -> None:
    report = helm.lint(
        CHART_DIR, scenarios[scenario], strict=True, namespace=NAMESPACE, kube_version="v1.30.0"
    )
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []
