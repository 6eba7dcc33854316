"""The whole publish loop on loopback, wired as in production (docs/deployment.md).

    CI job (id, twine, pip) ──HTTPS──► front (TLS, test CA)
                                          │ /_/oidc/, /oauth/revoke ──► trustpub (`trustpub serve`)
                                          │ /*                      ──► pypiserver + UploadGuard
    GitHub token service ◄── id             trustpub ──► Redis, OIDC issuer (HTTPS JWKS)
                                            pypiserver ──► trustpub /oauth/introspect (internal)

Every process is real: trustpub is the installed console script, the index is started by
`python -m app.integrations.pypiserver_launcher`, Redis is redis-server.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import requests
from support.oidc_issuer import OIDCIssuer
from support.ports import free_port
from support.redis_server import RedisServer
from support.tls import TestCA

from .ci_tokens import GitHubTokenService
from .front import FrontProxy
from .tools import (
    Result,
    ServiceProcess,
    clean_environment,
    console_script,
    python_module,
    run,
    run_all,
)

AUDIENCE = "trustpub-e2e.example"
INDEX_CLIENT = "index"
PROJECT = "demo-pkg"
EPOCH_ID = "e2e"
EPOCH_KEY = "trustpub:epoch"

# The publisher support.claims.github_claims() matches: octo-org/demo's release.yml in
# the GitHub environment "pypi", pinned to owner and repository ids.
POLICY = """\
[[publisher]]
provider = "github"
issuer = "{issuer}"
repository = "octo-org/demo"
repository_owner_id = "65"
repository_id = "74"
workflow = "release.yml"
environment = "pypi"
projects = ["{project}"]
"""


class PublishStack:
    def __init__(self, workdir: Path, ca: TestCA, issuer: OIDCIssuer) -> None:
        self.workdir = workdir
        self.ca = ca
        self.ca_path = ca.ca_path
        self.issuer = issuer
        self.packages = workdir / "packages"
        self.keys_dir = workdir / "signing-keys"
        self.redis = RedisServer(workdir / "redis")
        self.tokens = GitHubTokenService(issuer)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(self.ca_path)
        self.trustpub: ServiceProcess | None = None
        self.index: ServiceProcess | None = None
        self.front: FrontProxy | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self.packages.mkdir()
        self.redis.start()
        client = self.redis.client()
        try:
            # trustpub refuses OIDC tokens issued before its store's epoch began; this
            # epoch is what a deployment running for an hour has.
            client.set(EPOCH_KEY, f"{EPOCH_ID}:{int(time.time()) - 3600}")
        finally:
            client.close()
        self.tokens.start()
        self.trustpub = self._trustpub()
        self.index = self._index()
        # Both start at once: the launcher checks trustpub at start-up, and only warns
        # while it is not up yet (uploads are refused until it is).
        self.trustpub.spawn()
        self.index.spawn()
        self.trustpub.wait_ready()
        self.index.wait_ready()
        trustpub_url = self.trustpub.url
        self.front = FrontProxy(
            self.ca,
            [
                ("/_/oidc/", trustpub_url),
                # Lets a job burn its upload token after the upload (optional in production).
                ("/oauth/revoke", trustpub_url),
                ("/", self.index.url),
            ],
        )
        self.front.start()

    def stop(self) -> None:
        for stop in (
            self.front.stop if self.front else None,
            self.index.stop if self.index else None,
            self.trustpub.stop if self.trustpub else None,
            self.tokens.stop,
            self.redis.stop,
            self.session.close,
        ):
            if stop is not None:
                stop()

    def _trustpub(self) -> ServiceProcess:
        trustpub = console_script("trustpub")
        env = clean_environment(self.ca_path)
        clients_file = self.workdir / "clients.toml"
        generated, added = run_all(
            [
                [trustpub, "keys", "generate", "--dir", str(self.keys_dir)],
                [
                    *(trustpub, "clients", "add", INDEX_CLIENT),
                    *("--scope", "introspect", "--file", str(clients_file)),
                ],
            ],
            env,
        )
        generated.check()
        added.check()
        self.client_secret_file = self.workdir / "index-client-secret"
        self.client_secret_file.write_text(added.stdout.strip() + "\n", encoding="utf-8")
        self.client_secret_file.chmod(0o600)
        policies = self.workdir / "policies"
        policies.mkdir()
        (policies / "e2e.toml").write_text(
            POLICY.format(issuer=self.issuer.url, project=PROJECT), encoding="utf-8"
        )
        env.update(
            {
                "TRUSTPUB_AUDIENCE": AUDIENCE,
                "TRUSTPUB_SIGNING_KEYS": str(self.keys_dir),
                "TRUSTPUB_REDIS_URL": self.redis.url,
                "TRUSTPUB_POLICIES_DIR": str(policies),
                "TRUSTPUB_GITHUB_ISSUERS": self.issuer.url,
                "TRUSTPUB_CLIENTS_FILE": str(clients_file),
                # The front is one proxy; it sets X-Forwarded-For (rate limits per client).
                "TRUSTPUB_TRUSTED_PROXIES": "1",
            }
        )
        port = free_port()
        return ServiceProcess(
            "trustpub",
            [trustpub, "serve", "--bind", f"127.0.0.1:{port}", "--access-log"],
            env,
            port,
            "/readyz",
            self.workdir,
            # gunicorn's quick shutdown: SIGTERM waits for keep-alive connections.
            stop_signal=signal.SIGINT,
        )

    def _index(self) -> ServiceProcess:
        assert self.trustpub is not None
        port = free_port()
        args = python_module(
            "app.integrations.pypiserver_launcher",
            "--trustpub-url",
            self.trustpub.url,
            "--client-id",
            INDEX_CLIENT,
            "--client-secret-file",
            str(self.client_secret_file),
            # Every upload asks trustpub: revocation and outage take effect at once.
            # (The default, 10 s, is covered by the package's own tests.)
            "--cache-ttl",
            "0",
            "--timeout",
            "3",
            "--",
            "run",
            "-p",
            str(port),
            "-i",
            "127.0.0.1",
            str(self.packages),
        )
        return ServiceProcess(
            "pypiserver", args, clean_environment(self.ca_path), port, "/health", self.workdir
        )

    # -- what a CI job does ----------------------------------------------------------

    @property
    def front_url(self) -> str:
        assert self.front is not None
        return self.front.url

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return clean_environment(self.ca_path, extra)

    def github_job_env(self) -> dict[str, str]:
        return self.env(self.tokens.job_environment())

    def audience(self) -> str:
        response = self.session.get(self.front_url + "/_/oidc/audience", timeout=10)
        assert response.status_code == 200, response.text
        audience: str = response.json()["audience"]
        return audience

    def id_token(self, audience: str, env: dict[str, str]) -> str:
        """`python -m id AUDIENCE` in a job's environment: the CI's OIDC token."""
        result = run(python_module("id", audience), env).check()
        return result.stdout.strip()

    def mint(self, oidc_token: str, *, form_encoded: bool = False) -> dict[str, object]:
        url = self.front_url + "/_/oidc/mint-token"
        if form_encoded:
            # What `curl -d '{"token": "..."}'` sends: a JSON body, form Content-Type.
            response = self.session.post(
                url,
                data=json.dumps({"token": oidc_token}),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=10,
            )
        else:
            response = self.session.post(url, json={"token": oidc_token}, timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def upload_token(self) -> str:
        """A fresh upload token for the registered publisher (via a CI token from the issuer)."""
        token = self.mint(self.tokens.issue(AUDIENCE))["token"]
        assert isinstance(token, str)
        return token

    def revoke(self, upload_token: str) -> requests.Response:
        """The token's holder burns it (RFC 7009), as a job may after its upload."""
        return self.session.post(
            self.front_url + "/oauth/revoke", data={"token": upload_token}, timeout=10
        )

    def twine_upload(self, files: list[Path], upload_token: str) -> Result:
        env = self.env({"TWINE_USERNAME": "__token__", "TWINE_PASSWORD": upload_token})
        return run(
            python_module(
                "twine",
                "upload",
                "--repository-url",
                self.front_url + "/",
                "--cert",
                str(self.ca_path),
                "--non-interactive",
                "--disable-progress-bar",
                "--verbose",
                *map(str, files),
            ),
            env,
        )

    def pip_download(self, requirement: str, dest: Path) -> list[Path]:
        run(
            python_module(
                "pip",
                "--isolated",
                "download",
                "--index-url",
                self.front_url + "/simple/",
                "--cert",
                str(self.ca_path),
                "--no-deps",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "-d",
                str(dest),
                requirement,
            ),
            self.env(),
        ).check()
        return sorted(dest.iterdir())

    def stored(self) -> dict[str, Path]:
        """The files on the index's disk, by name."""
        return {path.name: path for path in self.packages.iterdir()}

    def logs(self) -> str:
        parts = [
            f"--- {service.name} ---\n{service.log_tail()}"
            for service in (self.trustpub, self.index)
            if service is not None
        ]
        return "\n".join(parts)
