"""Prometheus metrics. Labels hold bounded values only: never a token, a repository or a
client-chosen string.

Under gunicorn with several workers each process counts for itself; `trustpub serve`
calls `enable_multiprocess` before any metric exists, so /metrics sums every worker's
files. That is why the metrics are created on first use rather than at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Metrics:
    mints: Counter
    introspections: Counter
    revocations: Counter
    key_set_refreshes: Counter
    store_errors: Counter
    request_seconds: Histogram


@cache
def metrics() -> Metrics:
    return Metrics(
        mints=Counter(
            "trustpub_mints_total",
            "Token exchanges by CI provider and outcome (success or the error code).",
            ["provider", "outcome"],
        ),
        introspections=Counter(
            "trustpub_introspections_total", "Introspections by result.", ["result"]
        ),
        revocations=Counter(
            "trustpub_revocations_total", "Revocations recorded, by scope.", ["scope"]
        ),
        key_set_refreshes=Counter(
            "trustpub_key_set_refreshes_total",
            "Refreshes of CI issuers' key sets, by provider and result.",
            ["provider", "result"],
        ),
        store_errors=Counter(
            "trustpub_store_errors_total",
            "Operations on the token store that failed: unreachable, not replicated, or"
            " refused because this replica's clock is off the store's.",
            ["operation"],
        ),
        request_seconds=Histogram(
            "trustpub_request_duration_seconds",
            "HTTP request latency by endpoint and status.",
            ["endpoint", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        ),
    )


_Family = TypeVar("_Family", Counter, Histogram)


@cache
def labelled(family: _Family, *labels: str) -> _Family:
    """`family.labels(*labels)`, looked up once per label values.

    prometheus_client's `labels` validates the values and takes a lock on every call
    (about a sixth of a mint's metrics work); the child it returns for given values never
    changes. Labels hold bounded values only, so this remembers a bounded set.
    """
    return family.labels(*labels)


def enable_multiprocess(directory: Path) -> None:
    """Count in per-process files under `directory`; call before the first metric exists."""
    if metrics.cache_info().currsize:
        raise RuntimeError("enable_multiprocess must run before any metric is created")
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[_MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def mark_process_dead(pid: int) -> None:
    if _MULTIPROC_ENV in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render_latest() -> tuple[bytes, str]:
    metrics()  # every family shows up, even before its first event
    if _MULTIPROC_ENV in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
