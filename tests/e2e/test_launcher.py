"""The pypiserver launcher's start-up checks (its serving is covered by test_publish_loop)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.integrations.pypiserver_launcher import split_argv

from .fake_trustpub import FakeTrustpub
from .tools import python_module, run

LAUNCHER = "app.integrations.pypiserver_launcher"


@pytest.fixture
def fake() -> Iterator[FakeTrustpub]:
    with FakeTrustpub() as server:
        yield server


def launch(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = run(python_module(LAUNCHER, *args), env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    return result.returncode, result.output


def test_credentials_that_trustpub_refuses_stop_the_launcher(
    fake: FakeTrustpub, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("tpc_not-the-secret\n")

    code, output = launch(
        tmp_path,
        *("--trustpub-url", fake.url, "--client-id", "index"),
        *("--client-secret-file", str(secret), "--", "run", "-p", "0", str(tmp_path)),
    )

    assert code == 2
    assert "client credentials" in output


def test_password_uploads_need_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("tpc_x\n")

    code, output = launch(
        tmp_path,
        *("--trustpub-url", "http://127.0.0.1:9", "--client-secret-file", str(secret)),
        *("--allow-password-uploads", "--", "run", str(tmp_path)),
    )

    assert code == 2
    assert "-P password file" in output


def test_a_missing_secret_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = launch(
        tmp_path,
        *("--trustpub-url", "http://127.0.0.1:9"),
        *("--client-secret-file", str(tmp_path / "absent"), "--", "run"),
    )

    assert code == 2
    assert "--client-secret-file" in output


def test_arguments_after_the_separator_are_pypiservers() -> None:
    assert split_argv(["--cache-ttl", "0", "--", "run", "-p", "8080", "--", "x"]) == (
        ["--cache-ttl", "0"],
        ["run", "-p", "8080", "--", "x"],
    )
    assert split_argv(["--cache-ttl", "0"]) == (["--cache-ttl", "0"], [])
