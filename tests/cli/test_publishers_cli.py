"""`trustpub publishers` and `trustpub audit`, run as subprocesses against a running
`trustpub serve` (two gunicorn workers, a real Redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from support.ports import free_port
from support.redis_server import RedisServer

from app.auth.clients import add_client

TRUSTPUB = str(Path(sys.executable).with_name("trustpub"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRUSTPUB, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.fixture
def service(tmp_path: Path, redis_server: RedisServer, redis_url: str) -> Iterator[dict[str, str]]:
    """A running service; yields the environment of a maintainer of cli-pkg."""
    clients_file = tmp_path / "clients.toml"
    secrets = {
        "maintainer": add_client(clients_file, "maintainer", ["manage"], ["cli-pkg"]),
        "admin": add_client(clients_file, "admin", ["admin"]),
    }
    key_dir = tmp_path / "keys"
    base_env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    assert run("keys", "generate", "--dir", str(key_dir), env=base_env).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [TRUSTPUB, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env={
            **base_env,
            "TRUSTPUB_AUDIENCE": "trustpub-cli.example",
            "TRUSTPUB_SIGNING_KEYS": str(key_dir),
            "TRUSTPUB_REDIS_URL": redis_url,
            "TRUSTPUB_POLICIES_DIR": str(REPO_ROOT / "policies"),
            "TRUSTPUB_CLIENTS_FILE": str(clients_file),
            "TRUSTPUB_DEV": "true",
            # The workers' metric files in the test's directory, not a temporary one left
            # behind.
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{base}/readyz", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None
                assert time.monotonic() < deadline, "service did not start"
                time.sleep(0.1)
        yield {
            **base_env,
            "TRUSTPUB_URL": base,
            "TRUSTPUB_CLIENT_SECRET": secrets["maintainer"],
            "ADMIN_SECRET": secrets["admin"],
        }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_add_list_remove_and_audit(service: dict[str, str]) -> None:
    added = run(
        "publishers", "add", "Cli_Pkg", "--repository", "octo-org/demo", "--owner-id", "65",
        "--workflow", "release.yml", "--environment", "pypi", env=service,
    )  # fmt: skip

    assert added.returncode == 0, added.stderr
    publisher_id, project, state = added.stdout.strip().split("\t")
    assert (project, state) == ("cli-pkg", "active")
    listing = run("publishers", "list", "cli-pkg", "--json", env=service)
    assert [p["id"] for p in json.loads(listing.stdout)] == [publisher_id]
    plain = run("publishers", "list", "cli-pkg", env=service).stdout
    assert plain == f"{publisher_id}\tregistered\tgithub\tocto-org/demo\trelease.yml\t\n"
    assert run("publishers", "remove", "cli-pkg", publisher_id, env=service).returncode == 0
    assert json.loads(run("publishers", "list", "cli-pkg", "--json", env=service).stdout) == []
    records = run("audit", "--project", "cli-pkg", env=service)
    assert records.returncode == 0, records.stderr
    actions = [json.loads(line)["action"] for line in records.stdout.splitlines()]
    assert actions == ["publisher-remove", "publisher-add"]


def test_a_gitlab_publisher_pins_the_ids_given_and_says_when_none_are(
    service: dict[str, str],
) -> None:
    pinned = run(
        "publishers", "add", "cli-pkg", "--provider", "gitlab", "--repository", "grp/proj",
        "--workflow", ".gitlab-ci.yml", "--namespace-id", "7", "--project-id", "9", env=service,
    )  # fmt: skip
    unpinned = run(
        "publishers", "add", "cli-pkg", "--provider", "gitlab", "--repository", "grp/other",
        "--workflow", ".gitlab-ci.yml", env=service,
    )  # fmt: skip
    foreign = run(
        "publishers", "add", "cli-pkg", "--provider", "gitlab", "--repository", "grp/proj",
        "--workflow", "release.yml", "--owner-id", "65", env=service,
    )  # fmt: skip

    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stderr == ""
    assert unpinned.returncode == 0, unpinned.stderr
    assert "the first token this publisher matches pins both" in unpinned.stderr
    listed = json.loads(run("publishers", "list", "cli-pkg", "--json", env=service).stdout)
    ids = {p["publisher"]["project_path"]: p["publisher"].get("project_id") for p in listed}
    assert ids == {"grp/proj": "9", "grp/other": None}
    assert foreign.returncode == 2
    assert "gitlab takes no --owner-id" in foreign.stderr


def test_errors_are_clear(service: dict[str, str], tmp_path: Path) -> None:
    other = run(
        "publishers", "add", "other-pkg", "--repository", "octo-org/demo", "--owner-id", "65",
        "--workflow", "release.yml", env=service,
    )  # fmt: skip
    invalid = run(
        "publishers", "add", "cli-pkg", "--repository", "octo-org/demo", "--owner-id", "65",
        "--workflow", "ci/release.yml", env=service,
    )  # fmt: skip
    no_url = run("publishers", "list", "cli-pkg", env={**service, "TRUSTPUB_URL": ""})

    assert other.returncode == 1
    assert "project-forbidden" in other.stderr
    assert invalid.returncode == 1
    assert "invalid-registration" in invalid.stderr
    assert "workflow" in invalid.stderr
    assert no_url.returncode == 1
    assert "TRUSTPUB_URL" in no_url.stderr


def test_the_credential_may_come_from_the_config_file(service: dict[str, str]) -> None:
    config = Path(service["XDG_CONFIG_HOME"]) / "trustpub" / "client.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'url = "{service["TRUSTPUB_URL"]}"\nsecret = "{service["ADMIN_SECRET"]}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in service.items() if k not in {"TRUSTPUB_URL", "TRUSTPUB_CLIENT_SECRET"}}

    result = run("audit", env=env)

    assert result.returncode == 0, result.stderr


def test_an_index_declares_its_projects_and_confirms(
    service: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    admin = {**service, "TRUSTPUB_CLIENT_SECRET": service["ADMIN_SECRET"]}
    store = redis.Redis.from_url(redis_url)
    store.delete("trustpub:projects:confirmed")  # a store no admin confirmed yet
    names = tmp_path / "projects.txt"
    # More names than one call takes (with the one named), and blank lines: two calls.
    names.write_text("".join(f"pkg-{index}\n\n" for index in range(10_001)))

    refused = run("projects", "declare", "cli-pkg", env=service)
    declared = run("projects", "declare", "Cli_Pkg", "--from-file", str(names), env=admin)
    epoch = store.get("trustpub:epoch").decode()
    before = run("projects", "status", env=admin)
    unnamed = run("projects", "confirm", env=admin)
    confirmed = run("projects", "confirm", "--epoch", epoch, env=admin)
    again = run("projects", "confirm", "--epoch", epoch, env=admin)
    after = run("projects", "status", env=admin)

    assert refused.returncode != 0
    assert "insufficient-scope" in refused.stderr
    assert declared.returncode == 0, declared.stderr
    assert declared.stdout == f"declared 10002 names; 10002 projects were new (epoch {epoch})\n"
    assert before.stdout == f"epoch {epoch}: not confirmed\n"
    assert unnamed.returncode == 2  # a usage error: the epoch must be named
    assert "--epoch" in unnamed.stderr
    assert (confirmed.stdout, again.stdout) == ("confirmed\n", "confirmed already\n")
    assert after.stdout == f"epoch {epoch}: confirmed\n"
    # A subset: the service adds its policy files' projects to the set too.
    expected = {f"pkg-{index}" for index in range(10_001)} | {"cli-pkg"}
    assert expected <= {name.decode() for name in store.smembers("trustpub:projects")}
    records = run("audit", "--limit", "3", env=admin).stdout.splitlines()
    assert [(r["action"], r.get("count")) for r in map(json.loads, records)] == [
        ("projects-confirm", None),
        ("projects-declare", "2"),
        ("projects-declare", "10000"),
    ]
