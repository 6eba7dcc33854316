"""The table `make bench` prints: Markdown, so docs/performance.md can show it as it is."""

from __future__ import annotations

from typing import Any, NamedTuple

from .instructions import APPS
from .load import even_spread

# The targets on the 2-core machine.
MINT_THROUGHPUT_RATIO = 0.70
INTROSPECT_THROUGHPUT_RATIO = 0.85
HALF_PEAK_P99_RATIO = 3.0
CPU_OVER_CRYPTO_RATIO = 2.5
FLAT_SCALING = 0.10
# One round trip; requests still in flight when wrk stops are served but not counted,
# and each new connection says HELLO first, so a full run reads a little over 1.
ROUND_TRIPS = 1.05
# More than this many cores busy with other work during a phase makes its numbers suspect.
NOISY_NEIGHBOUR_CORES = 0.15

PHASE_ROWS = (
    ("HTTP floor: bare Flask, same gunicorn", "http_floor"),
    ("least mint: bare WSGI, verify, one Redis trip, sign", "least_mint"),
    ("mint", "mint"),
    ("introspection", "introspect"),
    ("mint at half its peak rate", "mint_half_peak"),
    ("HTTP floor offered that same rate", "http_floor_same_rate"),
)


class ScalingCase(NamedTuple):
    label: str  # its row in the scaling table
    small: str  # phase keys
    large: str
    kind: str  # "publishers" or "revocations": the counts come from results["scaling"]
    target: str  # its line in the targets table
    app: str  # the app whose bytecode instructions the small case has (results["instructions"])


# The scaling cases: small and large measured in alternation (bench.run.Bench.paired).
SCALING_CASES = (
    ScalingCase(
        "mint: publishers in policy files",
        "mint_few_publishers",
        "mint_many_publishers",
        "publishers",
        "mint p50, many vs few publishers",
        "mint",
    ),
    ScalingCase(
        "mint: registered publishers",
        "mint_few_registered",
        "mint_many_registered",
        "publishers",
        "mint p50, many registered vs few publishers",
        "mint",
    ),
    ScalingCase(
        "introspection: revocation entries",
        "introspect_no_revocations",
        "introspect_many_revocations",
        "revocations",
        "introspection p50, many vs no revocations",
        "introspect",
    ),
)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    phases = results["phases"]
    floor, mint, introspect = phases["http_floor"], phases["mint"], phases["introspect"]
    crypto = results["crypto_floor"]
    mint_cpu_above_floor = mint["server_cpu_us_per_request"] - floor["server_cpu_us_per_request"]
    return [
        _target(
            "mint req/s / HTTP floor req/s", mint["rps"] / floor["rps"], ">=", MINT_THROUGHPUT_RATIO
        ),
        _target(
            "introspection req/s / HTTP floor req/s",
            introspect["rps"] / floor["rps"],
            ">=",
            INTROSPECT_THROUGHPUT_RATIO,
        ),
        _target(
            "mint p99 at half its peak / HTTP floor p99",
            phases["mint_half_peak"]["p99_ms"] / floor["p99_ms"],
            "<",
            HALF_PEAK_P99_RATIO,
        ),
        _target(
            "mint CPU above the HTTP floor's / crypto floor",
            mint_cpu_above_floor / crypto["mint_us"],
            "<=",
            CPU_OVER_CRYPTO_RATIO,
        ),
        *(
            _target(
                case.target,
                _change(phases[case.large]["p50_ms"], phases[case.small]["p50_ms"]),
                "<",
                FLAT_SCALING,
                "%",
            )
            for case in SCALING_CASES
        ),
        _target(
            "Redis round trips per mint",
            mint["redis_round_trips_per_request"],
            "<=",
            ROUND_TRIPS,
            "n",
        ),
        _target(
            "Redis round trips per introspection",
            introspect["redis_round_trips_per_request"],
            "<=",
            ROUND_TRIPS,
            "n",
        ),
    ]


def _target(name: str, value: float, op: str, limit: float, unit: str = "x") -> dict[str, Any]:
    met = {">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]
    return {"name": name, "value": value, "op": op, "limit": limit, "unit": unit, "met": met}


def _change(value: float, base: float) -> float:
    """The size of the relative difference (flat scaling: either direction counts)."""
    return abs(value - base) / base if base else 0.0


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "n":
        return f"{value:.3f}"
    return f"{value:.2f}x"


def render(results: dict[str, Any]) -> str:
    phases = results["phases"]
    floor = phases["http_floor"]
    plan, machine = results["plan"], results["machine"]
    scaling = results["scaling"]
    names = {
        "publishers": f"{scaling['publishers']['large']:,}",
        "revocations": f"{scaling['revocations']['large']:,}",
    }
    lines = [
        f"trustpub bench {results['started_at']}: {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}, {machine['redis_server'].split(' sha=')[0]}, "
        f"hiredis {machine['packages'].get('hiredis') or 'no'}; gunicorn gthread "
        f"{plan['workers']} workers x {plan['threads']} threads; wrk {plan['connections']} "
        f"connections, {plan['duration']:g} s per phase",
        "",
        "| phase | req/s | p50 ms | p99 ms | CPU us/req | Redis trips/req | vs floor | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in PHASE_ROWS:
        phase = phases[key]
        trips = phase["redis_round_trips_per_request"] if phase["redis_calls_per_request"] else None
        lines.append(
            f"| {label.format(**names)} | {phase['rps']:,.0f} | {phase['p50_ms']:.2f} | "
            f"{phase['p99_ms']:.2f} | {phase['server_cpu_us_per_request']:,.0f} | "
            f"{'-' if trips is None else f'{trips:.3f}'} | {phase['rps'] / floor['rps']:.2f} | "
            f"{phase['other_cpu_share']:.2f} |"
        )

    crypto, redis_floor = results["crypto_floor"], results["redis_floor"]
    lines += [
        "",
        "| floor | per operation |",
        "|---|---:|",
        f"| RS256 verify of a CI token ({crypto['ci_token_bytes']} bytes) | "
        f"{crypto['rs256_verify_us']:.1f} us |",
        f"| Ed25519 sign of an upload token ({crypto['upload_token_bytes']} bytes) | "
        f"{crypto['ed25519_sign_us']:.1f} us |",
        f"| crypto floor of a mint (the two above) | {crypto['mint_us']:.1f} us |",
        f"| Ed25519 verify of an upload token (crypto floor of an introspection) | "
        f"{crypto['ed25519_verify_us']:.1f} us |",
        f"| one Redis round trip: PING through redis-py | {redis_floor['ping_us']:.1f} us |",
    ]

    lines += ["", *_instruction_lines(results["instructions"], phases)]

    lines += [
        "",
        "| scaling (small and large in alternation) | small | large | p50 ms | p99 ms | req/s "
        "| CPU us/req | bytecode instructions |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in SCALING_CASES:
        small, large = phases[case.small], phases[case.large]
        small_work = results["instructions"][case.app]["instructions"]
        lines.append(
            f"| {case.label} | {scaling[case.kind]['small']:,} | {names[case.kind]} | "
            f"{small['p50_ms']:.2f} -> {large['p50_ms']:.2f} | "
            f"{small['p99_ms']:.2f} -> {large['p99_ms']:.2f} | "
            f"{small['rps']:,.0f} -> {large['rps']:,.0f} | "
            f"{small['server_cpu_us_per_request']:,.0f} -> "
            f"{large['server_cpu_us_per_request']:,.0f} | "
            f"{small_work:,.0f} -> {scaling['instructions'][case.large]:,.0f} |"
        )

    memory, cold = results["memory"], results["cold_start"]
    lines += [
        "",
        "| Redis memory | bytes |",
        "|---|---:|",
        f"| replay record (`trustpub:jti:*`), MEMORY USAGE | {memory['replay_record_bytes']:.0f} |",
        f"| revocation entry (`trustpub:rev:*`), MEMORY USAGE | "
        f"{memory['revocation_entry_bytes']} |",
        f"| used_memory growth per mint (all a mint writes) | "
        f"{memory['replay_used_memory_per_record']:.0f} |",
        f"| used_memory growth per revocation entry, {names['revocations']} filled | "
        f"{memory['revocation_used_memory_per_entry']:.0f} |",
        "",
        "| start-up | |",
        "|---|---:|",
        f"| {scaling['publishers']['small']:,} publishers: start until /healthz answers | "
        f"{scaling['ready_s']['small']:.2f} s |",
        f"| {names['publishers']} publishers: start until /healthz answers | "
        f"{scaling['ready_s']['large']:.2f} s |",
        f"| first mint, key set not fetched yet (discovery + JWKS over HTTPS) | "
        f"{cold['first_mint_ms']:.1f} ms |",
        f"| start until the first successful mint | {cold['time_to_first_mint_s']:.2f} s |",
        "",
        "| target | measured | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for target in results["targets"]:
        lines.append(
            f"| {target['name']} | {_fmt(target['value'], target['unit'])} | "
            f"{target['op']} {_fmt(target['limit'], target['unit'])} | "
            f"{'yes' if target['met'] else '**no**'} |"
        )

    lines.append("")
    for label, key in (("mint", "mint"), ("introspection", "introspect")):
        calls = phases[key]["redis_calls_per_request"]
        listed = ", ".join(f"{name} {count:.2f}" for name, count in calls.items() if count > 0.05)
        lines.append(f"Redis commands per {label}, those its Lua scripts run included: {listed}.")
    least, mint = phases["least_mint"], phases["mint"]
    least_cpu = least["server_cpu_us_per_request"]
    # Redis shares the machine's cores with the workers: its CPU per request is the
    # mint's too (the claim script's share of it is trustpub's choice).
    redis_more = mint["redis_cpu_us_per_request"] - least["redis_cpu_us_per_request"]
    lines.append(
        f"mint vs the least mint: {mint['rps'] / least['rps']:.2f}x its req/s, "
        f"{mint['server_cpu_us_per_request'] - least_cpu:,.0f} us more CPU per request "
        f"(trustpub's own logic) and {redis_more:,.0f} us more of Redis's. "
        "The least mint's CPU above the HTTP floor's: "
        f"{(least_cpu - floor['server_cpu_us_per_request']) / crypto['mint_us']:.1f}x the "
        "crypto floor."
    )
    same_rate = phases["http_floor_same_rate"]
    wrk_share = max(phase["wrk_cpu_share"] for phase in phases.values())
    other = max(phase["other_cpu_share"] for phase in phases.values())
    lines += [
        f"mint p99 at half its peak vs the HTTP floor offered the same rate: "
        f"{phases['mint_half_peak']['p99_ms'] / same_rate['p99_ms']:.2f}x. Mint CPU in all: "
        f"{phases['mint']['server_cpu_us_per_request'] / crypto['mint_us']:.1f}x the crypto floor.",
        f"wrk used at most {wrk_share:.0%} of a core in any phase; the run took "
        f"{results['duration_s']:.0f} s.",
        spread_line(phases),
    ]
    if other > NOISY_NEIGHBOUR_CORES:
        lines.append(
            f"WARNING: other processes used up to {other:.2f} cores during a phase "
            "(column 'other CPU'): those numbers are disturbed; run again on a quiet machine."
        )
    return "\n".join(lines)


def spread_line(phases: dict[str, Any]) -> str:
    """How wrk's connections landed on the workers: the phases still uneven, the attempts
    restarted, and the rounds set aside and measured again."""
    uneven = [
        f"{key} {_split(phase)}"
        for key, phase in phases.items()
        if not even_spread(phase["connections_per_worker"], phase["connections"])
    ]
    retried = sum(phase["attempts"] - 1 for phase in phases.values())
    set_aside = [
        f"{key} {_split(aside)}" for key, phase in phases.items() for aside in phase["set_aside"]
    ]
    measured_again = f"; rounds set aside and measured again: {', '.join(set_aside)}"
    return (
        "wrk's connections were spread evenly over the workers in every phase but "
        f"{', '.join(uneven) or 'none'} ({retried} attempt(s) restarted for an uneven spread"
        f"{measured_again if set_aside else ''})."
    )


def _split(phase: dict[str, Any]) -> str:
    return "/".join(map(str, phase["connections_per_worker"]))


MODULES_LISTED = 12


def _instruction_lines(counted: dict[str, Any], phases: dict[str, Any]) -> list[str]:
    """The work per request in-process (the app's own, gunicorn's left out) beside the
    CPU per request of the same app's phase under gunicorn; the difference is what
    serving a request costs around the app."""
    least = counted["least_mint"]["instructions"]
    lines = [
        "| per request, in-process (gunicorn's own left out) | bytecode instructions "
        "| vs least mint | thread CPU us | under gunicorn, CPU us | around the app, us |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in APPS.items():
        count = counted[key]["instructions"]
        in_process = counted[key]["thread_cpu_us"]
        served = phases[key]["server_cpu_us_per_request"]
        lines.append(
            f"| {label} | {count:,.0f} | {count / least:.2f}x | {in_process:,.0f} | "
            f"{served:,.0f} | {served - in_process:,.0f} |"
        )
    floor_app = counted["http_floor"]["thread_cpu_us"]
    served = phases["http_floor"]["server_cpu_us_per_request"]
    lines += [
        "",
        f"The HTTP floor's app did {floor_app / served:.0%} of the floor's CPU per request "
        f"in-process; the other {served - floor_app:,.0f} us went to serving it under "
        "gunicorn (its HTTP parser, the sockets, handing each connection between its "
        "threads, the threads sharing the cores), which every app pays.",
    ]
    modules = counted["mint"]["by_module"]
    listed = ", ".join(
        f"{name} {count:,}" for name, count in list(modules.items())[:MODULES_LISTED]
    )
    lines += ["", f"The mint's instructions by module: {listed}."]
    return lines
