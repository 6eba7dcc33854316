"""Running wrk against a service and accounting for what the phase cost.

One phase = one wrk run at fixed concurrency. Alongside wrk's own numbers it records
the CPU time the server processes (gunicorn master and workers), redis-server and wrk
itself used, and the Redis commands executed (INFO commandstats): per request, these
show where the time goes and that the load generator was not the bottleneck.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

from .procs import Service, cpu_seconds, established_connections, machine_cpu, open_connections

WRK_DIR = Path(__file__).parent / "wrk"
RESULT_MARK = "BENCH_RESULT "
# When, after wrk starts, to look how its connections landed (then every 50 ms until
# all are accepted); how often to try again. A restart costs about this probe, wrk's
# exit and the wait for the workers to close its connections (a few milliseconds, at
# most CLOSE_WAIT_SECONDS).
BALANCE_PROBE_SECONDS = 0.05
CLOSE_WAIT_SECONDS = 1.0
# An attempt lands evenly only one time in three or four (docs/performance.md): with
# ten, four of five runs had a round still uneven after the last.
BALANCE_ATTEMPTS = 20
# A round still unevenly spread after those attempts reads about one worker's rate (in the
# thirteenth session a mint round at 0/8 served 1,130 mints/s, its side's others
# 2,519-2,754): it is set aside and measured again, up to this many times per side.
UNEVEN_ROUND_REMEASURES = 2


@dataclass(frozen=True)
class Load:
    """How wrk drives a phase."""

    url: str
    connections: int
    threads: int
    duration: float
    mode: str  # "static" or "tokens"
    data: Path  # the body file, or the token file prefix
    headers: tuple[str, ...] = ()
    think_ms: float = 0.0  # > 0: paced (Poisson-like) load below the peak


@dataclass
class PhaseResult:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    connections: int
    server_cpu_us_per_request: float
    redis_cpu_us_per_request: float
    wrk_cpu_share: float  # of one core, over the phase
    # CPU the machine spent on anything but the server, Redis and wrk, and time the
    # hypervisor gave to other guests (cores): a noisy neighbour shows up here.
    other_cpu_share: float
    steal_share: float
    # The connections each gunicorn worker held (wrk's keep-alive connections stay put),
    # and the attempts it took to get them spread evenly (see run_phase).
    connections_per_worker: list[int]
    attempts: int
    # Client requests Redis read off its sockets (INFO total_reads_processed): without
    # pipelining, one per round trip. Commands include those a Lua script runs.
    redis_round_trips_per_request: float = 0.0
    redis_calls_per_request: dict[str, float] = field(default_factory=dict)
    think_ms: float = 0.0
    # A result combined from rounds: each round's own numbers, in the order measured, so
    # results.json shows whether one side of a pair was slow throughout or in one round.
    rounds: list[dict[str, Any]] = field(default_factory=list)
    # Rounds measured again because their connections stayed unevenly spread
    # (`even_rounds`): their own numbers, counted in none of the result's but the attempts.
    set_aside: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def evenly_spread(self) -> bool:
        return even_spread(self.connections_per_worker, self.connections)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokensExhausted(RuntimeError):
    """wrk reused a token: more were used than made (a faster run than expected, or
    many restarts for an uneven spread, each of which skips the tokens it used)."""


def run_phase(
    name: str,
    load: Load,
    service: Service,
    redis_client: redis.Redis | None = None,
    redis_pid: int | None = None,
) -> PhaseResult:
    """Run wrk once the connections it opened are spread evenly over the workers.

    gunicorn's workers race to accept on one shared socket, and wrk's keep-alive
    connections stay where they landed: 8 connections split 4/4 on one run and 8/0 on
    the next, which halves throughput. So shortly after wrk starts, the split is read
    from /proc; an uneven one aborts the attempt and starts wrk again (its requests
    are not counted; the tokens it may have used are skipped).
    """
    port = int(load.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    skip = 0
    for attempt in range(1, BALANCE_ATTEMPTS + 1):
        last = attempt == BALANCE_ATTEMPTS
        if redis_client is not None:
            redis_client.config_resetstat()
        machine_before = machine_cpu()
        server_before = service.cpu_seconds()
        redis_before = cpu_seconds(redis_pid) if redis_pid else 0.0
        proc = subprocess.Popen(  # noqa: S603 (wrk, with arguments built by _wrk_argv)
            _wrk_argv(load, skip), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            time.sleep(BALANCE_PROBE_SECONDS)
            split = established_connections(service.workers(), port)
            for _ in range(20):  # wrk may still be connecting
                if sum(split) >= load.connections:
                    break
                time.sleep(0.05)
                split = established_connections(service.workers(), port)
            balanced = even_spread(split, load.connections)
            if not balanced and not last:
                proc.send_signal(signal.SIGINT)  # wrk stops, still reporting what it did
            assert proc.stdout is not None
            output = proc.stdout.read()
            # wait4 rather than wait: it also returns wrk's own CPU time.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # A run stopped mid-phase (SIGTERM) left wrk loading stopped servers.
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        raw = _wrk_result(name, proc.returncode, output)
        if balanced or last:
            break
        skip += raw["requests"] + load.connections + 10
        _wait_until_closed(service, port)
    server_cpu = service.cpu_seconds() - server_before
    redis_cpu = (cpu_seconds(redis_pid) - redis_before) if redis_pid else 0.0
    busy, steal = (
        after - before for after, before in zip(machine_cpu(), machine_before, strict=True)
    )
    wrk_cpu = usage.ru_utime + usage.ru_stime
    calls, round_trips = _redis_stats(redis_client) if redis_client is not None else ({}, 0)
    if raw["exhausted"]:
        raise TokensExhausted(
            f"phase {name}: wrk ran out of fresh tokens ({raw['exhausted']} requests reused "
            "one); the harness under-estimated the throughput"
        )
    requests_done = max(1, raw["requests"])
    seconds = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    return PhaseResult(
        name=name,
        requests=raw["requests"],
        seconds=seconds,
        rps=raw["requests"] / seconds,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=latency["mean"] / 1000,
        errors=raw["errors"],
        connections=load.connections,
        server_cpu_us_per_request=server_cpu / requests_done * 1e6,
        redis_cpu_us_per_request=redis_cpu / requests_done * 1e6,
        wrk_cpu_share=wrk_cpu / seconds,
        other_cpu_share=max(0.0, busy - server_cpu - redis_cpu - wrk_cpu) / seconds,
        steal_share=steal / seconds,
        connections_per_worker=split,
        attempts=attempt,
        redis_round_trips_per_request=round_trips / requests_done,
        redis_calls_per_request={
            command: count / requests_done for command, count in sorted(calls.items())
        },
        think_ms=load.think_ms,
    )


def _wait_until_closed(service: Service, port: int) -> None:
    """Until the workers have closed an aborted attempt's connections, so that the next
    attempt's split counts its own only. That takes ~8 ms; the fixed pause of 0.2 s it
    replaces cost a run 17-45 s over its 85-227 restarts, and the share of attempts that
    land evenly is the same either way (~0.22 in 40 short phases each)."""
    workers = service.workers()
    deadline = time.monotonic() + CLOSE_WAIT_SECONDS
    while any(open_connections(workers, port)) and time.monotonic() < deadline:
        time.sleep(0.005)


def _wrk_argv(load: Load, skip: int) -> list[str]:
    script = WRK_DIR / ("paced.lua" if load.think_ms > 0 else "load.lua")
    argv = ["wrk", f"-t{load.threads}", f"-c{load.connections}"]
    argv += [f"-d{max(1, round(load.duration))}s", "--timeout", "10s", "-s", str(script)]
    for header in load.headers:
        argv += ["-H", header]
    argv += [load.url, "--", load.mode, str(load.data), str(skip)]
    if load.think_ms > 0:
        argv.append(f"{load.think_ms:.3f}")
    return argv


def _wrk_result(name: str, returncode: int, output: str) -> dict[str, Any]:
    line = next((ln for ln in output.splitlines() if ln.startswith(RESULT_MARK)), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({returncode}) in phase {name}:\n{output}")
    result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
    return result


def even_spread(split: list[int], connections: int) -> bool:
    """Every worker holds its share of the connections, give or take one."""
    if not split:
        return True
    share = connections / len(split)
    return sum(split) >= connections and all(abs(held - share) <= 1 for held in split)


def _redis_stats(client: redis.Redis) -> tuple[dict[str, int], int]:
    """Commands by name and client reads since CONFIG RESETSTAT, without this call's own."""
    info = client.info("stats", "commandstats")
    calls = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            command = key.removeprefix("cmdstat_")
            # The harness's CONFIG RESETSTAT and INFO are not the service's.
            if command not in {"info", "config|resetstat"}:
                calls[command] = int(value["calls"])
    return calls, int(info["total_reads_processed"]) - 1


def even_rounds(
    rounds: list[PhaseResult], measure_again: Callable[[int], PhaseResult]
) -> tuple[list[PhaseResult], list[PhaseResult]]:
    """The rounds to combine, and those set aside.

    While fewer rounds than planned are evenly spread, one more is measured
    (`measure_again(its number)`, numbered after the last), at most
    `UNEVEN_ROUND_REMEASURES` times. The first uneven rounds measured fill what is still
    missing, so a phase always lasts as planned and the report names its uneven spread.
    """
    measured = list(rounds)
    while (
        sum(r.evenly_spread for r in measured) < len(rounds)
        and len(measured) < len(rounds) + UNEVEN_ROUND_REMEASURES
    ):
        measured.append(measure_again(len(measured) + 1))
    missing = len(rounds) - sum(r.evenly_spread for r in measured)
    set_aside = [r for r in measured if not r.evenly_spread][missing:]
    kept = [r for r in measured if all(r is not aside for aside in set_aside)]
    return kept, set_aside


def combine_even_rounds(
    name: str, rounds: list[PhaseResult], measure_again: Callable[[int], PhaseResult]
) -> PhaseResult:
    """`rounds` combined, an unevenly spread one measured again first (`even_rounds`)."""
    kept, set_aside = even_rounds(rounds, measure_again)
    return combine_rounds(name, kept, set_aside)


def combine_rounds(
    name: str, rounds: list[PhaseResult], set_aside: list[PhaseResult] | None = None
) -> PhaseResult:
    """One result for several rounds of the same load: counts summed, rates and
    per-request costs weighted by requests, latency percentiles averaged. Rounds
    `set_aside` (see `even_rounds`) count only as attempts, and are listed."""
    set_aside = set_aside or []
    requests = sum(r.requests for r in rounds)
    seconds = sum(r.seconds for r in rounds)

    def weighted(value: Callable[[PhaseResult], float]) -> float:
        return sum(value(r) * r.requests for r in rounds) / max(1, requests)

    def mean(value: Callable[[PhaseResult], float]) -> float:
        return sum(value(r) for r in rounds) / len(rounds)

    calls = {key for r in rounds for key in r.redis_calls_per_request}
    return replace(
        rounds[0],
        name=name,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds,
        p50_ms=mean(lambda r: r.p50_ms),
        p90_ms=mean(lambda r: r.p90_ms),
        p99_ms=mean(lambda r: r.p99_ms),
        max_ms=max(r.max_ms for r in rounds),
        mean_ms=weighted(lambda r: r.mean_ms),
        errors={key: sum(r.errors[key] for r in rounds) for key in rounds[0].errors},
        server_cpu_us_per_request=weighted(lambda r: r.server_cpu_us_per_request),
        redis_cpu_us_per_request=weighted(lambda r: r.redis_cpu_us_per_request),
        wrk_cpu_share=max(r.wrk_cpu_share for r in rounds),
        other_cpu_share=max(r.other_cpu_share for r in rounds),
        steal_share=max(r.steal_share for r in rounds),
        # The least even round: an uneven one must show in the report.
        connections_per_worker=max(
            (r.connections_per_worker for r in rounds),
            key=lambda split: max(split) - min(split) if split else 0,
        ),
        # As for one run: the attempts beyond the first are the restarts (of every round,
        # and every attempt of a round set aside).
        attempts=sum(r.attempts for r in rounds + set_aside) - (len(rounds) - 1),
        rounds=[_round_summary(r) for r in rounds],
        set_aside=[_round_summary(r) for r in set_aside],
        redis_round_trips_per_request=weighted(lambda r: r.redis_round_trips_per_request),
        # In name order, as one run lists them: a set's order changes between runs.
        redis_calls_per_request={
            key: weighted(lambda r, key=key: r.redis_calls_per_request.get(key, 0.0))
            for key in sorted(calls)
        },
    )


def _round_summary(result: PhaseResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "server_cpu_us_per_request": result.server_cpu_us_per_request,
        "connections_per_worker": result.connections_per_worker,
    }
