"""Interpreter work per request: the bytecode instructions one request executes, counted.

Time on the 2-core machine moves by up to 25 % between runs of the same code, so a part
of a mint worth less than ~100 us of CPU cannot be weighed in req/s. The number of
bytecode instructions a request executes moves by a few at most (random ids): a change
that removes 500 of them shows as 500 fewer, on any machine. It counts the interpreter's
work only; what C code does inside one instruction (a signature, json's C scanner, a
dict lookup) is invisible here, so it says where the Python work goes, by module;
`make profile` (bench/profile.py) counts the machine instructions, and the CPU columns
of the phases stay the judge of speed.

Each app is called as gunicorn calls it (a WSGI call, in-process: gunicorn's own work is
left out), warmed up first; the count is the median over several requests, by module
(the dataclass `__init__`s a module defines count as that module's). When the spec asks,
each app's thread CPU per request is then timed in the same process
(`thread_cpu_per_request`): set beside the app's CPU under gunicorn, it shows how much
of a request's cost is gunicorn's rather than the app's. Run by `bench.run` in a process
of its own, with the service's environment, as `python -m bench.instructions SPEC_JSON`;
it prints JSON.
"""

from __future__ import annotations

import io
import json
import logging
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Python 3.11 quickens a function after its eighth call and specialises its instructions
# on the calls after: with 5 warm-up requests the mint's first counted requests still paid
# ~330,000 instructions of it (8 % more per request when 3 were counted).
WARM_UP_REQUESTS = 20
# The apps counted (keys of `workloads`, in the order tables list them) and their labels.
APPS = {
    "http_floor": "HTTP floor app",
    "least_mint": "least mint",
    "mint": "mint",
    "introspect": "introspection",
}

WSGICall = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def count_instructions(call: Callable[[], object]) -> Counter[str]:
    """The bytecode instructions `call()` executes in this thread, by module."""
    counts: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, _arg: object) -> Any:
        if event == "call":
            frame.f_trace_lines = False
            frame.f_trace_opcodes = True
        elif event == "opcode":
            counts[frame.f_globals.get("__name__") or "?"] += 1
        return trace

    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
    counts.pop(__name__, None)  # the harness's own lines around the call
    return counts


def per_request(app: WSGICall, environs: Iterator[dict[str, Any]], requests: int) -> dict[str, Any]:
    """Median instructions per request over `requests` calls after a warm-up, and the
    modules of the median request."""
    for _ in range(WARM_UP_REQUESTS):
        call(app, next(environs))
    # Made before counting: a request's body built inside the count (the mint's is
    # json.dumps of its token) counted the harness's json encoding as the app's work.
    prepared = [next(environs) for _ in range(requests)]
    counted = sorted(
        (count_instructions(partial(call, app, environ)) for environ in prepared),
        key=lambda counts: counts.total(),
    )
    median = counted[len(counted) // 2]
    return {
        "instructions": statistics.median(counts.total() for counts in counted),
        "min": counted[0].total(),
        "max": counted[-1].total(),
        "by_module": dict(median.most_common()),
    }


def call(app: WSGICall, environ: dict[str, Any]) -> None:
    """One request, as gunicorn makes it; anything but a 200 stops the count."""
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, _headers, *_: statuses.append(status)))
    if not statuses or not statuses[0].startswith("200"):
        # A refused request runs other code: counting it would measure the wrong thing.
        raise RuntimeError(f"{environ['PATH_INFO']}: {statuses} {body[:300]!r}")


def wsgi_environ(
    path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


Workload = tuple[WSGICall, Iterator[dict[str, Any]]]


def workloads(spec: dict[str, Any]) -> dict[str, Workload]:
    """The apps to count, built as `trustpub serve` builds the service (JSON log lines,
    metrics in multiprocess files), each with the requests to send it: the HTTP floor
    app, the least mint (one token, which it never refuses), trustpub's mint (a fresh
    token each time) and its introspection of one upload token."""
    from app.metrics import enable_multiprocess
    from app.observability import configure_logging
    from app.wiring import create_app

    from .floor_app import create_floor_app
    from .least_mint import create_least_mint_app

    configure_logging(json_lines=True)
    enable_multiprocess(Path(spec["metrics_dir"]))
    trustpub = create_app()
    public_key = serialization.load_pem_public_key(Path(spec["public_key"]).read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    least = create_least_mint_app(public_key, spec["redis_url"])
    json_type, form = "application/json", "application/x-www-form-urlencoded"

    def repeat(make: Callable[[], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        while True:
            yield make()

    mint_bodies = (json.dumps({"token": token}).encode() for token in spec["mint_tokens"])
    least_body = json.dumps({"token": spec["mint_tokens"][0]}).encode()
    introspect_body = ("token=" + spec["upload_token"]).encode()
    auth = {"Authorization": spec["authorization"]}
    return {
        "http_floor": (
            create_floor_app(),
            repeat(lambda: wsgi_environ("/floor", b'{"token": "x"}', json_type)),
        ),
        "least_mint": (
            least,
            repeat(lambda: wsgi_environ(spec["mint_path"], least_body, json_type)),
        ),
        "mint": (
            trustpub,
            (wsgi_environ(spec["mint_path"], body, json_type) for body in mint_bodies),
        ),
        "introspect": (
            trustpub,
            repeat(lambda: wsgi_environ(spec["introspect_path"], introspect_body, form, auth)),
        ),
    }


def thread_cpu_per_request(
    apps: dict[str, Workload],
    rounds: int,
    per_round: int,
    clock: Callable[[], float] = time.thread_time,
) -> dict[str, float]:
    """Each app's median thread CPU per request in-process, in microseconds: its own work,
    its Redis round trip's system calls included, without gunicorn's. The apps take turns,
    `per_round` requests each, so that a slow spell of the machine falls on all of them."""
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, (app, environs) in apps.items():
            prepared = [next(environs) for _ in range(per_round)]
            started = clock()
            for environ in prepared:
                call(app, environ)
            samples[name].append((clock() - started) / per_round * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Count the apps the spec names (`apps`; all of `APPS` when it names none), then time
    them in-process when the spec asks for `cpu_rounds` (after the counts: warm)."""
    requests = int(spec["requests"])
    counted = spec.get("apps") or list(APPS)
    apps = {name: workload for name, workload in workloads(spec).items() if name in counted}
    results = {name: per_request(app, environs, requests) for name, (app, environs) in apps.items()}
    rounds = int(spec["cpu_rounds"])
    if rounds:
        timed = thread_cpu_per_request(apps, rounds, int(spec["cpu_requests_per_round"]))
        for name, cpu_us in timed.items():
            results[name]["thread_cpu_us"] = cpu_us
    logging.shutdown()
    return results


def tokens_needed(requests: int) -> int:
    return WARM_UP_REQUESTS + requests


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(measure(spec)))


if __name__ == "__main__":
    main()
