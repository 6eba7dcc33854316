"""`make bench`: trustpub against its floors, in one run on one machine.

    .venv/bin/python -m bench.run            # the full run (about 3 minutes on 2 cores)
    .venv/bin/python -m bench.run --smoke    # tiny numbers: checks that the harness works

It starts a real redis-server, a real HTTPS OIDC issuer (tests/support), a bare Flask
app under trustpub's gunicorn settings (the HTTP floor) and `trustpub serve` itself,
drives them with wrk, prints a table and writes `bench/results.json`.

Phases, in order; every load phase runs wrk at one fixed concurrency:
 1. floors: crypto and one Redis round trip (in-process);
 2. a fresh service with 10 publishers: its first mint, with the issuer's key set not
    fetched yet; then the HTTP floor, the least mint, the mint and introspection at their
    peaks, in rotation (the ratios the targets are written in come from these four);
 3. a service with 100,000 publishers: its start-up, then mint at peak;
 4. mint at half its peak rate, and the HTTP floor offered that same rate;
 5. introspection at peak with no revocation entries, then with 1,000,000.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis
import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parent.parent
# The test suite's real servers (redis-server, an HTTPS OIDC issuer) are the bench's too.
sys.path.insert(0, str(ROOT / "tests"))

from helm.runtime_lock import runtime_closure, runtime_requirements  # noqa: E402
from support.oidc_issuer import OIDCIssuer  # noqa: E402
from support.ports import free_port  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.tls import TestCA  # noqa: E402

from app.tokens.keys import load_key_ring  # noqa: E402
from app.tokens.mint import UploadTokenMinter  # noqa: E402
from app.tokens.scopes import token_scope  # noqa: E402

from . import report  # noqa: E402
from .floors import crypto_floor, redis_floor  # noqa: E402
from .instructions import tokens_needed  # noqa: E402
from .load import (  # noqa: E402
    Load,
    PhaseResult,
    TokensExhausted,
    combine_even_rounds,
    run_phase,
)
from .procs import Service, exit_on_termination  # noqa: E402
from .tokens import TokenFactory, cpu_count  # noqa: E402

AUDIENCE = "bench.trustpub.example"
MINT_PATH = "/_/oidc/mint-token"
INTROSPECT_PATH = "/oauth/introspect"
FLOOR_PATH = "/floor"
EPOCH_KEY = "trustpub:epoch"
# All load comes from one address and one publisher: limits far above what is reached
# keep the limiters' per-request work in the measurement without refusing requests.
UNREACHED_RATE_LIMIT = "1000000/second"
# The publisher the tokens match is octo-org/demo's release.yml (support.claims); the
# others are look-alikes in other repositories, so the lookup has a real index to search.
# Databases of the large cases, beside the small service's 0.
REVOKED_DB = 1
REGISTERED_DB = 2
PUBLISHERS_DB = 3

# Rounds per side when a small and a large case are measured in alternation.
PAIRED_ROUNDS = 2
# Tokens after a warm-up are made for this multiple of its rate (then the plan's margin):
# the measured phase may run faster than its warm-up did.
WARMED_RATE_ROOM = 1.5
# The same for the rounds of a scaling pair, over the faster of the mint phase and the
# large side's warm-up: restarts for an uneven spread use tokens too.
PAIRED_RATE_ROOM = 1.25

DEMO = {"repository": "octo-org/demo", "owner_id": "65", "repository_id": "74"}


@dataclass(frozen=True)
class Plan:
    duration: float = 8.0  # seconds of each measured load phase
    # The HTTP floor, the least mint, the mint and introspection are measured in this
    # many rounds of duration / rounds seconds each, in rotation (Bench.rotation).
    rotation_rounds: int = 4
    warmup: float = 2.0  # seconds of unrecorded load before a phase on a fresh service
    connections: int = 8  # wrk's fixed concurrency
    wrk_threads: int = 1
    workers: int = 2  # gunicorn, as `trustpub serve --workers`
    threads: int = 4  # gunicorn, as `trustpub serve --threads` (its default)
    small_publishers: int = 10
    large_publishers: int = 100_000
    large_revocations: int = 1_000_000
    crypto_iterations: int = 2000
    redis_iterations: int = 2000
    # Fresh tokens per phase: the expected peak rate x seconds x this margin (room for
    # the tokens each restart for an uneven spread skips, ~0.1 s of traffic). A phase
    # that runs out is measured again with twice as many, never on replays.
    token_margin: float = 1.4
    # Requests whose bytecode instructions are counted, per app (the median is reported).
    instruction_requests: int = 21
    # Then each app's thread CPU in-process, without gunicorn: this many rounds of this
    # many requests per app, the apps taking turns (the median round is reported).
    cpu_rounds: int = 9
    cpu_requests_per_round: int = 60


SMOKE = Plan(
    duration=1.0,
    rotation_rounds=2,
    warmup=1.0,
    connections=4,
    small_publishers=3,
    large_publishers=200,
    large_revocations=2000,
    crypto_iterations=20,
    redis_iterations=20,
    token_margin=3.0,
    instruction_requests=3,
    cpu_rounds=2,
    cpu_requests_per_round=3,
)


class Bench:
    """Everything one run starts, and the phases that use it."""

    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.bin = Path(sys.executable).parent
        self.services: list[Service] = []
        self.stack = contextlib.ExitStack()

    # -- infrastructure ------------------------------------------------------------------

    def start(self) -> None:
        self.redis_server = RedisServer(self.work / "redis")
        self.redis_server.start()
        self.stack.callback(self.redis_server.stop)
        self.redis = self.redis_server.client()
        self.stack.callback(self.redis.close)
        self.redis_pid = int(self.redis.info("server")["process_id"])
        # A deployment that has run for an hour: the tokens made from now on are newer
        # than its epoch (app.exchange refuses a token issued before its first minute ended).
        self.redis.set(EPOCH_KEY, f"bench:{int(time.time()) - 3600}")

        ca = TestCA.create(self.work / "ca")
        self.ca_path = ca.ca_path
        self.issuer = OIDCIssuer(ca)
        self.issuer.start()
        self.stack.callback(self.issuer.stop)
        kid = self.issuer.current_kid
        self.tokens = TokenFactory(
            self.issuer.private_key(kid), kid, self.issuer.url, AUDIENCE, cpu_count()
        )
        self.stack.callback(self.tokens.close)

        self.keys_dir = self.work / "keys"
        self.trustpub("keys", "generate", "--dir", str(self.keys_dir))
        self.clients_file = self.work / "clients.toml"
        secret = self.trustpub(
            "clients", "add", "bench", "--scope", "introspect", "--file", str(self.clients_file)
        ).strip()
        credentials = base64.b64encode(f"bench:{secret}".encode()).decode()
        self.introspect_auth = ("Authorization", f"Basic {credentials}")

    def close(self) -> None:
        for service in self.services:
            service.stop()
        self.stack.close()

    def trustpub(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(  # noqa: S603 (the venv's own trustpub command)
            [str(self.bin / "trustpub"), *args],
            env=env or self.base_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"trustpub {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def base_env(self) -> dict[str, str]:
        # Nothing from the caller's trustpub configuration leaks into what is measured.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTPUB_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env["PYTHONPATH"] = str(ROOT)
        return env

    def service_env(self, name: str, policies: Path, db: int = 0) -> dict[str, str]:
        return {
            **self.base_env(),
            "TRUSTPUB_AUDIENCE": AUDIENCE,
            "TRUSTPUB_SIGNING_KEYS": str(self.keys_dir),
            "TRUSTPUB_REDIS_URL": self.redis_url(db),
            "TRUSTPUB_POLICIES_DIR": str(policies),
            "TRUSTPUB_GITHUB_ISSUERS": self.issuer.url,
            "TRUSTPUB_CLIENTS_FILE": str(self.clients_file),
            "TRUSTPUB_MINT_RATE_LIMIT": UNREACHED_RATE_LIMIT,
            "TRUSTPUB_PUBLISHER_RATE_LIMIT": UNREACHED_RATE_LIMIT,
            "TRUSTPUB_INTROSPECT_RATE_LIMIT": UNREACHED_RATE_LIMIT,
            "PROMETHEUS_MULTIPROC_DIR": str(self.work / f"metrics-{name}"),
            "REQUESTS_CA_BUNDLE": str(self.ca_path),
        }

    def write_policies(self, count: int, suffix: str = "") -> Path:
        directory = self.work / f"policies-{count}{suffix}"
        directory.mkdir()
        lines = []
        for index in range(count):
            demo = index == 0
            lines += [
                "[[publisher]]",
                'provider = "github"',
                f'issuer = "{self.issuer.url}"',
                f'repository = "{DEMO["repository"] if demo else f"org-{index}/repo-{index}"}"',
                f'repository_owner_id = "{DEMO["owner_id"] if demo else 1000 + index}"',
                f'repository_id = "{DEMO["repository_id"] if demo else 10_000 + index}"',
                'workflow = "release.yml"',
                'environment = "pypi"',
                f'projects = ["{"demo-pkg" if demo else f"project-{index}"}"]',
                "",
            ]
        (directory / "publishers.toml").write_text("\n".join(lines))
        return directory

    def upload_token(self, now: int) -> str:
        """An upload token as the service mints it, made in-process with the bench's key."""
        minter = UploadTokenMinter(
            load_key_ring(self.keys_dir),
            issuer=f"urn:trustpub:{AUDIENCE}",
            audience=f"urn:trustpub:upload:{AUDIENCE}",
            ttl=900,
            prefix="",
        )
        identity = {
            "provider": "github",
            "issuer": self.issuer.url,
            "repository": DEMO["repository"],
            "repository_id": DEMO["repository_id"],
            "repository_owner_id": DEMO["owner_id"],
            "workflow": "release.yml",
            "job_workflow_ref": "octo-org/demo/.github/workflows/release.yml@refs/tags/v1.0.0",
            "environment": "pypi",
            "ref": "refs/tags/v1.0.0",
            "sha": "8d1c1f3c2b7f4a9e0d6b5a4c3e2f1a0b9c8d7e6f",
            "event_name": "push",
            "run_id": "8105469023",
            "run_attempt": "1",
        }
        return minter.mint(frozenset({"demo-pkg"}), identity, "0123456789abcdef:1", now).token

    def real_revocation_key(self) -> str:
        """Revoke a jti with the real `trustpub tokens revoke`; the key it wrote."""
        jti = "bench-memory-probe-00024"  # as long as a minted one
        env = self.service_env("cli", self.work)
        env.pop("PROMETHEUS_MULTIPROC_DIR")  # a CLI run counts nothing
        self.trustpub("tokens", "revoke", "--jti", jti, env=env)
        key = "trustpub:" + token_scope(jti)
        if not self.redis.exists(key):
            raise RuntimeError(f"trustpub tokens revoke did not write {key}")
        return key

    # -- services ------------------------------------------------------------------------

    def start_trustpub(self, name: str, policies: Path, db: int = 0) -> tuple[Service, str]:
        port = free_port()
        argv = [str(self.bin / "trustpub"), "serve", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", str(self.plan.workers), "--threads", str(self.plan.threads)]
        return self._service(
            name, argv, self.service_env(name, policies, db)
        ), f"http://127.0.0.1:{port}"

    def redis_url(self, db: int) -> str:
        return self.redis_server.url.rsplit("/", 1)[0] + f"/{db}"

    def store(self, db: int) -> redis.Redis:
        """A client of database `db`, holding the same epoch as database 0.

        Each large case has its own database, so the small service keeps running
        beside it (registrations in its database would make it reload them) and the
        two are measured in alternation; the shared epoch keeps upload tokens valid.
        """
        client = redis.Redis.from_url(self.redis_url(db))
        self.stack.callback(client.close)
        client.set(EPOCH_KEY, self.redis.get(EPOCH_KEY) or b"")
        return client

    def start_floor(self) -> tuple[Service, str]:
        port = free_port()
        argv = self._floor_argv("bench.floor_app", port)
        return self._service("floor", argv, self.base_env()), f"http://127.0.0.1:{port}"

    def issuer_public_key_file(self) -> Path:
        """The CI issuer's current public key, PEM: what the least mint verifies with."""
        public_key = self.work / "ci-issuer-public-key.pem"
        public_key.write_bytes(
            self.issuer.private_key(self.issuer.current_kid)
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        return public_key

    def start_least_mint(self) -> tuple[Service, str]:
        port = free_port()
        argv = self._floor_argv("bench.least_mint", port)
        argv += [
            "--public-key",
            str(self.issuer_public_key_file()),
            "--redis-url",
            self.redis_url(0),
        ]
        return self._service("least-mint", argv, self.base_env()), f"http://127.0.0.1:{port}"

    def workload_spec(
        self, requests: int, upload_token: str, extra_mints: int = 0
    ) -> dict[str, Any]:
        """What bench/instructions.py needs to build its apps and their requests
        (`extra_mints`: tokens for that many more mints, after the counted ones)."""
        mints = tokens_needed(requests) + extra_mints
        return {
            "requests": requests,
            "mint_tokens": self.tokens.many(mints, int(time.time())),
            "upload_token": upload_token,
            "authorization": self.introspect_auth[1],
            "public_key": str(self.issuer_public_key_file()),
            "redis_url": self.redis_url(0),
            "metrics_dir": str(self.work / "metrics-counted"),
            "mint_path": MINT_PATH,
            "introspect_path": INTROSPECT_PATH,
        }

    def run_counter(
        self, argv: list[str], spec: dict[str, Any], policies: Path, db: int = 0
    ) -> str:
        """Run a counting process (`argv` + the spec's path) with a service's environment:
        the small service's unless `policies` and `db` say otherwise; its standard output."""
        spec_path = self.work / "workload.json"
        spec_path.write_text(json.dumps(spec))
        log = self.work / "counter.log"
        with log.open("wb") as stderr:
            done = subprocess.run(  # noqa: S603 (the bench's own modules)
                [*argv, str(spec_path)],
                env=self.service_env("counted", policies, db),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=600,
                check=False,
            )
        if done.returncode != 0:
            module = argv[argv.index("-m") + 1]
            raise RuntimeError(f"{module} failed:\n{log.read_text()[-3000:]}")
        return done.stdout

    def count_instructions(
        self,
        policies: Path,
        upload_token: str,
        db: int = 0,
        apps: tuple[str, ...] = (),
        timed: bool = False,
    ) -> dict[str, Any]:
        """Bytecode instructions per request (bench/instructions.py) of `apps` (all when
        empty), in a process of its own built like the service of `policies` and `db`;
        `timed`: also each app's thread CPU per request in-process."""
        plan = self.plan
        rounds = plan.cpu_rounds if timed else 0
        extra_mints = rounds * plan.cpu_requests_per_round
        spec = {
            **self.workload_spec(plan.instruction_requests, upload_token, extra_mints),
            "apps": apps,
            "cpu_rounds": rounds,
            "cpu_requests_per_round": plan.cpu_requests_per_round,
        }
        argv = [sys.executable, "-m", "bench.instructions"]
        output = self.run_counter(argv, spec, policies, db)
        counted: dict[str, Any] = json.loads(output)
        return counted

    def _floor_argv(self, module: str, port: int) -> list[str]:
        """A floor's command: its module, with the options `trustpub serve` would get."""
        workers, threads = str(self.plan.workers), str(self.plan.threads)
        bind = f"127.0.0.1:{port}"
        return [
            sys.executable,
            "-m",
            module,
            "--bind",
            bind,
            "--workers",
            workers,
            "--threads",
            threads,
        ]

    def _service(self, name: str, argv: list[str], env: dict[str, str]) -> Service:
        service = Service(name, argv, env, self.work / f"{name}.log", ROOT)
        self.services.append(service)
        return service

    # -- load ----------------------------------------------------------------------------

    def load(self, url: str, mode: str, data: Path, **changes: Any) -> Load:
        plan = self.plan
        load = Load(url, plan.connections, plan.wrk_threads, plan.duration, mode, data)
        return replace(load, **changes)

    def token_files(self, name: str, rate: float, seconds: float) -> Path:
        count = math.ceil(rate * seconds * self.plan.token_margin) + 50 * self.plan.connections
        prefix = self.work / f"tokens-{name.replace(' ', '-').replace(',', '')}"
        tokens = self.tokens.many(count, int(time.time()))
        self.tokens.write_per_thread(tokens, prefix, self.plan.wrk_threads)
        return prefix

    def mint_phase(
        self,
        name: str,
        service: Service,
        url: str,
        expected_rps: float,
        *,
        think_ms: float = 0.0,
        duration: float | None = None,
        warmup: bool = False,
        tokens: Path | None = None,
    ) -> PhaseResult:
        """A measured mint run (after a warm-up at peak if asked), each with fresh tokens
        (`tokens`, when given, are fresh to this service but signed already).

        After a warm-up, tokens are made for the rate it reached (with room to spare),
        not `expected_rps`: an upper bound such as the HTTP floor's rate made 2.5x the
        tokens a mint phase needs, and signing them took a tenth of the run.
        """
        if warmup:
            warmed = self.warm_up(name, service, url, expected_rps)
            if warmed is not None:
                expected_rps = min(expected_rps, WARMED_RATE_ROOM * warmed.rps)
        duration = duration or self.plan.duration

        def measure(prefix: Path) -> PhaseResult:
            load = self.load(
                url + MINT_PATH, "tokens", prefix, think_ms=think_ms, duration=duration
            )
            return _succeeded(run_phase(name, load, service, self.redis, self.redis_pid))

        try:
            return measure(tokens or self.token_files(name, expected_rps, duration))
        except TokensExhausted:
            # Faster than expected, or many restarts for an uneven spread: once more,
            # with tokens for twice the rate.
            _progress(f"{name}: the tokens ran out; again with twice as many")
            return measure(self.token_files(name, 2 * expected_rps, duration))

    def warm_up(
        self, name: str, service: Service, url: str, expected_rps: float
    ) -> PhaseResult | None:
        """Mint for the warm-up time; its result, or None when its tokens ran out (a warm-up
        only has to warm: it is never measured again)."""
        tokens = self.token_files(f"{name}-warmup", expected_rps, self.plan.warmup)
        load = self.load(url + MINT_PATH, "tokens", tokens, duration=self.plan.warmup)
        try:
            return run_phase(f"{name} (warm-up)", load, service)
        except TokensExhausted:
            return None

    def paired(
        self,
        names: tuple[str, str],
        measure: tuple[Callable[[str, int], PhaseResult], Callable[[str, int], PhaseResult]],
    ) -> tuple[PhaseResult, PhaseResult]:
        """The small and the large case, measured in alternation (A B B A ...).

        Measured one after the other, the later phase ran on a warmer (or busier)
        machine, which moved the comparison by 10-20 % either way between runs; in
        alternation a drift hits both cases alike. Each side runs `PAIRED_ROUNDS`
        rounds that together last one phase (and measures an unevenly spread round
        again, after the others: `even_rounds`).
        """
        rounds: tuple[list[PhaseResult], list[PhaseResult]] = ([], [])
        for index in range(PAIRED_ROUNDS):
            order = (0, 1) if index % 2 == 0 else (1, 0)
            for side in order:
                rounds[side].append(measure[side](_round_name(names[side], index + 1), index))

        def again(side: int) -> Callable[[int], PhaseResult]:
            return lambda number: measure[side](_round_name(names[side], number), number - 1)

        small, large = (combine_even_rounds(names[s], rounds[s], again(s)) for s in (0, 1))
        return small, large

    def mint_pair(
        self,
        names: tuple[str, str],
        small: tuple[Service, str],
        large: tuple[Service, str],
        expected_rps: float,
    ) -> tuple[PhaseResult, PhaseResult]:
        """Mint on the small and the large service in alternation, the large one warmed up.

        The two services keep their replay records in different Redis databases, so both
        sides of a round exchange the same tokens: half the signing (~1 ms per token).
        """
        warmed = self.warm_up(names[1], *large, expected_rps)
        rate = max(expected_rps, warmed.rps if warmed else 0.0) * PAIRED_RATE_ROOM
        duration = self.paired_duration()
        shared: dict[int, Path] = {}

        def on(service: tuple[Service, str]) -> Callable[[str, int], PhaseResult]:
            def measure(name: str, round_index: int) -> PhaseResult:
                if round_index not in shared:
                    shared[round_index] = self.token_files(
                        f"{names[1]} round {round_index + 1}", rate, duration
                    )
                return self.mint_phase(
                    name, *service, rate, duration=duration, tokens=shared[round_index]
                )

            return measure

        return self.paired(names, (on(small), on(large)))

    def rotation(
        self, sides: dict[str, tuple[str, Callable[[str], PhaseResult]]]
    ) -> dict[str, PhaseResult]:
        """Each side (key: its name and how to measure one round of it) measured in
        `rotation_rounds` rounds, the order shifted by one every round.

        One phase after another, minutes apart, a slow spell of the machine could fall on
        the floor's phase and a fast one on the mint's: five runs of the same code read the
        mint at 0.44-0.70x of the floor (docs/performance.md). In rotation, every side
        samples the same spells, as the scaling pairs do (`paired`). A round whose
        connections stayed unevenly spread is measured again after the rotation
        (`even_rounds`).
        """
        keys = list(sides)
        rounds: dict[str, list[PhaseResult]] = {key: [] for key in keys}
        for index in range(self.plan.rotation_rounds):
            shift = index % len(keys)
            for key in keys[shift:] + keys[:shift]:
                name, measure = sides[key]
                rounds[key].append(measure(_round_name(name, index + 1)))

        def again(name: str, measure: Callable[[str], PhaseResult]) -> Callable[[int], PhaseResult]:
            return lambda number: measure(_round_name(name, number))

        return {
            key: combine_even_rounds(sides[key][0], rounds[key], again(*sides[key])) for key in keys
        }

    def rotation_duration(self) -> float:
        return self._round_seconds(self.plan.rotation_rounds)

    def paired_duration(self) -> float:
        return self._round_seconds(PAIRED_ROUNDS)

    def _round_seconds(self, rounds: int) -> float:
        """A round's share of one phase, and at least a second: wrk's first moments go
        to checking the connections' spread."""
        return max(1.0, self.plan.duration / rounds)

    def think_ms_for(self, probe: PhaseResult, target_rps: float) -> float:
        """Think time that makes `connections` closed-loop clients offer `target_rps`.

        Each connection cycles through latency + think time; the latency under the
        target load comes from a probe run at a first guess of the think time.
        """
        cycle_ms = self.plan.connections / probe.rps * 1000
        latency_ms = max(0.0, cycle_ms - probe.think_ms)
        return max(0.1, self.plan.connections / target_rps * 1000 - latency_ms)


def _round_name(name: str, number: int) -> str:
    return f"{name} (round {number})"


def _succeeded(result: PhaseResult) -> PhaseResult:
    if result.failed:
        raise RuntimeError(f"phase {result.name}: requests failed: {result.errors}")
    return result


def _progress(message: str) -> None:
    # The elapsed time shows where a run's minutes go (its budget is five).
    elapsed = time.monotonic() - _STARTED
    print(f"bench: [{elapsed:4.0f} s] {message}", file=sys.stderr, flush=True)


_STARTED = time.monotonic()


def run(plan: Plan, output: Path | None, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    bench = Bench(plan, work)
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "plan": asdict(plan),
    }
    phases: dict[str, PhaseResult] = {}
    try:
        bench.start()

        # -- 1. floors, on a quiet machine ---------------------------------------------------
        _progress("floors")
        ci_token = bench.tokens.one(int(time.time()))
        results["crypto_floor"] = crypto_floor(
            ci_token,
            bench.issuer.private_key(bench.issuer.current_kid).public_key(),
            bench.upload_token(int(time.time())),
            plan.crypto_iterations,
        )
        results["redis_floor"] = redis_floor(bench.redis_server.url, plan.redis_iterations)

        floor, floor_url = bench.start_floor()
        least, least_url = bench.start_least_mint()
        # The least mint answers any number of times for one token (it claims but never
        # refuses), so it needs no fresh tokens.
        least_request = json.dumps({"token": ci_token})
        least_body = work / "least-mint-body.json"
        least_body.write_text(least_request)
        floor.wait_until(
            lambda: requests.post(floor_url + FLOOR_PATH, json={"token": "x"}, timeout=5).ok, 60
        )
        least.wait_until(
            lambda: requests.post(least_url + MINT_PATH, data=least_request, timeout=5).ok,
            60,
        )
        floor.wait_for_workers(plan.workers)
        least.wait_for_workers(plan.workers)
        floor_body = work / "floor-body.json"
        floor_body.write_text('{"token": "x"}')
        floor_load = bench.load(
            floor_url + FLOOR_PATH,
            "static",
            floor_body,
            headers=("Content-Type: application/json",),
        )
        least_load = bench.load(
            least_url + MINT_PATH, "static", least_body, headers=("Content-Type: application/json",)
        )

        # -- 2. the first mint of a fresh service, then the four peaks in rotation ------------
        _progress("mint: cold key cache")
        small_policies = bench.write_policies(plan.small_publishers)
        small, small_url = bench.start_trustpub("trustpub-small", small_policies)
        cold_token = bench.tokens.one(int(time.time()))
        small_ready = small.wait_until(
            lambda: requests.get(small_url + "/healthz", timeout=5).ok, 60
        )
        request_started = time.monotonic()
        response = requests.post(small_url + MINT_PATH, json={"token": cold_token}, timeout=30)
        first_mint_s = time.monotonic() - request_started
        if response.status_code != 200:
            raise RuntimeError(f"first mint failed: {response.status_code} {response.text}")
        results["cold_start"] = {
            "ready_s": small_ready,
            "first_mint_ms": first_mint_s * 1000,
            "time_to_first_mint_s": time.monotonic() - small.started_at,
            "issuer_requests": bench.issuer.requests(),
        }
        small.wait_for_workers(plan.workers)
        upload_token = response.json()["token"]

        introspect_body = work / "introspect-body.txt"
        introspect_body.write_text(f"token={upload_token}")
        name, value = bench.introspect_auth
        introspect_load = bench.load(
            small_url + INTROSPECT_PATH,
            "static",
            introspect_body,
            headers=("Content-Type: application/x-www-form-urlencoded", f"{name}: {value}"),
        )
        _require_active(small_url, upload_token, bench.introspect_auth)

        _progress("HTTP floor, least mint, mint and introspection, in rotation")
        run_phase("HTTP floor (warm-up)", replace(floor_load, duration=plan.warmup), floor)
        least_warm = run_phase(
            "least mint (warm-up)", replace(least_load, duration=plan.warmup), least
        )
        run_phase("introspect (warm-up)", replace(introspect_load, duration=plan.warmup), small)
        used_before = int(bench.redis.info("memory")["used_memory"])
        keys_before = int(bench.redis.dbsize())
        # The least mint's rate bounds any mint's: the warm-up's tokens are sized for it.
        mint_rate = least_warm.rps
        mint_warm = bench.warm_up("mint", small, small_url, mint_rate)
        if mint_warm is not None:
            mint_rate = min(mint_rate, WARMED_RATE_ROOM * mint_warm.rps)
        seconds = bench.rotation_duration()

        def measured(
            load: Load, service: Service, redis_counted: bool = True
        ) -> Callable[[str], PhaseResult]:
            def measure(name: str) -> PhaseResult:
                counted = (bench.redis, bench.redis_pid) if redis_counted else ()
                return _succeeded(
                    run_phase(name, replace(load, duration=seconds), service, *counted)
                )

            return measure

        phases.update(
            bench.rotation(
                {
                    # The floor touches no Redis: none of Redis's work is charged to it.
                    "http_floor": ("HTTP floor", measured(floor_load, floor, False)),
                    "least_mint": ("least mint", measured(least_load, least)),
                    "mint": (
                        "mint",
                        lambda name: bench.mint_phase(
                            name, small, small_url, mint_rate, duration=seconds
                        ),
                    ),
                    "introspect": ("introspect", measured(introspect_load, small)),
                }
            )
        )
        least.stop()
        mint = phases["mint"]
        # Only the mints write (the least mint's one key and the floor's nothing were
        # there before): what the warm-up's and the rounds' mints left.
        replay_records = int(bench.redis.dbsize()) - keys_before
        replay_growth = int(bench.redis.info("memory")["used_memory"]) - used_before

        # Each large case's interpreter work per request, counted in a process built like
        # its service, against the small service's (section 5). Deterministic: where the
        # pairs' latency moves from round to round, this does not.
        large_instructions: dict[str, float] = {}

        def count_large(key: str, app: str, policies: Path, db: int) -> None:
            _progress(f"bytecode instructions per request, {key}")
            counted = bench.count_instructions(policies, upload_token, db, (app,))
            large_instructions[key] = counted[app]["instructions"]

        # -- 3. many publishers ----------------------------------------------------------------
        _progress(f"mint with {plan.large_publishers:,} publishers")
        bench.store(PUBLISHERS_DB)  # its own replay records, database 0's epoch
        large_policies = bench.write_policies(plan.large_publishers)
        large, large_url = bench.start_trustpub("trustpub-large", large_policies, PUBLISHERS_DB)
        large_ready = large.wait_until(
            lambda: requests.get(large_url + "/healthz", timeout=5).ok, 240
        )
        large.wait_for_workers(plan.workers)
        phases["mint_few_publishers"], phases["mint_many_publishers"] = bench.mint_pair(
            ("mint, few publishers", "mint, many publishers"),
            (small, small_url),
            (large, large_url),
            mint.rps,
        )
        large.stop()
        count_large("mint_many_publishers", "mint", large_policies, PUBLISHERS_DB)

        # -- 4. mint at half its peak rate, and the floor offered the same rate ----------------
        _progress("mint at half its peak rate")
        target = mint.rps / 2
        guess = plan.connections / target * 1000 - mint.p50_ms / 2
        # Tokens for the peak rate, not the target: a pacing guess that overshoots must
        # not run out of fresh tokens (a reused one is refused and fails the phase).
        probe = bench.mint_phase(
            "mint, pacing probe", small, small_url, mint.rps, think_ms=guess, duration=plan.warmup
        )
        phases["mint_half_peak"] = bench.mint_phase(
            "mint at half peak",
            small,
            small_url,
            mint.rps,
            think_ms=bench.think_ms_for(probe, target),
        )
        floor_probe = run_phase(
            "HTTP floor, pacing probe",
            replace(floor_load, think_ms=max(0.1, guess), duration=plan.warmup),
            floor,
        )
        phases["http_floor_same_rate"] = _succeeded(
            run_phase(
                "HTTP floor at that rate",
                replace(floor_load, think_ms=bench.think_ms_for(floor_probe, target)),
                floor,
            )
        )
        floor.stop()

        # -- 5. introspection, without and with a million revocation entries ------------------
        # The counts are deterministic; the in-process timing is not, so both run here,
        # while no load runs.
        _progress("bytecode instructions and in-process CPU per request")
        results["instructions"] = bench.count_instructions(small_policies, upload_token, timed=True)

        _progress(f"filling {plan.large_revocations:,} revocation entries")
        revoked_store = bench.store(REVOKED_DB)
        revocation_memory = fill_revocations(
            bench, revoked_store, REVOKED_DB, plan.large_revocations
        )
        revoked_policies = bench.write_policies(plan.small_publishers, "revoked")
        revoked, revoked_url = bench.start_trustpub(
            "trustpub-revoked", revoked_policies, REVOKED_DB
        )
        revoked.wait_until(lambda: requests.get(revoked_url + "/healthz", timeout=5).ok, 60)
        revoked.wait_for_workers(plan.workers)
        _require_active(revoked_url, upload_token, bench.introspect_auth)
        revoked_load = replace(introspect_load, url=revoked_url + INTROSPECT_PATH)
        run_phase(
            "introspect, many revocations (warm-up)",
            replace(revoked_load, duration=plan.warmup),
            revoked,
        )
        short = bench.paired_duration()
        phases["introspect_no_revocations"], phases["introspect_many_revocations"] = bench.paired(
            ("introspection, no revocations", "introspection, many revocations"),
            (
                lambda name, _: _succeeded(
                    run_phase(
                        name,
                        replace(introspect_load, duration=short),
                        small,
                        bench.redis,
                        bench.redis_pid,
                    )
                ),
                lambda name, _: _succeeded(
                    run_phase(
                        name,
                        replace(revoked_load, duration=short),
                        revoked,
                        bench.redis,
                        bench.redis_pid,
                    )
                ),
            ),
        )
        revoked.stop()
        count_large("introspect_many_revocations", "introspect", revoked_policies, REVOKED_DB)

        # -- memory per record, measured on real keys -----------------------------------------
        results["memory"] = {
            "replay_record_bytes": _mean_memory_usage(bench.redis, "trustpub:jti:*"),
            "replay_records": replay_records,
            "replay_used_memory_per_record": replay_growth / max(1, replay_records),
            "revocation_entry_bytes": bench.redis.memory_usage(
                bench.real_revocation_key(), samples=0
            ),
            **revocation_memory,
        }
        # -- 6. many registered publishers (Redis), policy files small ---------------------------
        # In their own database: the small service (database 0) keeps its snapshot and
        # runs beside the registered one, in alternation. The mint path reads publishers
        # from each process's snapshot, never from Redis: with this many registrations its
        # latency and round trips must not change.
        _progress(f"mint with {plan.large_publishers:,} registered publishers")
        fill_registrations(bench.store(REGISTERED_DB), plan.large_publishers, bench.issuer.url)
        registered_policies = bench.write_policies(plan.small_publishers, "registered")
        registered, registered_url = bench.start_trustpub(
            "trustpub-registered", registered_policies, REGISTERED_DB
        )
        registered.wait_until(lambda: requests.get(registered_url + "/healthz", timeout=5).ok, 240)
        registered.wait_for_workers(plan.workers)
        phases["mint_few_registered"], phases["mint_many_registered"] = bench.mint_pair(
            ("mint, few publishers", "mint, many registered publishers"),
            (small, small_url),
            (registered, registered_url),
            mint.rps,
        )
        registered.stop()
        small.stop()
        count_large("mint_many_registered", "mint", registered_policies, REGISTERED_DB)

        results["phases"] = {key: phase.as_dict() for key, phase in phases.items()}
        results["scaling"] = {
            "publishers": {"small": plan.small_publishers, "large": plan.large_publishers},
            "ready_s": {"small": small_ready, "large": large_ready},
            "revocations": {"small": 0, "large": plan.large_revocations},
            "instructions": large_instructions,
        }
    finally:
        bench.close()
    results["duration_s"] = time.monotonic() - started
    results["targets"] = report.targets(results)
    print(report.render(results), flush=True)
    if output is not None:
        output.write_text(json.dumps(results, indent=2) + "\n")
        _progress(f"results written to {output}")
    return results


def fill_registrations(store: redis.Redis, count: int, issuer: str) -> None:
    """`count` registered look-alike publishers, written as the management API writes them."""
    from app.stores.base import StoredRegistration

    pipe = store.pipeline(transaction=False)
    for index in range(count):
        registration = StoredRegistration(
            id=f"rp_bench{index:08d}",
            project=f"registered-{index}",
            entry={
                "provider": "github",
                "issuer": issuer,
                "repository": f"reg-{index}/repo-{index}",
                "repository_owner_id": str(5_000_000 + index),
                "workflow": "release.yml",
                "environment": "pypi",
                "projects": [f"registered-{index}"],
            },
            created_by="bench",
            created_at=int(time.time()),
            unique_key=f"bench-{index}",
        )
        pipe.hset("trustpub:registrations", registration.id, registration.encode())
        if index % 10_000 == 9_999:
            pipe.execute()
    pipe.incr("trustpub:registrations:version")
    pipe.execute()


def _require_active(url: str, token: str, auth: tuple[str, str]) -> None:
    response = requests.post(
        url + INTROSPECT_PATH, data={"token": token}, headers=dict([auth]), timeout=10
    )
    if response.status_code != 200 or response.json().get("active") is not True:
        raise RuntimeError(f"introspection: not active: {response.status_code} {response.text}")


def _mean_memory_usage(client: redis.Redis, pattern: str, sample: int = 200) -> float:
    keys = []
    for key in client.scan_iter(match=pattern, count=1000):
        keys.append(key)
        if len(keys) >= sample:
            break
    if not keys:
        return 0.0
    return sum(client.memory_usage(key, samples=0) or 0 for key in keys) / len(keys)


def fill_revocations(bench: Bench, store: redis.Redis, db: int, count: int) -> dict[str, float]:
    """`count` per-token revocation entries shaped as the service writes them.

    Written with `redis-cli --pipe` (the Redis protocol, pipelined): a million SETs in
    seconds. Keys, values and expiry are those of `TokenRevoker.revoke_jti`.
    """
    value = str(int(time.time())).encode()
    path = bench.work / "revocations.resp"
    with path.open("wb") as out:
        batch = []
        for _ in range(count):
            key = b"trustpub:rev:jti:" + os.urandom(16).hex().encode()
            batch.append(
                b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$4\r\n3600\r\n"
                % (len(key), key, len(value), value)
            )
            if len(batch) >= 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    before = int(store.info("memory")["used_memory"])
    keys_before = int(store.dbsize())
    start = time.monotonic()
    with path.open("rb") as source:
        subprocess.run(  # noqa: S603
            [
                shutil.which("redis-cli") or "redis-cli",
                "-p",
                str(bench.redis_server.port),
                "-n",
                str(db),
                "--pipe",
            ],
            stdin=source,
            check=True,
            capture_output=True,
        )
    seconds = time.monotonic() - start
    added = int(store.dbsize()) - keys_before
    if added != count:
        raise RuntimeError(f"redis-cli --pipe added {added} of {count} revocation entries")
    after = int(store.info("memory")["used_memory"])
    path.unlink()
    return {
        "revocations_filled": count,
        "revocation_fill_s": seconds,
        "revocation_used_memory_per_entry": (after - before) / max(1, count),
    }


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": _version(["redis-server", "--version"]),
        "wrk": _version(["wrk", "--version"]),
        # The installed version of everything trustpub runs on, its dependencies' own
        # included (the closure constraints.txt pins): a release of any can move the numbers.
        "packages": runtime_closure(runtime_requirements()),
    }


def _version(argv: list[str]) -> str:
    executable = shutil.which(argv[0])
    if executable is None:
        return "missing"
    result = subprocess.run(  # noqa: S603
        [executable, *argv[1:]], capture_output=True, text=True, timeout=10, check=False
    )
    return ((result.stdout or result.stderr).strip().splitlines() or ["unknown"])[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny numbers: checks the harness")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--no-output", action="store_true", help="print the table only")
    parser.add_argument("--duration", type=float, help="seconds of each measured load phase")
    parser.add_argument("--connections", type=int, help="wrk connections (fixed concurrency)")
    parser.add_argument("--workers", type=int, help="gunicorn workers")
    parser.add_argument("--threads", type=int, help="gunicorn threads per worker")
    parser.add_argument("--large-publishers", type=int)
    parser.add_argument("--large-revocations", type=int)
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    exit_on_termination()

    for tool in ("wrk", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (`make bench` installs it)")
    changes = {
        "duration": args.duration,
        "connections": args.connections,
        "workers": args.workers,
        "threads": args.threads,
        "large_publishers": args.large_publishers,
        "large_revocations": args.large_revocations,
    }
    plan = replace(
        SMOKE if args.smoke else Plan(), **{k: v for k, v in changes.items() if v is not None}
    )
    work = Path(tempfile.mkdtemp(prefix="trustpub-bench-"))
    try:
        run(plan, None if args.no_output else args.output, work)
    finally:
        if args.keep:
            _progress(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
