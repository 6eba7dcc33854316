"""The Containerfile, read as the builder reads it: stages, user, installs and entry point.

No container engine runs here, so these checks are on the file itself; the image's pip
commands were tried by hand on the same wheels (see docs/kubernetes.md).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest
from gunicorn.app.base import BaseApplication
from packaging.requirements import Requirement

from app.cli import cli
from app.serving import GunicornApplication

from .runtime_lock import (
    CONSTRAINTS,
    PYPROJECT,
    ROOT,
    canonical,
    read_constraints,
    runtime_closure,
    runtime_requirements,
)

CONTAINERFILE = ROOT / "Containerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# What compiles code; none of it belongs in the image that runs trustpub.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|microdnf)\b[^&;|]*\b(install|add)\b|"
    r"\b(gcc|g\+\+|clang|make|build-essential|python3?-dev|libc6?-dev|cargo|rustc)\b"
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def parse(text: str) -> list[Stage]:
    """Stages of a Containerfile: line continuations joined, comments dropped, ARGs resolved."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # comments may sit inside a continued instruction too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the file ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, args = instruction.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


STAGES = parse(CONTAINERFILE.read_text(encoding="utf-8"))
FINAL = STAGES[-1]


def test_multi_stage_on_python_3_11_slim() -> None:
    assert len(STAGES) >= 2
    assert all(re.search(r"/python:3\.11-slim", stage.base) for stage in STAGES)
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11"


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    user = FINAL.last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: use a numeric uid, so runAsNonRoot can be verified"
    assert int(uid) == 10001
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # USER comes after the last RUN: nothing runs as root once it is set.
    keywords = [key for key, _ in FINAL.instructions]
    assert keywords.index("USER") > max(i for i, key in enumerate(keywords) if key == "RUN")


def test_no_build_tools_in_the_final_stage() -> None:
    for command in FINAL.all("RUN"):
        assert not BUILD_TOOLS.search(command), command
    # Only the builder's wheels and the lock come in; no source tree, no key material.
    for source in FINAL.all("COPY"):
        assert source.split()[0] in {"constraints.txt"}, source


def test_the_checker_recognises_build_tools() -> None:
    assert BUILD_TOOLS.search("apt-get update && apt-get install -y --no-install-recommends gcc")
    assert BUILD_TOOLS.search("pip install x && make")
    assert not BUILD_TOOLS.search("python -m venv /opt/trustpub && pip install trustpub")


def pip_commands(stage: Stage) -> list[list[str]]:
    commands = []
    for run in stage.all("RUN"):
        run = re.sub(r"^--mount=\S+\s+", "", run)
        for part in re.split(r"&&|;", run):
            words = shlex.split(part)
            if words and (words[0].endswith("pip") or words[:3][-2:] == ["-m", "pip"]):
                commands.append(words)
    return commands


def test_the_final_stage_installs_offline_with_the_constraints() -> None:
    (install,) = [c for c in pip_commands(FINAL) if "install" in c]
    copied = {args.split()[0]: args.split()[1] for args in FINAL.all("COPY")}
    assert install[install.index("-c") + 1] == copied["constraints.txt"]
    assert "--no-index" in install
    assert "--only-binary=:all:" in install
    assert install[-1] == "trustpub"
    # The wheels come from the builder by a bind mount, so they stay out of the layers.
    assert any("--mount=type=bind,from=builder" in run for run in FINAL.all("RUN"))


def test_the_builder_fetches_pinned_binary_wheels() -> None:
    builder = next(stage for stage in STAGES if stage.name == "builder")
    download = next(c for c in pip_commands(builder) if "download" in c)
    assert download[download.index("-c") + 1] == "constraints.txt"
    assert "--only-binary=:all:" in download
    assert any(
        args.startswith("pyproject.toml ") and "constraints.txt" in args
        for args in builder.all("COPY")
    )


def test_entrypoint_is_trustpub_serve_on_all_interfaces() -> None:
    assert json.loads(FINAL.last("ENTRYPOINT")) == ["trustpub", "serve"]
    assert json.loads(FINAL.last("CMD")) == ["--bind", "0.0.0.0:8000"]
    assert FINAL.last("EXPOSE") == "8000"


def test_trustpub_serve_is_gunicorn() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["trustpub"] == "app.cli:main"
    serve = cli.commands["serve"]
    assert {"bind", "workers", "threads"} <= {param.name for param in serve.params}
    assert issubclass(GunicornApplication, BaseApplication)


def test_dockerignore_is_an_allowlist_of_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for stage in STAGES:
        for args in stage.all("COPY"):
            if not args.startswith("--from"):
                copied.update(word.rstrip("/") for word in args.split()[:-1])
    assert copied == allowed


# --- constraints.txt: the runtime lock ------------------------------------------------------


def test_constraints_are_exact_pins() -> None:
    assert read_constraints(CONSTRAINTS)


@pytest.mark.parametrize(
    "requirement", runtime_requirements(), ids=lambda requirement: requirement.name
)
def test_every_runtime_dependency_is_pinned(requirement: Requirement) -> None:
    pins = read_constraints(CONSTRAINTS)
    name = canonical(requirement.name)
    assert name in pins, f"{name} is missing: python -m tests.helm.runtime_lock > constraints.txt"
    assert requirement.specifier.contains(pins[name]), (
        f"{name}=={pins[name]} does not satisfy pyproject.toml's {requirement}"
    )


def test_the_whole_runtime_closure_is_pinned() -> None:
    pins = read_constraints(CONSTRAINTS)
    missing = set(runtime_closure(runtime_requirements())) - set(pins)
    assert not missing, f"not pinned: {sorted(missing)}; regenerate constraints.txt"


def test_the_tests_run_the_pinned_versions() -> None:
    # `make test` installs with constraints.txt: a difference means the virtualenv was
    # upgraded without regenerating the file, and the image would ship untested versions.
    pins = read_constraints(CONSTRAINTS)
    installed = runtime_closure(runtime_requirements())
    differing = {
        name: (version, pins[name])
        for name, version in installed.items()
        if name in pins and version != pins[name]
    }
    assert not differing, f"installed vs pinned: {differing}; regenerate constraints.txt"


def test_makefile_installs_with_the_constraints() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [
        line.split() for line in recipe.splitlines() if "pip install" in line and "-e" in line
    ]
    assert installs, "the Makefile installs trustpub nowhere"
    for words in installs:
        assert "-c" in words, words
        assert words[words.index("-c") + 1] == "constraints.txt", words


def test_no_development_tool_is_pinned() -> None:
    pins = read_constraints(CONSTRAINTS)
    assert not {"pytest", "ruff", "mypy", "helm-python-sdk", "kubernetes-validate"} & set(pins)
