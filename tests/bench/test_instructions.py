"""The bytecode table counts the app's work and nothing of the harness's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from .harness import instructions


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [environ["wsgi.input"].read()]


def _requests() -> Iterator[dict[str, Any]]:
    # Each body encoded on demand, as the mint's are: by the standard library's json.
    for index in range(100):
        body = json.dumps({"token": f"token-{index}"}).encode()
        yield instructions.wsgi_environ("/mint", body, "application/json")


def test_building_a_request_is_not_counted_as_the_apps_work() -> None:
    counted = instructions.per_request(_app, _requests(), 5)

    # Only this module's app ran inside the count: no json frames of the body's encoding.
    assert set(counted["by_module"]) == {__name__}
    assert counted["min"] == counted["max"] == counted["instructions"] > 0


class _Clock:
    """Thread time that advances only when an app runs, by that app's own cost."""

    def __init__(self) -> None:
        self.now = 0.0
        self.order: list[str] = []

    def app(self, name: str, costs: Iterator[float]) -> instructions.WSGICall:
        def run(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            self.order.append(name)
            self.now += next(costs)
            start_response("200 OK", [])
            return [b""]

        return run


def test_in_process_cpu_is_the_median_round_of_apps_taking_turns() -> None:
    clock = _Clock()
    # Per round, each request of the floor costs 50 us, then 60, then 1 ms (a slow spell
    # of the machine); the mint's 300 us, 900 us, 310 us. Two requests per round.
    floor_costs = iter([50e-6] * 2 + [60e-6] * 2 + [1e-3] * 2)
    mint_costs = iter([300e-6] * 2 + [900e-6] * 2 + [310e-6] * 2)
    apps = {
        "http_floor": (clock.app("http_floor", floor_costs), _requests()),
        "mint": (clock.app("mint", mint_costs), _requests()),
    }

    timed = instructions.thread_cpu_per_request(apps, 3, 2, clock=lambda: clock.now)

    # The median round, not the mean that one slow round would drag.
    assert timed == pytest.approx({"http_floor": 60.0, "mint": 310.0})
    # The apps took turns round by round, so a slow spell falls on all of them.
    assert clock.order == ["http_floor", "http_floor", "mint", "mint"] * 3
