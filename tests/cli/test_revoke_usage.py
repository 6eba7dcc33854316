"""`trustpub tokens revoke` refuses options that do not apply to what it revokes, before
it reads any setting (in process)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Dropped in silence, --workflow would have revoked the whole project.
        (["--project", "demo-pkg", "--workflow", "release.yml"], "--workflow and --issuer go"),
        (["--project", "demo-pkg", "--issuer", "https://gitlab.com"], "--workflow and --issuer go"),
        (["--jti", "x", "--before", "1"], "--before goes with --project or --repository"),
        (["--project", "a", "--jti", "x"], "give exactly one of"),
    ],
)
def test_an_option_that_does_not_apply_is_refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["tokens", "revoke", *args], env={"TRUSTPUB_REDIS_URL": ""})

    assert result.exit_code == 2
    assert message in result.output
