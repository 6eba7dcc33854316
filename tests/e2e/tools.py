"""Running the real client tools (id, build, twine, pip) and the services as subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

TOOL_TIMEOUT = 60.0
START_TIMEOUT = 30.0
LOG_TAIL_LINES = 40

# Variables that make `id` (and twine) believe they run in some CI. The test may itself
# run in a CI job, whose real values must not leak into the jobs it imitates.
CI_VARIABLES = frozenset(
    {
        "GITHUB_ACTIONS",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITLAB_CI",
        "BUILDKITE",
        "CIRCLECI",
        "GOOGLE_SERVICE_ACCOUNT_NAME",
    }
)
_DROPPED_PREFIXES = ("TWINE_", "PIP_", "TRUSTPUB_", "REQUESTS_CA_BUNDLE", "SSL_CERT_")


def clean_environment(ca_path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CI, tool and trustpub settings, trusting the test CA.

    `id` verifies TLS with urllib3, which reads SSL_CERT_FILE; twine, pip and trustpub
    use requests, which reads REQUESTS_CA_BUNDLE. Loopback never goes through a proxy.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in CI_VARIABLES
        and not name.endswith("_ID_TOKEN")
        and not name.startswith(_DROPPED_PREFIXES)
    }
    env.update(
        {
            "REQUESTS_CA_BUNDLE": str(ca_path),
            "SSL_CERT_FILE": str(ca_path),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def check(self) -> Result:
        assert self.returncode == 0, f"{' '.join(self.args[:4])}... failed:\n{self.output}"
        return self


def run(args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Result:
    return run_all([args], env, cwd)[0]


def run_all(
    commands: Sequence[Sequence[str]], env: Mapping[str, str], cwd: Path | None = None
) -> list[Result]:
    """Run commands concurrently (each is mostly interpreter start-up) and wait for all."""
    procs = [
        (
            list(args),
            subprocess.Popen(
                list(args),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for args in commands
    ]
    results = []
    for args, proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        results.append(Result(args, proc.returncode, stdout, stderr))
    return results


def python_module(module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS` with the interpreter running the tests (the project's venv)."""
    return [sys.executable, "-m", module, *args]


def console_script(name: str) -> str:
    """A console script installed next to the running interpreter (e.g. `trustpub`)."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"console script {name!r} is not installed"
    return found


class ServiceProcess:
    """A long-running subprocess with a readiness URL, logging to a file; restartable."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        port: int,
        ready_path: str,
        workdir: Path,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.args = list(args)
        self.env = dict(env)
        self.port = port
        self.ready_path = ready_path
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so that stop() can take the workers with it.
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        assert self._proc is not None, f"{self.name} was not spawned"
        deadline = time.monotonic() + START_TIMEOUT
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self._proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if session.get(self.url + self.ready_path, timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready in {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(self.stop_signal)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        # A worker its master did not reap (gunicorn's gthread worker can deadlock in its
        # quick-shutdown handler; the master kills it after graceful_timeout, 20 s, but
        # this waits 10) would outlive the test, and every later one.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])
