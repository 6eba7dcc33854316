"""Where a request's CPU goes, counted: `make profile`.

The bench's req/s and CPU columns move by up to 25 % between runs on the 2-core machine,
and its bytecode table sees only the interpreter. This counts every user-space machine
instruction a request executes (valgrind's callgrind): the interpreter, the C code of
json, base64 and hashing, memory allocation, and the signatures in OpenSSL. The count
barely moves between runs whatever else the machine is doing (random ids and hash seeds
vary it by less than 0.1 %), so a change worth 1 % of a mint shows as 1 %. It leaves out
the kernel (system calls, the loopback network to Redis) and says nothing about how fast
each instruction runs (cache misses, locks, waits): the bench stays the judge of speed.

The apps are those of the bytecode table (bench/instructions.py): the HTTP floor app,
the least mint, trustpub's mint and its introspection, built as `trustpub serve` builds
the service and called as gunicorn calls them. Each one is warmed up, then its requests
run inside `sys.call_tracing`, the one call callgrind is told to collect (and to dump a
profile after), so start-up and warm-up are not counted. The mint is then counted again
with parts of it switched off (bench/parts.py): what each part costs.

    python -m bench.profile [--requests N] [--part-requests N] [--output profile.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .instructions import APPS, WARM_UP_REQUESTS, WSGICall, call, tokens_needed, workloads
from .parts import VARIANTS, switched_off, variant_label
from .procs import exit_on_termination

# Shared objects whose instructions are shown as their own column; the rest is "other".
OBJECTS = {
    "libpython3": "Python runtime",
    "_rust.abi3.so": "cryptography",
    "_json.": "json",
    "libc.so": "libc",
}
FUNCTIONS_LISTED = 15

# The most instructions per request each app may execute, as a multiple of the least mint's
# counted in the same run (docs/performance.md, *The mint's budget*): the mint held to its
# distance from the irreducible work (1.28x at the seventeenth session's end), introspection
# to a small fraction of it (0.15x). A count, not a time: the same code gives the same
# ratio within 0.1 % on a busy machine or a quiet one. `make test` fails above a budget;
# raise one only on purpose, in the commit that spends it, saying why.
BUDGETS_VS_LEAST_MINT = {"mint": 1.32, "introspect": 0.17}


def worker(spec_path: str) -> None:
    """Inside valgrind: each app warmed up, then its requests inside sys.call_tracing;
    then the mint again, once per variant with some of its parts switched off."""
    spec = json.loads(Path(spec_path).read_text())
    loads = workloads(spec)
    for name in APPS:
        _count(*loads[name], int(spec["requests"]))
    mint, environs = loads["mint"]
    for variant in VARIANTS:
        with switched_off(mint, variant):
            _count(mint, environs, int(spec["part_requests"]))


def _count(app: WSGICall, environs: Iterator[dict[str, Any]], requests: int) -> None:
    for _ in range(WARM_UP_REQUESTS):
        call(app, next(environs))
    prepared = [next(environs) for _ in range(requests)]
    sys.call_tracing(_serve, (app, prepared))


def _serve(app: WSGICall, environs: list[dict[str, Any]]) -> None:
    for environ in environs:
        call(app, environ)


def self_costs(lines: Iterable[str]) -> Counter[tuple[str, str]]:
    """Instructions each (object, function) executed itself, from a callgrind profile.

    The format names an object, file or function once, as `(id) name`, and by `(id)`
    after; the cost line after a `calls=` line is that call's inclusive cost, which
    belongs to the callee, not to the function making the call.
    """
    names: dict[tuple[str, str], str] = {}
    costs: Counter[tuple[str, str]] = Counter()
    current_object = function = function_object = ""
    after_call = False

    def name(space: str, value: str) -> str:
        ref, _, text = value.partition(" ")
        if not ref.startswith("("):
            return value
        if text:
            names[(space, ref)] = text
        return names.get((space, ref), ref)

    for line in lines:
        key, equals, value = line.rstrip("\n").partition("=")
        if equals and key in _NAMING:
            if key == "ob":
                current_object = name("ob", value)
            elif key == "fn":
                function, function_object = name("fn", value), current_object
            elif key == "calls":
                after_call = True
            else:  # cob, cfn, ...: an id defined here may be referred to later
                name(_NAMING[key], value)
            continue
        if line[:1] not in _POSITION_START:
            continue
        if after_call:
            after_call = False
            continue
        fields = line.split()
        if len(fields) >= 2:
            costs[(function_object, function)] += int(fields[1])
    return costs


# Each naming key of the format and the namespace its ids live in.
_NAMING = {
    "ob": "ob",
    "cob": "ob",
    "fn": "fn",
    "cfn": "fn",
    "cfi": "fl",
    "cfl": "fl",
    "fl": "fl",
    "fi": "fl",
    "fe": "fl",
    "calls": "",
}
# A cost line starts with its position: a number, or relative (+n, -n) or the same (*).
_POSITION_START = frozenset("0123456789+-*")


def _read(path: Path, requests: int) -> dict[str, Any]:
    with path.open() as profile:
        costs = self_costs(profile)
    by_object: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for (obj, function), cost in costs.items():
        label = next((label for part, label in OBJECTS.items() if part in obj), "other")
        by_object[label] += cost
        # callgrind names deeper recursion levels `f'2`, `f'3`: one function to a reader.
        library = Path(obj).name.split(".", 1)[0]  # libpython3, _json, _rust, libc, ...
        base_name = function.split("'")[0]
        by_function[f"{base_name} ({library})"] += cost
    return {
        "instructions": costs.total() / requests,
        "by_object": {label: cost / requests for label, cost in by_object.most_common()},
        "by_function": {key: cost / requests for key, cost in by_function.most_common(300)},
    }


def profile(requests: int, part_requests: int, work: Path) -> dict[str, Any]:
    from .run import SMOKE, Bench

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed: `make profile` installs it with apt")
    bench = Bench(SMOKE, work)
    try:
        bench.start()
        extra_mints = len(VARIANTS) * tokens_needed(part_requests)
        spec = bench.workload_spec(requests, bench.upload_token(int(time.time())), extra_mints)
        spec["part_requests"] = part_requests
        out = work / "callgrind.out"
        argv = [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--collect-atstart=no",
            "--toggle-collect=sys_call_tracing",
            "--dump-after=sys_call_tracing",
            sys.executable,
            "-m",
            "bench.profile",
            "--worker",
        ]
        bench.run_counter(argv, spec, bench.write_policies(10))
    finally:
        bench.close()
    # One dump per sys.call_tracing, in the order the worker ran the apps, then variants.
    return {
        "requests": requests,
        "apps": {
            name: _read(Path(f"{out}.{index}"), requests)
            for index, name in enumerate(APPS, start=1)
        },
        "part_requests": part_requests,
        "mint_without": {
            variant: _read(Path(f"{out}.{index}"), part_requests)
            for index, variant in enumerate(VARIANTS, start=len(APPS) + 1)
        },
    }


def over_budget(results: dict[str, Any]) -> dict[str, float]:
    """Each app above its budget, with its count as a multiple of the least mint's."""
    apps = results["apps"]
    least = apps["least_mint"]["instructions"]
    ratios = {name: apps[name]["instructions"] / least for name in BUDGETS_VS_LEAST_MINT}
    return {name: ratio for name, ratio in ratios.items() if ratio > BUDGETS_VS_LEAST_MINT[name]}


def render(results: dict[str, Any]) -> str:
    apps = results["apps"]
    least = apps["least_mint"]["instructions"]
    columns = [*OBJECTS.values(), "other"]
    lines = [
        f"User-space instructions per request (callgrind, {results['requests']} requests "
        "each after a warm-up; the kernel is not counted)",
        "",
        "| app | instructions | vs least mint | " + " | ".join(columns) + " |",
        "|---|---:|---:|" + "---:|" * len(columns),
    ]
    for name, label in APPS.items():
        app = apps[name]
        shares = " | ".join(f"{app['by_object'].get(column, 0):,.0f}" for column in columns)
        lines.append(
            f"| {label} | {app['instructions']:,.0f} | "
            f"{app['instructions'] / least:.2f}x | {shares} |"
        )
    over = over_budget(results)
    lines += [
        "",
        "Budgets, instructions per request as a multiple of the least mint's: "
        + ", ".join(
            f"{APPS[name]} at most {budget:.2f}x"
            + (f" (OVER: {over[name]:.2f}x)" if name in over else "")
            for name, budget in BUDGETS_VS_LEAST_MINT.items()
        )
        + (". Over budget." if over else ". Within them."),
        "",
        "Where the mint's instructions exceed the least mint's (per request):",
        "",
        "| function (object) | mint | least mint | more |",
        "|---|---:|---:|---:|",
    ]
    mint, least_functions = apps["mint"]["by_function"], apps["least_mint"]["by_function"]
    excess = sorted(mint, key=lambda key: least_functions.get(key, 0) - mint[key])
    for key in excess[:FUNCTIONS_LISTED]:
        other = least_functions.get(key, 0)
        lines.append(f"| {key} | {mint[key]:,.0f} | {other:,.0f} | {mint[key] - other:,.0f} |")
    return "\n".join([*lines, "", *_render_parts(results)])


def _render_parts(results: dict[str, Any]) -> list[str]:
    variants = results["mint_without"]
    whole = variants["nothing"]["instructions"]
    least = results["apps"]["least_mint"]["instructions"]
    lines = [
        f"The mint with parts switched off ({results['part_requests']} requests each; "
        "bench/parts.py):",
        "",
        "| mint without | instructions | saved | above the least mint |",
        "|---|---:|---:|---:|",
    ]
    for variant, counted in variants.items():
        count = counted["instructions"]
        saved, above = whole - count, count - least
        lines.append(f"| {variant_label(variant)} | {count:,.0f} | {saved:,.0f} | {above:,.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per app, after a warm-up")
    parser.add_argument(
        "--part-requests", type=int, default=50, help="per mint variant (parts switched off)"
    )
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    exit_on_termination()
    with tempfile.TemporaryDirectory(prefix="trustpub-profile-") as work:
        results = profile(args.requests, args.part_requests, Path(work))
    print(render(results), flush=True)
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
