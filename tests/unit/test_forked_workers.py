"""What a process forked from the one that built the app inherits: gunicorn's workers,
with preload_app, and every worker it forks again after a crash, a timeout kill or a
SIGHUP. Plain os.fork here; the verdict comes back through a pipe."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from app.publishers.providers import PROVIDERS
from app.registrations import LivePublishers
from app.stores.memory import MemoryStore

from .test_live_publishers import NOW, TRUSTED, registered, token_claims


def in_child(work: Callable[[], Any]) -> tuple[str, Any]:
    """`work()`'s result, or the name of the exception it raised, computed in a child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                outcome: list[Any] = ["returned", work()]
            except BaseException as exc:
                outcome = ["raised", type(exc).__name__]
            with os.fdopen(write, "w") as pipe:
                json.dump(outcome, pipe)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        kind, value = json.load(pipe)
    os.waitpid(pid, 0)
    return kind, value


def test_each_forked_child_of_an_in_memory_store_has_an_epoch_of_its_own() -> None:
    # What a worker records (replay claims, revocations) dies with it: the next worker
    # forked from the same master must not vouch for the tokens of its epoch. Before,
    # every worker kept the master's epoch: a revoked token was active again, and an
    # exchanged OIDC token minted again, after a worker was replaced.
    store = MemoryStore()
    master = store.current_epoch().id

    first = in_child(lambda: store.current_epoch().id)
    second = in_child(lambda: store.current_epoch().id)

    assert first[0] == second[0] == "returned"
    assert len({master, first[1], second[1]}) == 3
    assert store.current_epoch().id == master  # the parent's own is unchanged


@pytest.mark.parametrize("poll_interval", [1.0, 60.0])
def test_a_forked_worker_reloads_the_registrations_before_its_first_match(
    poll_interval: float,
) -> None:
    # Before, a worker matched with the snapshot its master loaded at start-up until its
    # poller's first reload: a publisher removed since (a compromise) minted again.
    store = MemoryStore(clock=lambda: NOW)
    registration = registered(store, pending=False)
    publishers = LivePublishers(
        (), store, PROVIDERS, TRUSTED, clock=lambda: NOW, poll_interval=poll_interval
    )
    publishers.refresh()  # the master, at its start; it never polls
    assert store.remove_registration(registration.id) is not None  # by a worker, later

    outcome = in_child(lambda: sorted(publishers.match(token_claims()).projects))

    assert outcome == ("raised", "InvalidPublisher")
