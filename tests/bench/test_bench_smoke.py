"""`make bench` keeps working: the whole harness, end to end, with tiny numbers.

No timing is asserted (benchmarks are never assertions in the test suite): only that
every phase ran and served its requests without errors, and that the results file has
what docs/performance.md explains. The targets (throughput ratios, one Redis round trip
per request, ...) are the bench's to judge on the 2-core machine, never the suite's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .harness import run_bench_module

PHASES = {
    "http_floor",
    "least_mint",
    "mint",
    "mint_few_publishers",
    "mint_many_publishers",
    "mint_few_registered",
    "mint_many_registered",
    "mint_half_peak",
    "http_floor_same_rate",
    "introspect",
    "introspect_no_revocations",
    "introspect_many_revocations",
}


@pytest.mark.timeout(300)
def test_the_bench_harness_runs_end_to_end(tmp_path: Path) -> None:
    # `make test` installs wrk; without it this fails rather than hiding the gap.
    assert shutil.which("wrk"), "wrk is not installed: run `make wrk` (make test does)"
    output = tmp_path / "results.json"

    result = run_bench_module("run", "--smoke", "--output", str(output))

    results = json.loads(output.read_text())
    assert set(results["phases"]) == PHASES
    for name, phase in results["phases"].items():
        assert phase["requests"] > 0, name
        assert not any(phase["errors"].values()), (name, phase["errors"])
    for name in (
        "least_mint",
        "mint",
        "mint_many_publishers",
        "introspect",
        "introspect_many_revocations",
    ):
        # Counted for the table (its target is the bench's to judge, not the suite's).
        assert results["phases"][name]["redis_round_trips_per_request"] >= 1.0, name
        assert results["phases"][name]["redis_calls_per_request"], name
    assert results["memory"]["revocations_filled"] == results["plan"]["large_revocations"]
    assert results["memory"]["replay_record_bytes"] > 0
    assert results["cold_start"]["issuer_requests"] >= 2  # discovery, then the key set
    assert {target["name"] for target in results["targets"]} >= {
        "mint req/s / HTTP floor req/s",
        "introspection req/s / HTTP floor req/s",
    }
    counted = results["instructions"]
    assert set(counted) == {"http_floor", "least_mint", "mint", "introspect"}
    for name, count in counted.items():
        assert count["min"] <= count["instructions"] <= count["max"], name
        assert sum(count["by_module"].values()) > 0, name
    # trustpub's own logic runs inside the mint: it cannot take fewer instructions than
    # the least mint, and the app's own modules must show in its breakdown.
    assert counted["mint"]["instructions"] > counted["least_mint"]["instructions"]
    assert "app.exchange" in counted["mint"]["by_module"]
    assert "bench.instructions" not in counted["mint"]["by_module"]
    assert "| mint |" in result.stdout
    assert "The mint's instructions by module:" in result.stdout
    # Each app's CPU in-process, beside its phase's under gunicorn.
    for name, count in counted.items():
        assert count["thread_cpu_us"] > 0, name
    assert "The HTTP floor's app did " in result.stdout
    # Runs are compared over time: every runtime dependency's version is recorded, no
    # development tool's.
    packages = results["machine"]["packages"]
    assert {"orjson", "prometheus-client", "gunicorn", "werkzeug"} <= set(packages)
    assert all(packages.values()), packages
    assert "ruff" not in packages
    assert "mint vs the least mint:" in result.stdout
    assert "us more of Redis's." in result.stdout
    assert "| scaling (small and large in alternation) |" in result.stdout
    # Each large case's interpreter work, counted in a process built like its service.
    large_work = results["scaling"]["instructions"]
    assert set(large_work) == {
        "mint_many_publishers",
        "mint_many_registered",
        "introspect_many_revocations",
    }
    assert all(count > 0 for count in large_work.values()), large_work
