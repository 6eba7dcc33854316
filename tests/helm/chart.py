"""Rendering helm/trustpub with Helm's own engine (helm-python-sdk: Helm v4 as a library).

No helm binary, cluster or network is involved: `Chart.render` is `helm template`, with the
chart's values.schema.json applied and `fail` raising `HelmRenderError`. Manifests are parsed
with Helm's YAML reader too (`values_from_yaml`, sigs.k8s.io/yaml: what kubectl uses), so
`0440` reads as the octal Kubernetes sees.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "trustpub"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "trustpub"
NAMESPACE = "pypi"

# The least every install must set (see values.yaml): used as "the default values".
REQUIRED = {
    "trustpub": {"audience": "pypi.example.com"},
    "redis": {"existingSecret": "trustpub-redis"},
    "signingKeys": {"existingSecret": "trustpub-signing-keys"},
}

_DOCUMENT_SEPARATOR = re.compile(r"(?m)^---[ \t]*$")


def load_values(name: str) -> dict[str, Any]:
    return helm.values_from_yaml((VALUES_DIR / name).read_text(encoding="utf-8"))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of plain dicts, `override` winning (as `helm -f a.yaml -f b.yaml`)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Rendered:
    files: dict[str, str]
    manifests: list[dict[str, Any]]

    @property
    def notes(self) -> str:
        return self.files[f"{RELEASE}/templates/NOTES.txt"]

    def file(self, template: str) -> str:
        return self.files[f"{RELEASE}/templates/{template}"]

    def kinds(self) -> list[str]:
        return sorted(manifest["kind"] for manifest in self.manifests)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [manifest for manifest in self.manifests if manifest["kind"] == kind]

    def one(self, kind: str, name: str = RELEASE) -> dict[str, Any]:
        found = [m for m in self.all(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        return container

    def env(self) -> dict[str, dict[str, Any]]:
        """Environment of the trustpub container by name (value or valueFrom entries)."""
        return {item["name"]: item for item in self.container["env"]}


def render(chart: helm.Chart, values: Mapping[str, Any]) -> Rendered:
    files = chart.render(dict(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    manifests = [
        manifest
        for path, text in sorted(files.items())
        if path.endswith((".yaml", ".yml"))
        for manifest in _documents(text)
    ]
    return Rendered(files=files, manifests=manifests)


def _documents(text: str) -> Iterator[dict[str, Any]]:
    for document in _DOCUMENT_SEPARATOR.split(text):
        parsed = helm.values_from_yaml(document) if document.strip() else {}
        if parsed:
            yield parsed
