"""`make profile` keeps working: the callgrind reader, and the whole run with tiny numbers.

It checks that each app's requests, and nothing else, were counted, and that the mint and
introspection stay within their budgets of instructions, multiples of the least mint's
(bench/profile.py): a count of work, which does not move with the machine's load, never a
time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .harness import parts, profile, run_bench_module

self_costs = profile.self_costs

# A profile as callgrind writes it: names given once as "(id) name", referred to by id
# after; the cost line after calls= is the callee's inclusive cost.
PROFILE = """\
version: 1
creator: callgrind-3.19.0
events: Ir
summary: 1111

ob=(1) /lib/libpython.so
fl=(1) ceval.c
fn=(1) eval
10 100
cob=(2) /lib/_rust.abi3.so
cfi=(2) rsa.c
cfn=(2) verify
calls=1 5
11 900
+1 10

ob=(2)
fl=(2)
fn=(2)
5 800
* 50
ob=(1)
fl=(1)
fn=(1)
12 1
"""


def test_self_costs_charge_each_function_its_own_instructions() -> None:
    costs = self_costs(PROFILE.splitlines(keepends=True))

    assert costs == {
        ("/lib/libpython.so", "eval"): 100 + 10 + 1,  # the call's 900 is verify's
        ("/lib/_rust.abi3.so", "verify"): 800 + 50,
    }
    assert costs.total() == 961


def _counted(**instructions: float) -> dict[str, object]:
    return {"apps": {name: {"instructions": count} for name, count in instructions.items()}}


@pytest.mark.parametrize(
    ("least", "mint", "introspect", "over"),
    [
        (1_237_000, 1_590_000, 188_000, set()),  # the seventeenth session's counts
        (1_000_000, 1_320_000, 170_000, set()),  # at both budgets exactly
        (1_000_000, 1_330_000, 150_000, {"mint"}),
        (1_237_000, 2_400_000, 188_000, {"mint"}),  # a second signature check, say
        (1_000_000, 1_100_000, 171_000, {"introspect"}),
        (1_000_000, 1_400_000, 200_000, {"mint", "introspect"}),
        (2_000_000, 1_590_000, 188_000, set()),  # a dearer least mint moves both budgets
    ],
)
def test_budgets_are_multiples_of_the_least_mint(
    least: float, mint: float, introspect: float, over: set[str]
) -> None:
    results = _counted(least_mint=least, mint=mint, introspect=introspect)

    found = profile.over_budget(results)

    assert set(found) == over
    counts = {"mint": mint, "introspect": introspect}
    for name, ratio in found.items():
        assert ratio == pytest.approx(counts[name] / least)


@pytest.mark.timeout(300)
def test_the_profile_runs_end_to_end(tmp_path: Path) -> None:
    # `make test` installs valgrind; without it this fails rather than hiding the gap.
    assert shutil.which("valgrind"), "valgrind is not installed: run `make valgrind`"
    output = tmp_path / "profile.json"

    result = run_bench_module(
        "profile", "--requests", "3", "--part-requests", "3", "--output", str(output)
    )

    results = json.loads(output.read_text())
    apps = results["apps"]
    assert set(apps) == {"http_floor", "least_mint", "mint", "introspect"}
    # The requests were counted, and only they: a mint verifies an RS256 signature and
    # signs with Ed25519 (~800,000 instructions in OpenSSL), the floor app signs nothing.
    assert apps["least_mint"]["by_object"]["cryptography"] > 300_000
    assert apps["mint"]["by_object"]["cryptography"] > 300_000
    assert apps["http_floor"]["by_object"].get("cryptography", 0) == 0
    assert apps["mint"]["instructions"] > apps["least_mint"]["instructions"]
    for app in apps.values():
        assert sum(app["by_object"].values()) == pytest.approx(app["instructions"])
    # Counted after a warm-up long enough for 3.11's specialisation: three requests give
    # the steady count, so the budgets hold here as they do for `make profile`'s 200.
    over = profile.over_budget(results)
    assert not over, f"over budget: {over}; see docs/performance.md, The mint's budget"
    assert "Within them." in result.stdout
    assert "| mint |" in result.stdout
    assert "Where the mint's instructions exceed the least mint's" in result.stdout
    # Every variant was counted, and each part switched off saves instructions (the
    # smallest, the rate limits, ~19,000 of ~1,730,000).
    counted = {name: variant["instructions"] for name, variant in results["mint_without"].items()}
    assert list(counted) == list(parts.VARIANTS)
    for part in parts.PARTS:
        assert counted[part] < counted["nothing"] - 5_000, part
    assert counted["core"] < counted["optional"] < counted["nothing"]
    assert "| nothing (the whole mint) |" in result.stdout
