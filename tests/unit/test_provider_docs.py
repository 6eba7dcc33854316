"""The policies in the docs load: a copy-pasted example is never the first bad policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.publishers.policy_files import load_policy_dir
from app.settings import GOOGLE_ISSUER, PUBLIC_GITHUB_ISSUER, PUBLIC_GITLAB_ISSUER

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)
# The issuers the examples name.
TRUSTED = {
    "github": frozenset({PUBLIC_GITHUB_ISSUER}),
    "gitlab": frozenset({PUBLIC_GITLAB_ISSUER, "https://gitlab.example.com"}),
    "google": frozenset({GOOGLE_ISSUER}),
}


def policy_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in [DOCS / "policies.md", *sorted((DOCS / "providers").glob("*.md"))]:
        for index, block in enumerate(TOML_BLOCK.findall(path.read_text(encoding="utf-8"))):
            if "[[publisher]]" in block:
                blocks.append((f"{path.relative_to(DOCS)}#{index}", block))
    return blocks


BLOCKS = policy_blocks()


def test_every_provider_has_a_guide_with_a_policy() -> None:
    guides = {name.split("#")[0] for name, _ in BLOCKS}
    assert {"providers/github.md", "providers/gitlab.md", "providers/google.md"} <= guides


@pytest.mark.parametrize("block", [block for _, block in BLOCKS], ids=[name for name, _ in BLOCKS])
def test_documented_policy_loads(tmp_path: Path, block: str) -> None:
    # Indented blocks (inside list items) are dedented by Markdown, and so here.
    text = "\n".join(line.removeprefix("   ") for line in block.splitlines())
    (tmp_path / "policy.toml").write_text(text, encoding="utf-8")

    assert load_policy_dir(tmp_path, TRUSTED)
