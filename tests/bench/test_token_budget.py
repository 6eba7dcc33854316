"""A mint phase whose pre-signed tokens ran out is measured again, with twice as many."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import load, run


@pytest.fixture
def asked_rates(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """No servers and no wrk: tokens and loads are recorded, phases scripted per test."""
    rates: list[float] = []

    def token_files(self: Any, name: str, rate: float, seconds: float) -> Path:
        rates.append(rate)
        return Path("unused")

    monkeypatch.setattr(run.Bench, "token_files", token_files)
    monkeypatch.setattr(run.Bench, "load", lambda self, *args, **changes: None)
    monkeypatch.setattr(run, "_succeeded", lambda result: result)
    return rates


def scripted(monkeypatch: pytest.MonkeyPatch, outcomes: list[object]) -> None:
    pending: Iterator[object] = iter(outcomes)

    def run_phase(*args: Any, **kwargs: Any) -> object:
        outcome = next(pending)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(run, "run_phase", run_phase)


def bench() -> Any:
    harness = object.__new__(run.Bench)  # only the phase plumbing is used
    harness.plan = run.Plan()
    harness.redis, harness.redis_pid = None, None
    return harness


@pytest.mark.parametrize(
    ("outcomes", "expected_rates", "measured"),
    [
        (["done"], [100.0], "done"),
        ([load.TokensExhausted("ran out"), "again"], [100.0, 200.0], "again"),
    ],
    ids=["enough", "ran-out-once"],
)
def test_tokens_are_made_again_for_twice_the_rate_once(
    monkeypatch: pytest.MonkeyPatch,
    asked_rates: list[float],
    outcomes: list[object],
    expected_rates: list[float],
    measured: str,
) -> None:
    scripted(monkeypatch, outcomes)

    result = bench().mint_phase("mint", None, "http://127.0.0.1:1", 100.0)

    assert result == measured
    assert asked_rates == expected_rates


def test_running_out_twice_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, asked_rates: list[float]
) -> None:
    scripted(monkeypatch, [load.TokensExhausted("ran out"), load.TokensExhausted("again")])

    with pytest.raises(load.TokensExhausted, match="again"):
        bench().mint_phase("mint", None, "http://127.0.0.1:1", 100.0)
    assert asked_rates == [100.0, 200.0]


def test_a_warm_up_that_ran_out_still_warmed(
    monkeypatch: pytest.MonkeyPatch, asked_rates: list[float]
) -> None:
    scripted(monkeypatch, [load.TokensExhausted("warm-up ran out"), "measured"])

    assert bench().mint_phase("mint", None, "http://127.0.0.1:1", 100.0, warmup=True) == (
        "measured"
    )
