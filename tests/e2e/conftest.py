"""Fixtures of the end-to-end publish loop: one stack per module, distributions built once."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from support.oidc_issuer import OIDCIssuer
from support.tls import TestCA

from .dists import Dist, build_dists
from .stack import PublishStack
from .tools import clean_environment

BuildDist = Callable[[str, str], Dist]
Builds = Future[dict[tuple[str, str], Dist]]

# Every distribution the module uploads, built at once. The refusal tests share
# demo-pkg 2.0.0: it must never land, so no refusal can be an "already exists".
DISTS = [
    ("demo-pkg", "1.0.0"),
    ("demo-pkg", "1.1.0"),
    ("demo-pkg", "2.0.0"),
    ("other-pkg", "1.0.0"),
]


@pytest.fixture(scope="module")
def dist_builds(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Builds]:
    """The builds, started in the background so that they overlap the stack's start-up."""
    workdir = tmp_path_factory.mktemp("dists")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dist-builds") as pool:
        yield pool.submit(build_dists, DISTS, workdir, clean_environment(test_ca.ca_path))


@pytest.fixture(scope="module")
def stack(
    dist_builds: Builds,
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: TestCA,
    oidc_issuer_server: OIDCIssuer,
) -> Iterator[PublishStack]:
    issuer = oidc_issuer_server
    issuer.start()  # an earlier test may have stopped it
    issuer.healthy()
    issuer.reset_keys()
    stack = PublishStack(tmp_path_factory.mktemp("e2e"), test_ca, issuer)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def dists(dist_builds: Builds) -> BuildDist:
    """The distribution of project `name` at `version`, built with `python -m build`."""
    built = dist_builds.result(timeout=120)

    def get(name: str, version: str) -> Dist:
        return built[name, version]

    return get


@pytest.fixture
def download_dir(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, attach the trustpub and pypiserver log tails to the report."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, PublishStack):
        report.sections.append(("service logs", stack.logs()))
    return report
