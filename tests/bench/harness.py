"""The bench harness, loaded under another name: `bench` names this test package here."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2] / "bench"
# Where `make` runs the bench's modules from: the repository's root.
BENCH_ROOT = _ROOT.parent
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
    argv = [sys.executable, "-m", f"bench.{module}", *args]
    with subprocess.Popen(
        argv, cwd=BENCH_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=280)
        except subprocess.TimeoutExpired:
            # SIGTERM, not subprocess.run's SIGKILL: the bench stops the servers it
            # started (in sessions of their own) only when it can run its clean-up.
            proc.terminate()
            try:
                stdout, stderr = proc.communicate(timeout=15)  # within the tests' 300 s
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            raise AssertionError(f"bench.{module} timed out:\n{stdout}{stderr}") from None
    result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    return result
