"""Real `trustpub serve` processes (gunicorn, several workers) on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from support.claims import github_claims
from support.oidc_issuer import OIDCIssuer
from support.ports import free_port

from app.auth.clients import add_client
from app.private_files import write_private_file
from app.tokens.keys import generate_signing_key_pem

TRUSTPUB = str(Path(sys.executable).with_name("trustpub"))
AUDIENCE = "trustpub-faults.example"


@dataclass
class Service:
    process: subprocess.Popen[str]
    base: str
    log: Path

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service did not become ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@dataclass
class Deployment:
    env: dict[str, str]
    secret: str
    make_token: Callable[..., str]


@pytest.fixture
def deployment(tmp_path: Path, redis_url: str, oidc_issuer: OIDCIssuer) -> Deployment:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "demo.toml").write_text(
        "[[publisher]]\n"
        'provider = "github"\n'
        f'issuer = "{oidc_issuer.url}"\n'
        'repository = "octo-org/demo"\n'
        'repository_owner_id = "65"\n'
        'workflow = "release.yml"\n'
        'projects = ["demo-pkg"]\n'
    )
    keys = tmp_path / "keys"
    keys.mkdir()
    write_private_file(keys / "signing.pem", generate_signing_key_pem())
    clients = tmp_path / "clients.toml"
    secret = add_client(clients, "index", ["introspect"])
    env = {
        **os.environ,
        "TRUSTPUB_AUDIENCE": AUDIENCE,
        "TRUSTPUB_REDIS_URL": redis_url,
        "TRUSTPUB_POLICIES_DIR": str(policies),
        "TRUSTPUB_SIGNING_KEYS": str(keys),
        "TRUSTPUB_CLIENTS_FILE": str(clients),
        "TRUSTPUB_GITHUB_ISSUERS": oidc_issuer.url,
        # Load from one address: limits are not what these tests are about.
        "TRUSTPUB_MINT_RATE_LIMIT": "100000/minute",
        "TRUSTPUB_PUBLISHER_RATE_LIMIT": "100000/minute",
        "TRUSTPUB_INTROSPECT_RATE_LIMIT": "100000/minute",
        # Where several workers keep their metric files: the test's own directory, not a
        # temporary one that `trustpub serve` would make and leave behind.
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }

    def make_token(**overrides: Any) -> str:
        return oidc_issuer.sign(github_claims(oidc_issuer.url, AUDIENCE, **overrides))

    return Deployment(env=env, secret=secret, make_token=make_token)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[[Deployment], Service]]:
    services: list[Service] = []

    def start(deployment: Deployment, workers: int = 2, args: Sequence[str] = ()) -> Service:
        port = free_port()
        log = tmp_path / f"service-{port}.log"
        with log.open("w") as handle:
            process = subprocess.Popen(
                [
                    TRUSTPUB,
                    "serve",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    *args,
                ],
                env=deployment.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
            )
        service = Service(process=process, base=f"http://127.0.0.1:{port}", log=log)
        services.append(service)
        service.wait_ready()
        return service

    yield start
    for service in services:
        service.stop()


def mint(service: Service, token: str) -> requests.Response:
    return requests.post(f"{service.base}/_/oidc/mint-token", json={"token": token}, timeout=10)


def introspect(service: Service, deployment: Deployment, token: str) -> dict[str, object]:
    response = requests.post(
        f"{service.base}/oauth/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {deployment.secret}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
