"""The bench harness, loaded under another name: `bench` names this test package here."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2] / "bench"
_spec = importlib.util.spec_from_file_location(
    "trustpub_bench", _ROOT / "__init__.py", submodule_search_locations=[str(_ROOT)]
)
assert _spec is not None
assert _spec.loader is not None
sys.modules["trustpub_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules["trustpub_bench"])
load = importlib.import_module("trustpub_bench.load")
run = importlib.import_module("trustpub_bench.run")
profile = importlib.import_module("trustpub_bench.profile")
parts = importlib.import_module("trustpub_bench.parts")
instructions = importlib.import_module("trustpub_bench.instructions")
report = importlib.import_module("trustpub_bench.report")
procs = importlib.import_module("trustpub_bench.procs")


def run_bench_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench.<module> ARGS` from the repository's root, as `make` runs it; a
    non-zero exit fails the test with everything the run printed."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=_ROOT.parent,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result
