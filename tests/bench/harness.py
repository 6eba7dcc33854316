"""The bench harness, loaded under another name: `bench` names this test package here."""

from __future__ import annotations

import importlib
import importlib.util
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
