"""A worker that gunicorn forks again (after a crash, an OOM or timeout kill, a SIGHUP)
starts from what the master built before its first fork (preload_app), not from what
the worker it replaces knew. Real `trustpub serve`, one worker, replaced for real."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from support.oidc_issuer import OIDCIssuer

from app.auth.clients import add_client
from app.stores.base import StoredRegistration
from app.stores.redis import RedisStore, connect

from .conftest import Deployment, Service, introspect, mint

pytestmark = pytest.mark.slow

OTHER_REF = "octo-org/other/.github/workflows/release.yml@refs/tags/v1.0.0"


def _workers(service: Service) -> set[int]:
    pid = service.process.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _replace_the_worker(service: Service, how: str) -> None:
    """SIGKILL the one worker, or SIGHUP the master (which replaces every worker); wait
    until the replacement answers."""
    (old,) = _workers(service)
    if how == "kill":
        os.kill(old, signal.SIGKILL)
    else:
        service.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while (current := _workers(service)) and (len(current) != 1 or old in current):
        assert time.monotonic() < deadline, "no replacement worker"
        time.sleep(0.05)
    service.wait_ready()


@pytest.mark.parametrize("how", ["kill", "hup"])
def test_in_memory_stores_never_forget_a_revocation_when_the_worker_is_replaced(
    deployment: Deployment, start_service: Callable[..., Service], how: str
) -> None:
    # TRUSTPUB_IN_MEMORY_STORES (the chart's redis.inMemory), as `make run` has them.
    # Before, the replacement kept the master's epoch but not the worker's records: the
    # revoked token was active again, and the OIDC token exchanged again.
    deployment.env.pop("TRUSTPUB_REDIS_URL")
    deployment.env["TRUSTPUB_IN_MEMORY_STORES"] = "true"
    service = start_service(deployment, workers=1)
    time.sleep(1.1)  # the in-memory epoch's own second refuses tokens (epoch_margin 0)
    oidc_token = deployment.make_token()
    minted = mint(service, oidc_token)
    assert minted.status_code == 200, minted.text
    upload = minted.json()["token"]
    assert requests.post(f"{service.base}/oauth/revoke", data={"token": upload}, timeout=5).ok
    assert introspect(service, deployment, upload) == {"active": False}

    _replace_the_worker(service, how)

    assert introspect(service, deployment, upload) == {"active": False}
    assert mint(service, oidc_token).status_code == 422


@pytest.mark.parametrize("how", ["kill", "hup"])
def test_a_replacement_worker_never_matches_a_publisher_removed_since_the_master_started(
    deployment: Deployment,
    start_service: Callable[..., Service],
    redis_url: str,
    oidc_issuer: OIDCIssuer,
    how: str,
) -> None:
    # Before, the replacement matched with the master's start-up snapshot until its
    # poller's first reload: the removed publisher minted again.
    admin = add_client(Path(deployment.env["TRUSTPUB_CLIENTS_FILE"]), "operator", ["admin"])
    store = RedisStore(connect(redis_url))
    now = int(time.time())
    entry = {
        "provider": "github",
        "issuer": oidc_issuer.url,
        "repository": "octo-org/other",
        "repository_owner_id": "65",
        "workflow": "release.yml",
        "projects": ["other-pkg"],
    }
    registration = StoredRegistration(
        id="rp_0123456789abcdef",
        project="other-pkg",
        entry=entry,
        created_by="operator",
        created_at=now,
        unique_key="k-other",
        expires_at=None,
    )
    assert store.add_registration(registration, now) == (None, None)  # before the start
    store.close()
    service = start_service(deployment, workers=1)

    def other_token() -> str:
        return deployment.make_token(
            repository="octo-org/other",
            sub="repo:octo-org/other:environment:pypi",
            job_workflow_ref=OTHER_REF,
            workflow_ref=OTHER_REF,
        )

    assert mint(service, other_token()).status_code == 200
    removed = requests.delete(
        f"{service.base}/api/v1/projects/other-pkg/publishers/{registration.id}",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert removed.status_code == 200, removed.text

    _replace_the_worker(service, how)

    assert mint(service, other_token()).status_code == 422
