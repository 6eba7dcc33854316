"""Alternating rounds are folded into one result the way one longer run would count."""

from __future__ import annotations

from typing import Any

from .harness import load

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
