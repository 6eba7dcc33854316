"""The four peaks the targets compare are measured in rotation, each in every position;
the scaling pairs in alternation; an unevenly spread round again, after the others."""

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


def test_an_uneven_round_is_measured_again_after_the_rotation(tmp_path: Path) -> None:
    bench = run.Bench(run.Plan(rotation_rounds=2), tmp_path)
    measured: list[str] = []

    def side(key: str) -> tuple[str, Any]:
        def measure(name: str) -> Any:
            measured.append(name)
            # The mint's first round lands all connections on one worker.
            split = [0, 8] if name == "Mint (round 1)" else [4, 4]
            return result(name=name, connections_per_worker=split)

        return key.title(), measure

    combined = bench.rotation({key: side(key) for key in ("floor", "mint")})

    assert measured == [
        "Floor (round 1)",
        "Mint (round 1)",
        "Mint (round 2)",
        "Floor (round 2)",
        "Mint (round 3)",
    ]
    assert [r["name"] for r in combined["mint"].rounds] == ["Mint (round 2)", "Mint (round 3)"]
    assert [r["name"] for r in combined["mint"].set_aside] == ["Mint (round 1)"]
    assert combined["floor"].set_aside == []


def test_a_pair_alternates_and_measures_an_uneven_round_again(tmp_path: Path) -> None:
    bench = run.Bench(run.Plan(), tmp_path)
    measured: list[tuple[str, int]] = []

    def measure(name: str, round_index: int) -> Any:
        measured.append((name, round_index))
        split = [1, 7] if name == "small (round 1)" else [4, 4]
        return result(name=name, connections_per_worker=split)

    small, large = bench.paired(("small", "large"), (measure, measure))

    assert measured == [
        ("small (round 1)", 0),
        ("large (round 1)", 0),
        ("large (round 2)", 1),
        ("small (round 2)", 1),
        # Its own round index: the mint pairs sign fresh tokens for it.
        ("small (round 3)", 2),
    ]
    assert [r["name"] for r in small.rounds] == ["small (round 2)", "small (round 3)"]
    assert [r["name"] for r in small.set_aside] == ["small (round 1)"]
    assert [r["name"] for r in large.rounds] == ["large (round 1)", "large (round 2)"]
