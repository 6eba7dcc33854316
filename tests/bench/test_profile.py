"""`make profile` keeps working: the callgrind reader, and the whole run with tiny numbers.

No count is asserted as a target (that is for a reader of the profile): only that each
app's requests, and nothing else, were counted.
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
