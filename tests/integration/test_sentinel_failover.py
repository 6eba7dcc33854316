"""Redis behind Sentinel: kill the master under load and watch trustpub fail closed, then resume.

A real master, two replicas and three sentinels run on loopback. The app is configured
with the Sentinel URL and `redis_min_replicas=1`, so every replay claim and revocation is
acknowledged only once a replica holds it: the promoted replica then knows every OIDC
token exchanged and every revocation acknowledged before the failover. Two replicas,
because after the promotion the other one keeps acknowledging writes (with a single
replica, writes fail closed until the old master rejoins as a replica).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.redis_sentinel import SentinelTopology, SettledLog
from werkzeug.test import TestResponse

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_failure, assert_minted, mint
from .oauth_api import REVOKE_PATH, Clients, introspect, is_active

pytestmark = pytest.mark.slow

# A request sent this long before the store became unsettled may still fail with it (on
# its way, or waiting on WAIT's 0.5 s), and one sent this long after it settled (the app
# finding the new master through the sentinels).
IN_FLIGHT = 1.0
GRACE = 0.5


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    topology = SentinelTopology(tmp_path / "sentinel")
    with topology.master.client() as client:
        client.set("trustpub:epoch", f"running-for-an-hour:{int(time.time()) - 3600}")
    topology.wait_for_replication()
    yield topology
    topology.stop()


def test_master_failover_fails_closed_then_resumes_without_losing_anything(
    topology: SentinelTopology, make_app: MakeApp, make_token: MakeToken, tmp_path: Path
) -> None:
    clients = Clients(tmp_path / "clients.toml")
    app = make_app(
        redis_url=topology.url,
        redis_min_replicas=1,
        clients_file=clients.path,
        # A load stream from one address: rate limits are not what this test is about.
        mint_rate_limit="100000/minute",
        publisher_rate_limit="100000/minute",
    )
    client = app.test_client()
    index = clients.basic("index")

    exchanged = [make_token() for _ in range(5)]
    upload_tokens = [assert_minted(mint(client, token))["token"] for token in exchanged]
    assert client.post(REVOKE_PATH, data={"token": upload_tokens[0]}).status_code == 200

    # (when the request was sent, what it was, its status, its detail: for a 503 its body)
    outcomes: list[tuple[float, str, int, str]] = []
    minted_by_token: Counter[str] = Counter()
    stop = threading.Event()

    def mint_loop() -> None:
        worker = app.test_client()
        while not stop.is_set():
            token = make_token()
            sent_at = time.monotonic()
            response = mint(worker, token)
            if response.status_code == 200:
                minted_by_token[token] += 1
            outcomes.append((sent_at, "mint", response.status_code, _detail(response, token)))
            time.sleep(0.01)

    def introspect_loop() -> None:
        worker = app.test_client()
        while not stop.is_set():
            sent_at = time.monotonic()
            response = introspect(worker, upload_tokens[1], index)
            active = response.status_code == 200 and response.get_json()["active"] is True
            detail = _detail(response, str(active))
            outcomes.append((sent_at, "introspect", response.status_code, detail))
            time.sleep(0.01)

    threads = [threading.Thread(target=mint_loop), threading.Thread(target=introspect_loop)]
    with SettledLog(topology) as settled_log:
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            killed_at = time.monotonic()
            topology.master.kill()
            # Settled: every sentinel names the promoted replica and the other replica
            # follows it, so a write that must reach one replica (WAIT 1) can succeed.
            settled_log.wait_settled(since=killed_at, hold=2.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
    spells = settled_log.unsettled_spells()

    statuses = Counter((kind, status) for _, kind, status, _ in outcomes)
    assert set(statuses) <= {("mint", 200), ("mint", 503), ("introspect", 200), ("introspect", 503)}
    # Never "active" unchecked, never a token from a broken store: only 200s or 503s,
    # and every 200 introspection said active (that token was minted and not revoked).
    assert all(
        detail == "True"
        for _, kind, status, detail in outcomes
        if kind == "introspect" and status == 200
    )
    # A 503 only while the store could not take a replicated write: the request was sent
    # at most GRACE after a spell ended (the app finding the new master), or at most
    # IN_FLIGHT before one began (a request on its way, or waiting on WAIT, when the
    # master died). A second failover (a sentinel judging the fresh master down under
    # load) is a spell of its own, not a failure.
    unexplained = [
        (round(at - killed_at, 3), kind, detail)
        for at, kind, status, detail in outcomes
        if status == 503
        and not any(began - IN_FLIGHT <= at <= ended + GRACE for began, ended in spells)
    ]
    spells_after_kill = [
        (round(began - killed_at, 2), round(ended - killed_at, 2)) for began, ended in spells
    ]
    assert not unexplained, (
        f"503s while the store was settled (seconds after the kill, kind, body): "
        f"{unexplained[:5]}; unsettled spells after the kill: {spells_after_kill}; "
        f"replication now: {topology.replication_state()}"
    )
    # ...and trustpub resumed: both kinds of request served after the last spell.
    resumed_at = spells[-1][1] + GRACE
    assert {kind for at, kind, _, _ in outcomes if at > resumed_at} == {"mint", "introspect"}
    failures = [at for at, _, status, _ in outcomes if status == 503]
    window = (max(failures) - killed_at) if failures else 0.0
    print(
        f"\nfailover: unsettled spells {spells_after_kill} s after the kill, failing window "
        f"{window:.2f}s, {len(failures)} of {len(outcomes)} requests answered 503, none 500"
    )

    # Nothing minted twice: every OIDC token, exchanged before or during the failover,
    # is refused now; none of them ever got two upload tokens.
    for token in [*exchanged, *minted_by_token]:
        assert_failure(mint(client, token), 422, "invalid-reuse-token")
    assert max(minted_by_token.values(), default=1) == 1
    # No revocation lost, no valid token dropped.
    assert not is_active(client, upload_tokens[0], index)
    assert all(is_active(client, token, index) for token in upload_tokens[1:])


def _detail(response: TestResponse, otherwise: str) -> str:
    # A 503's body says which way the store failed (unreachable, or a write no replica
    # acknowledged); error bodies carry no token.
    return response.get_data(as_text=True)[:200] if response.status_code == 503 else otherwise


def test_sentinel_url_errors_are_configuration_errors() -> None:
    from app.errors import ConfigurationError
    from app.stores.redis import connect

    for url in ("redis+sentinel:///name", "redis+sentinel://h:1/", "redis+sentinel://h:1/n/x"):
        with pytest.raises(ConfigurationError, match="sentinel URL"):
            connect(url)
