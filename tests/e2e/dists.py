"""Fresh tiny distributions, built by `python -m build` from a generated project."""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .tools import python_module, run_all

BACKEND = Path(__file__).with_name("demo_backend.py")


@dataclass(frozen=True)
class Dist:
    project: str
    version: str
    sdist: Path
    wheel: Path

    @property
    def files(self) -> list[Path]:
        return [self.sdist, self.wheel]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_dists(
    specs: Sequence[tuple[str, str]], workdir: Path, env: Mapping[str, str]
) -> dict[tuple[str, str], Dist]:
    """Build each (project, version) with `python -m build --no-isolation`, concurrently.

    Each is a one-module project with a random marker in its module, so every build has
    bytes of its own.
    """
    outputs = {spec: _write_project(*spec, workdir) for spec in specs}
    commands = [
        python_module("build", "--no-isolation", "--outdir", str(out), str(source))
        for source, out in outputs.values()
    ]
    for result in run_all(commands, env):
        result.check()
    dists = {}
    for (project, version), (_, out) in outputs.items():
        sdists = list(out.glob("*.tar.gz"))
        wheels = list(out.glob("*.whl"))
        assert len(sdists) == 1, sorted(p.name for p in out.iterdir())
        assert len(wheels) == 1, sorted(p.name for p in out.iterdir())
        dists[project, version] = Dist(project, version, sdists[0], wheels[0])
    return dists


def _write_project(project: str, version: str, workdir: Path) -> tuple[Path, Path]:
    module = re.sub(r"[-_.]+", "_", project).lower()
    source = workdir / f"{module}-{version}-src"
    shutil.rmtree(source, ignore_errors=True)
    (source / "src" / module).mkdir(parents=True)
    (source / "pyproject.toml").write_text(
        "[build-system]\n"
        "requires = []\n"
        'build-backend = "demo_backend"\n'
        'backend-path = ["."]\n\n'
        "[project]\n"
        f'name = "{project}"\n'
        f'version = "{version}"\n',
        encoding="utf-8",
    )
    shutil.copy(BACKEND, source / "demo_backend.py")
    (source / "src" / module / "__init__.py").write_text(
        f'MARKER = "{uuid.uuid4().hex}"\n', encoding="utf-8"
    )
    return source, workdir / f"{module}-{version}-dist"
