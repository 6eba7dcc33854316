"""The `trustpub` console script, run for real as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from support.ports import free_port
from support.redis_server import RedisServer

from app import create_app
from app.auth.clients import load_clients_file
from app.clocks import CLOCK_SKEW_SECONDS
from app.settings import load_settings
from app.tokens.keys import load_key_ring

TRUSTPUB = str(Path(sys.executable).with_name("trustpub"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRUSTPUB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_python_dash_m_runs_the_same_command_line() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert module.returncode == 0, module.stderr
    assert module.stdout == run("keys", "--help").stdout
    assert "Usage: trustpub keys" in module.stdout


def test_clients_add_prints_the_secret_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"

    result = run("clients", "add", "pypiserver", "--scope", "introspect", "--file", str(path))

    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("tpc_")
    assert secret not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    registry = load_clients_file(path)
    client = registry.authenticate(f"Bearer {secret}")
    assert client is not None
    assert client.name == "pypiserver"
    assert client.allows("introspect")
    assert not client.allows("revoke")
    again = run("clients", "add", "pypiserver", "--scope", "revoke", "--file", str(path))
    assert again.returncode != 0
    assert "exists already" in again.stderr


def test_keys_generate_writes_an_owner_only_ed25519_key(tmp_path: Path) -> None:
    result = run("keys", "generate", "--dir", str(tmp_path / "keys"))

    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "keys").glob("trustpub-signing-*.pem")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_key_ring(path)
    assert ring.signer.algorithm == "EdDSA"
    assert ring.signer.kid in result.stdout


def revoking_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """What `trustpub tokens revoke` needs: signing keys and the service's Redis."""
    key_dir = tmp_path / "keys"
    assert run("keys", "generate", "--dir", str(key_dir)).returncode == 0
    return {
        "TRUSTPUB_AUDIENCE": "trustpub-cli.example",
        "TRUSTPUB_SIGNING_KEYS": str(key_dir),
        "TRUSTPUB_REDIS_URL": redis_url,
    }


def test_tokens_revoke_writes_a_project_revocation_to_the_service_store(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    env = revoking_env(tmp_path, redis_url)

    moment = int(time.time()) - 10
    result = run("tokens", "revoke", "--project", "Demo_Pkg", "--before", str(moment), env=env)
    missing = run("tokens", "revoke", env=env)
    no_such_name = run("tokens", "revoke", "--project", "demo-pkg\n", env=env)

    assert result.returncode == 0, result.stderr
    assert f"tokens issued at or before {moment}" in result.stdout
    assert no_such_name.returncode != 0
    assert "is not a valid project name" in no_such_name.stderr
    (key,) = redis_server.client().keys("trustpub:rev:project:*")
    assert redis_server.client().get(key) == str(moment).encode()
    assert 3500 < redis_server.client().ttl(key) <= 3600 + CLOCK_SKEW_SECONDS
    # Recorded like any revocation, naming who ran it: the CLI has no API client.
    (record,) = redis_server.client().xrange("trustpub:audit")
    fields = {k.decode(): v.decode() for k, v in record[1].items()}
    assert fields["actor"].startswith("cli")
    assert (fields["action"], fields["scope"], fields["project"], fields["before"]) == (
        "revoke",
        "project",
        "demo-pkg",
        str(moment),
    )
    assert missing.returncode != 0
    assert "exactly one of" in missing.stderr


# The CLI run on a machine whose clock is five minutes behind the service's.
_LATE_CLI = (
    "import time; real = time.time; time.time = lambda: real() - 300; "
    "from app.cli import main; main()"
)


def test_tokens_revoke_takes_now_from_the_store_not_the_operators_machine(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    # A late laptop would leave its last five minutes of tokens out of "now", and an
    # early one would let a token's entry expire before the token.
    env = {**os.environ, **revoking_env(tmp_path, redis_url)}

    result = subprocess.run(
        [sys.executable, "-c", _LATE_CLI, "tokens", "revoke", "--project", "demo-pkg"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    store_now, _ = redis_server.client().time()
    (key,) = redis_server.client().keys("trustpub:rev:project:*")
    moment = int(redis_server.client().get(key))
    assert store_now + CLOCK_SKEW_SECONDS - 5 <= moment <= store_now + CLOCK_SKEW_SECONDS
    (record,) = redis_server.client().xrange("trustpub:audit")
    assert abs(int(record[1][b"at"]) - store_now) <= 5


def dev_token(env: dict[str, str], *args: str) -> str:
    result = run("dev", "oidc-token", "--repository", "octo-org/demo", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_dev_token_says_when_it_made_a_key_no_running_service_knows(tmp_path: Path) -> None:
    # Run from another directory than `make run`, it used to make a key silently, and the
    # mint failed with a signature error that did not say why.
    env = {"TRUSTPUB_DEV_DIR": str(tmp_path / "elsewhere")}
    args = ("dev", "oidc-token", "--repository", "octo-org/demo", "--workflow", "release.yml")

    first, second = run(*args, env=env), run(*args, env=env)

    assert first.returncode == 0, first.stderr
    assert "created a new development issuer key in" in first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert first.stdout.count(".") == 2  # a token on stdout, the note on stderr only


def test_dev_token_exchanges_at_a_development_service(tmp_path: Path) -> None:
    env = {
        "TRUSTPUB_DEV_DIR": str(tmp_path / "dev"),
        "TRUSTPUB_POLICIES_DIR": str(REPO_ROOT / "policies"),
    }
    client = create_app(load_settings(env, dev=True)).test_client()
    # A new in-memory store begins its epoch now; tokens of that second are ambiguous.
    time.sleep(1.05)

    token = dev_token(env, "--workflow", "release.yml")
    # Exactly what the README tells a newcomer to run: curl -d, no JSON content type.
    first = client.post("/_/oidc/mint-token", data=f'{{"token": "{token}"}}')
    again = client.post("/_/oidc/mint-token", data=f'{{"token": "{token}"}}')
    other = client.post(
        "/_/oidc/mint-token", json={"token": dev_token(env, "--workflow", "other.yml")}
    )

    assert first.status_code == 200, first.get_json()
    assert first.get_json()["token"].startswith("pypi-")
    assert again.get_json()["errors"][0]["code"] == "invalid-reuse-token"
    assert other.get_json()["errors"][0]["code"] == "invalid-publisher"
    assert "other.yml" in other.get_json()["errors"][0]["description"]


def test_production_service_refuses_the_dev_policy(tmp_path: Path) -> None:
    result = run(
        "check-policies",
        str(REPO_ROOT / "policies"),
        env={"TRUSTPUB_GITHUB_ISSUERS": "https://token.actions.githubusercontent.com"},
    )

    assert result.returncode == 1
    assert "dev.toml" in result.stderr
    assert "not a configured github issuer" in result.stderr


def test_serve_refuses_in_memory_stores_with_several_workers() -> None:
    result = run("serve", "--dev", "--workers", "2", "--bind", f"127.0.0.1:{free_port()}")

    assert result.returncode != 0
    assert "in-memory stores" in result.stderr


def _production_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    assert run("keys", "generate", "--dir", str(tmp_path / "keys")).returncode == 0
    (tmp_path / "policies").mkdir()
    return {
        "TRUSTPUB_AUDIENCE": "pypi.example.com",
        "TRUSTPUB_SIGNING_KEYS": str(tmp_path / "keys"),
        "TRUSTPUB_POLICIES_DIR": str(tmp_path / "policies"),
        **variables,
    }


def test_serve_refuses_in_memory_stores_outside_development(tmp_path: Path) -> None:
    # An empty variable (an empty key of a Secret) counts as unset: it must stop the start.
    env = _production_env(tmp_path, TRUSTPUB_REDIS_URL="")

    result = run("serve", "--bind", f"127.0.0.1:{free_port()}", env=env)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: no Redis: set TRUSTPUB_REDIS_URL")
    assert "TRUSTPUB_IN_MEMORY_STORES=true" in result.stderr  # the trial's way, by name


def test_a_store_url_its_library_cannot_read_stops_serve_without_being_quoted(
    tmp_path: Path,
) -> None:
    password = "S3CRET-pw"
    env = _production_env(
        tmp_path,
        TRUSTPUB_REDIS_URL="redis://127.0.0.1:1/0",  # never connected to: the start stops first
        TRUSTPUB_RATE_LIMIT_STORAGE=f"reddis://:{password}@redis.internal:6379/0",
    )

    result = run("serve", "--bind", f"127.0.0.1:{free_port()}", env=env)

    assert result.returncode == 1
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("Error: rate_limit_storage is not a storage URL")
    assert "Traceback" not in result.stderr
    assert password not in result.stderr


def test_serve_runs_gunicorn_and_stops_gracefully(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    port = free_port()
    key_dir = tmp_path / "keys"
    assert run("keys", "generate", "--dir", str(key_dir)).returncode == 0
    env = {
        **os.environ,
        "TRUSTPUB_AUDIENCE": "trustpub-cli.example",
        "TRUSTPUB_SIGNING_KEYS": str(key_dir),
        "TRUSTPUB_REDIS_URL": redis_url,
        "TRUSTPUB_POLICIES_DIR": str(REPO_ROOT / "policies"),
        "TRUSTPUB_DEV": "true",
        # The workers' metric files in the test's directory, not a temporary one left behind.
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    server = subprocess.Popen(
        [TRUSTPUB, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                ready = requests.get(f"{base}/readyz", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "service did not start"
                time.sleep(0.1)
        assert ready.status_code == 200
        assert ready.json()["publishers"] == 2
        audience = requests.get(f"{base}/_/oidc/audience", timeout=2).json()
        assert audience == {"audience": "trustpub-cli.example"}
        for _ in range(9):  # new connections: spread over both workers
            requests.get(f"{base}/_/oidc/audience", timeout=2)
        # Each worker counts for itself; /metrics sums every worker's counts.
        exposition = requests.get(f"{base}/metrics", timeout=2).text
        wanted = (
            'trustpub_request_duration_seconds_count{endpoint="oidc.audience",'
            'method="GET",status="200"} 10.0'
        )
        assert wanted in exposition

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert server.stderr is not None
        app_lines = [
            json.loads(line) for line in server.stderr.read().splitlines() if line.startswith("{")
        ]
        # JSON log lines, and nothing in them that looks like a token.
        assert any(entry["logger"].startswith("app") for entry in app_lines)
        assert all("eyJ" not in entry["message"] for entry in app_lines)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_serve_removes_the_metrics_directory_it_made_and_only_when_it_stops(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    # No PROMETHEUS_MULTIPROC_DIR (outside the chart): serve makes a temporary one.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {
        **os.environ,
        **_production_env(tmp_path, TRUSTPUB_REDIS_URL=redis_url),
        "TMPDIR": str(temporary),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [TRUSTPUB, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until(lambda: _answers(f"{base}/readyz"), "service did not start")
        (directory,) = temporary.glob("trustpub-metrics-*")
        # The first worker may answer before the master has forked the second.
        _wait_until(lambda: len(_children(server.pid)) == 2, "the workers did not start")
        workers = _children(server.pid)
        # A worker that exits on its own (replaced by the master) leaves it in place.
        os.kill(workers[0], signal.SIGTERM)
        _wait_until(
            lambda: len(set(_children(server.pid)) - set(workers)) == 1, "no worker replaced it"
        )
        assert directory.is_dir()
        assert requests.get(f"{base}/metrics", timeout=2).status_code == 200

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert list(temporary.iterdir()) == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def _wait_until(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)
