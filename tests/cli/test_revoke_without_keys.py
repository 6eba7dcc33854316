"""`trustpub tokens revoke` of a project, a publisher or a jti needs Redis, not the
private signing keys: an operator's machine (docs/reliability.md runs it on a laptop,
docs/kubernetes.md deletes the keys from the workstation) must not hold them to revoke."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from support.redis_server import RedisServer

from app.cli import cli

WITHOUT_KEYS = {
    "TRUSTPUB_AUDIENCE": "trustpub-cli.example",
    "TRUSTPUB_SIGNING_KEYS": None,
    "TRUSTPUB_SIGNING_KID": None,
    "TRUSTPUB_CONFIG": None,
    "TRUSTPUB_DEV": None,
}


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        (["--project", "demo-pkg"], "trustpub:rev:project:*"),
        (
            ["--repository", "octo-org/demo", "--workflow", "release.yml"],
            "trustpub:rev:publisher:*",
        ),
        (["--jti", "A" * 24], "trustpub:rev:jti:*"),
    ],
    ids=["project", "publisher", "jti"],
)
def test_bulk_revocation_needs_no_private_key(
    redis_server: RedisServer, redis_url: str, args: list[str], prefix: str
) -> None:
    env = {**WITHOUT_KEYS, "TRUSTPUB_REDIS_URL": redis_url}

    result = CliRunner().invoke(cli, ["tokens", "revoke", *args], env=env)

    assert result.exit_code == 0, result.output
    assert len(redis_server.client().keys(prefix)) == 1


def test_revoking_a_token_still_says_it_needs_the_keys(redis_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("pypi-eyJhbGciOiJFZERTQSJ9.e30.AA")
    env = {**WITHOUT_KEYS, "TRUSTPUB_REDIS_URL": redis_url}

    result = CliRunner().invoke(cli, ["tokens", "revoke", "--token", str(token_file)], env=env)

    assert result.exit_code != 0
    assert "signing_keys" in result.output
