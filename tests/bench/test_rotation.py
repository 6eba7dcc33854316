"""The four peaks the targets compare are measured in rotation, each in every position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .harness import run
from .test_combine_rounds import result

# Each round's order: the previous round's, shifted by one. The first is the sides' own.
SHIFTED = (
    ("floor", "least", "mint", "introspect"),
    ("least", "mint", "introspect", "floor"),
    ("mint", "introspect", "floor", "least"),
    ("introspect", "floor", "least", "mint"),
)
SIDES = SHIFTED[0]


@pytest.mark.parametrize(
    ("rounds", "expected_rounds"),
    [
        (1, SHIFTED[:1]),
        (4, SHIFTED),
        (5, (*SHIFTED, SHIFTED[0])),
    ],
)
def test_each_round_shifts_the_order_and_each_side_combines_its_rounds(
    tmp_path: Path, rounds: int, expected_rounds: tuple[tuple[str, ...], ...]
) -> None:
    bench = run.Bench(run.Plan(rotation_rounds=rounds), tmp_path)
    measured: list[str] = []

    def side(key: str, requests: int) -> tuple[str, Any]:
        def measure(name: str) -> Any:
            measured.append(key)
            return result(name=name, requests=requests, seconds=2.0, rps=requests / 2.0)

        return key.title(), measure

    combined = bench.rotation(
        {key: side(key, 100 * (index + 1)) for index, key in enumerate(SIDES)}
    )

    assert measured == [key for order in expected_rounds for key in order]
    for index, key in enumerate(SIDES):
        assert combined[key].name == key.title()
        assert combined[key].requests == 100 * (index + 1) * rounds
        assert combined[key].seconds == 2.0 * rounds
        assert [r["name"] for r in combined[key].rounds] == [
            f"{key.title()} (round {n})" for n in range(1, rounds + 1)
        ]


@pytest.mark.parametrize(
    ("duration", "rounds", "seconds"),
    [(8.0, 4, 2.0), (8.0, 2, 4.0), (1.0, 2, 1.0), (2.0, 4, 1.0)],
)
def test_a_round_lasts_its_share_of_a_phase_and_at_least_a_second(
    tmp_path: Path, duration: float, rounds: int, seconds: float
) -> None:
    bench = run.Bench(run.Plan(duration=duration, rotation_rounds=rounds), tmp_path)

    assert bench.rotation_duration() == seconds
