"""Alternating rounds are folded into one result the way one longer run would count."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import load, report

PhaseResult, combine_rounds = load.PhaseResult, load.combine_rounds


def result(**changes: Any) -> Any:
    fields: dict[str, Any] = {
        "name": "round",
        "requests": 1000,
        "seconds": 2.0,
        "rps": 500.0,
        "p50_ms": 4.0,
        "p90_ms": 8.0,
        "p99_ms": 12.0,
        "max_ms": 20.0,
        "mean_ms": 5.0,
        "errors": {"connect": 0, "status": 0},
        "connections": 8,
        "server_cpu_us_per_request": 1000.0,
        "redis_cpu_us_per_request": 50.0,
        "wrk_cpu_share": 0.1,
        "other_cpu_share": 0.01,
        "steal_share": 0.0,
        "connections_per_worker": [4, 4],
        "attempts": 1,
        "redis_round_trips_per_request": 1.0,
        "redis_calls_per_request": {"evalsha": 1.0},
    }
    fields.update(changes)
    return PhaseResult(**fields)


def test_counts_add_up_and_costs_are_weighted_by_requests() -> None:
    rounds = [
        result(requests=1000, seconds=2.0, server_cpu_us_per_request=1000.0, p50_ms=4.0),
        result(
            requests=3000,
            seconds=2.0,
            server_cpu_us_per_request=600.0,
            p50_ms=2.0,
            max_ms=50.0,
            errors={"connect": 0, "status": 2},
            attempts=3,
            connections_per_worker=[8, 0],
            other_cpu_share=0.2,
            redis_calls_per_request={
                "xadd": 1.0,
                "evalsha": 1.0,
                "set": 1.0,
                "hello": 0.01,
                "get": 1.0,
                "mget": 0.0,
            },
        ),
    ]

    combined = combine_rounds("mint, few publishers", rounds)

    assert combined.name == "mint, few publishers"
    assert (combined.requests, combined.seconds, combined.rps) == (4000, 4.0, 1000.0)
    assert combined.server_cpu_us_per_request == 700.0
    assert combined.p50_ms == 3.0
    assert combined.max_ms == 50.0
    assert combined.errors == {"connect": 0, "status": 2}
    assert combined.attempts - 1 == 2  # the restarts of every round, as for one run
    assert combined.other_cpu_share == 0.2  # the noisiest round speaks for all
    assert combined.connections_per_worker == [8, 0]  # so does the least even
    assert combined.redis_calls_per_request == {
        "evalsha": 1.0,
        "get": 0.75,
        "hello": 0.0075,
        "mget": 0.0,
        "set": 0.75,
        "xadd": 0.75,
    }
    # Listed in name order whatever order a set of their names iterates in.
    assert list(combined.redis_calls_per_request) == [
        "evalsha",
        "get",
        "hello",
        "mget",
        "set",
        "xadd",
    ]
    # Each round's own numbers stay with the result, in the order measured.
    assert [
        (r["rps"], r["server_cpu_us_per_request"], r["connections_per_worker"])
        for r in combined.rounds
    ] == [(500.0, 1000.0, [4, 4]), (500.0, 600.0, [8, 0])]
    assert combined.as_dict()["rounds"] == combined.rounds


EVEN, UNEVEN = [3, 5], [1, 7]


@pytest.mark.parametrize(
    ("planned", "again", "kept", "set_aside"),
    [
        # Every round even: nothing measured again.
        ((EVEN, EVEN, EVEN, EVEN), (), ("1", "2", "3", "4"), ()),
        # An uneven round gives way to an even one, measured after the others.
        ((EVEN, UNEVEN, EVEN, EVEN), (EVEN,), ("1", "3", "4", "5"), ("2",)),
        ((EVEN, UNEVEN, EVEN, EVEN), (UNEVEN, EVEN), ("1", "3", "4", "6"), ("2", "5")),
        # Still uneven after every re-measure: the first uneven round fills its place.
        ((EVEN, UNEVEN, EVEN, EVEN), (UNEVEN, UNEVEN), ("1", "2", "3", "4"), ("5", "6")),
        ((UNEVEN, EVEN, UNEVEN, EVEN), (EVEN, UNEVEN), ("1", "2", "4", "5"), ("3", "6")),
        ((UNEVEN, UNEVEN), (EVEN, EVEN), ("3", "4"), ("1", "2")),
    ],
)
def test_uneven_rounds_are_measured_again_and_set_aside(
    planned: tuple[list[int], ...],
    again: tuple[list[int], ...],
    kept: tuple[str, ...],
    set_aside: tuple[str, ...],
) -> None:
    rounds = [
        result(name=str(number), connections_per_worker=split)
        for number, split in enumerate(planned, 1)
    ]
    numbers: list[int] = []

    def measure_again(number: int) -> Any:
        numbers.append(number)
        return result(name=str(number), connections_per_worker=again[number - len(planned) - 1])

    combined, aside = load.even_rounds(rounds, measure_again)

    assert numbers == list(range(len(planned) + 1, len(planned) + len(again) + 1))
    assert tuple(r.name for r in combined) == kept
    assert tuple(r.name for r in aside) == set_aside


def test_rounds_set_aside_count_as_attempts_and_are_listed() -> None:
    kept = [result(name="1", attempts=2), result(name="3", attempts=1)]
    aside = [result(name="2", attempts=20, connections_per_worker=[0, 8], rps=250.0)]

    combined = combine_rounds("mint", kept, aside)

    assert combined.requests == 2000  # the kept rounds' only
    assert combined.connections_per_worker == [4, 4]
    assert combined.attempts - 1 == 1 + 20  # every attempt of the round set aside
    assert [(r["name"], r["rps"], r["connections_per_worker"]) for r in combined.set_aside] == [
        ("2", 250.0, [0, 8])
    ]


@pytest.mark.parametrize(
    ("phases", "line"),
    [
        (
            {
                "floor": {
                    "connections_per_worker": [4, 4],
                    "connections": 8,
                    "attempts": 3,
                    "set_aside": [],
                }
            },
            "in every phase but none (2 attempt(s) restarted for an uneven spread).",
        ),
        (
            {
                "floor": {
                    "connections_per_worker": [1, 7],
                    "connections": 8,
                    "attempts": 1,
                    "set_aside": [],
                },
                "mint": {
                    "connections_per_worker": [3, 5],
                    "connections": 8,
                    "attempts": 25,
                    "set_aside": [{"connections_per_worker": [0, 8]}],
                },
            },
            "in every phase but floor 1/7 (24 attempt(s) restarted for an uneven spread; "
            "rounds set aside and measured again: mint 0/8).",
        ),
    ],
)
def test_the_report_names_uneven_phases_and_rounds_set_aside(
    phases: dict[str, Any], line: str
) -> None:
    assert report.spread_line(phases).endswith(line)
