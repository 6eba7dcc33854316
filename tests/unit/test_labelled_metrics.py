"""`labelled` is `labels`, remembered: the same child, counting into the same family."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.metrics import labelled


def test_labelled_is_the_child_labels_returns_and_counts_into_its_family() -> None:
    registry = CollectorRegistry()
    counter = Counter("things", "Things.", ["kind", "outcome"], registry=registry)
    histogram = Histogram("waits", "Waits.", ["endpoint"], registry=registry, buckets=(1.0,))

    labelled(counter, "a", "ok").inc()
    labelled(counter, "a", "ok").inc(2)
    labelled(counter, "b", "ok").inc()
    labelled(histogram, "mint").observe(0.5)

    assert labelled(counter, "a", "ok") is counter.labels("a", "ok")
    assert labelled(histogram, "mint") is histogram.labels("mint")
    assert registry.get_sample_value("things_total", {"kind": "a", "outcome": "ok"}) == 3
    assert registry.get_sample_value("things_total", {"kind": "b", "outcome": "ok"}) == 1
    assert registry.get_sample_value("waits_count", {"endpoint": "mint"}) == 1


def test_families_of_the_same_name_keep_their_own_children() -> None:
    first = Counter("same", "Same.", ["kind"], registry=CollectorRegistry())
    second = Counter("same", "Same.", ["kind"], registry=CollectorRegistry())

    labelled(first, "a").inc()

    assert labelled(second, "a") is not labelled(first, "a")
    assert labelled(second, "a")._value.get() == 0
