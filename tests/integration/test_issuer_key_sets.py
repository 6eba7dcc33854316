"""Items 8 and 13 of "Core": fetching the CI issuer's key set, over real HTTPS.

An unknown `kid` triggers at most one refresh per interval per issuer, shared by
concurrent requests; a failing issuer turns into 503 `issuer-keys-unavailable` on a
cold cache, and a warm cache keeps serving (stale-if-error). Timing-dependent rules
are checked on a `CachedKeySet` built with a clock the test moves, through
`verify_identity_token` and the real HTTP fetcher.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from support.connect_proxy import ConnectProxy
from support.oidc_issuer import OIDCIssuer
from support.tls import TestCA

from app.errors import InvalidToken, KeySetUnavailable
from app.oidc.keysets import CachedKeySet, HttpKeySetFetcher, KeySetFetchError, KeySetPolicy
from app.oidc.verify import IssuerConfig, TrustedIssuers, verify_identity_token
from app.publishers.google import GoogleProvider
from app.settings import GOOGLE_ISSUER

from .conftest import MakeApp, MakeClaims, MakeToken
from .exchange_api import AUDIENCE, assert_failure, assert_minted, mint, run_together
from .policies import github_publisher
from .trickling_issuer import PARTS, TricklingIssuer

JWKS = "/jwks"
DISCOVERY = "/openid-configuration"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def trusted(url: str, keys: CachedKeySet) -> TrustedIssuers:
    issuers = TrustedIssuers()
    issuers.add(IssuerConfig(url=url, provider="github"), keys)
    return issuers


@pytest.fixture
def make_trusted(
    oidc_issuer: OIDCIssuer, session: requests.Session, clock: ManualClock
) -> Callable[..., TrustedIssuers]:
    """The issuer fixture as the one trusted issuer, its key set cached under `policy`."""

    def make(**policy: float) -> TrustedIssuers:
        keys = CachedKeySet(
            oidc_issuer.url, HttpKeySetFetcher(session), KeySetPolicy(**policy), clock=clock
        )
        return trusted(oidc_issuer.url, keys)

    return make


def verify(token: str, issuers: TrustedIssuers) -> None:
    identity = verify_identity_token(token, issuers, AUDIENCE, int(time.time()))
    assert identity.claims["repository"] == "octo-org/demo"


# -- unknown kid and the refresh rate limit (item 8) ---------------------------------


def test_unknown_kids_on_the_app_cause_one_fetch_per_interval(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    # Cold cache: the first unknown kid fetches the key set (once), and is refused.
    assert_failure(mint(client, make_token(headers={"kid": "sprayed-1"})), 422, "invalid-token")
    assert oidc_issuer.requests(JWKS) == 1
    assert oidc_issuer.requests(DISCOVERY) == 1
    # Within the interval, further unknown kids are refused from the cache.
    for n in range(2, 6):
        response = mint(client, make_token(headers={"kid": f"sprayed-{n}"}))
        assert_failure(response, 422, "invalid-token")
    assert_minted(mint(client, make_token()))
    # A key the issuer adds now is unknown to the cache until the interval has passed.
    new_kid = oidc_issuer.add_key()
    assert_failure(mint(client, make_token(kid=new_kid)), 422, "invalid-token")
    assert oidc_issuer.requests() == 2


@pytest.mark.parametrize("warm", [False, True], ids=["cold-cache", "warm-cache"])
def test_twenty_concurrent_unknown_kids_cause_at_most_one_fetch(
    app: Flask, oidc_issuer: OIDCIssuer, make_token: MakeToken, warm: bool
) -> None:
    if warm:
        assert_minted(mint(app.test_client(), make_token()))
    before = oidc_issuer.requests(JWKS)
    tokens = [make_token(headers={"kid": f"sprayed-{n}"}) for n in range(20)]
    oidc_issuer.delay(0.2)  # a slow issuer: every request arrives while a fetch runs
    clients = [app.test_client() for _ in tokens]
    responses = run_together(20, lambda index: mint(clients[index], tokens[index]))
    for response in responses:
        assert_failure(response, 422, "invalid-token")
    assert oidc_issuer.requests(JWKS) - before == (0 if warm else 1)


def test_new_kid_verifies_after_one_refresh_once_the_interval_passed(
    make_trusted: Callable[..., TrustedIssuers],
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    clock: ManualClock,
) -> None:
    issuers = make_trusted(min_refresh_interval=60)
    verify(make_token(), issuers)
    assert oidc_issuer.requests(JWKS) == 1

    new_kid = oidc_issuer.add_key()
    new_token = make_token(kid=new_kid)
    clock.now += 30
    with pytest.raises(InvalidToken):
        verify(new_token, issuers)
    assert oidc_issuer.requests(JWKS) == 1  # rate-limited: no fetch

    clock.now += 31
    verify(new_token, issuers)
    assert oidc_issuer.requests(JWKS) == 2  # exactly one refresh

    # The refresh just happened: an unknown kid now waits for the next interval...
    with pytest.raises(InvalidToken):
        verify(make_token(headers={"kid": "sprayed"}), issuers)
    assert oidc_issuer.requests(JWKS) == 2
    # ...after which the first unknown kid refreshes once and the next one does not.
    clock.now += 61
    for kid in ("sprayed-1", "sprayed-2", "sprayed-3"):
        with pytest.raises(InvalidToken):
            verify(make_token(headers={"kid": kid}), issuers)
    assert oidc_issuer.requests(JWKS) == 3
    # Discovery was done once; the jwks_uri is remembered.
    assert oidc_issuer.requests(DISCOVERY) == 1


def test_rotated_keys_are_picked_up_and_the_retired_key_stops_verifying(
    make_trusted: Callable[..., TrustedIssuers],
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    clock: ManualClock,
) -> None:
    issuers = make_trusted(min_refresh_interval=60)
    old_token = make_token(kid="key-1")
    verify(old_token, issuers)

    new_kid = oidc_issuer.add_key()
    oidc_issuer.remove_key("key-1")
    clock.now += 61
    verify(make_token(kid=new_kid), issuers)
    assert oidc_issuer.requests(JWKS) == 2
    with pytest.raises(InvalidToken):
        verify(old_token, issuers)  # retired at the issuer, gone from the refreshed set
    assert oidc_issuer.requests(JWKS) == 2


def test_concurrent_requests_for_a_new_kid_share_one_refresh(
    make_trusted: Callable[..., TrustedIssuers],
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    clock: ManualClock,
) -> None:
    issuers = make_trusted(min_refresh_interval=60)
    verify(make_token(), issuers)
    new_kid = oidc_issuer.add_key()
    tokens = [make_token(kid=new_kid) for _ in range(20)]
    clock.now += 61
    oidc_issuer.delay(0.2)  # every request arrives while the one refresh runs
    run_together(20, lambda index: verify(tokens[index], issuers))
    assert oidc_issuer.requests(JWKS) == 2


def test_warm_cache_never_waits_for_the_network(
    make_trusted: Callable[..., TrustedIssuers],
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    clock: ManualClock,
) -> None:
    issuers = make_trusted(ttl=100, min_refresh_interval=60)
    verify(make_token(), issuers)
    new_kid = oidc_issuer.add_key()
    oidc_issuer.delay(0.5)

    clock.now += 150  # past the time-to-live: the key set is refreshed in the background
    started = time.monotonic()
    verify(make_token(kid="key-1"), issuers)
    assert time.monotonic() - started < 0.4

    # A key only the refreshed set has: this waits for the background refresh to land.
    verify(make_token(kid=new_kid), issuers)
    assert oidc_issuer.requests(JWKS) == 2


# -- the issuer failing (item 13) ----------------------------------------------------


def _garbage_jwks() -> dict[str, bytes]:
    return {
        "not-json": b"<html>bad gateway</html>",
        "not-utf8": b"\xff\xfe\x00",
        "json-list": b"[]",
        "no-keys-list": b'{"keys": {}}',
        "oversized": b'{"keys": [], "pad": "' + b"x" * (300 * 1024) + b'"}',
    }


def _sets_without_a_signing_key(oidc_issuer: OIDCIssuer) -> dict[str, bytes]:
    public = oidc_issuer.jwks()["keys"][0]
    leaked_private = {**public, "d": "AQAB", "p": "AQAB", "q": "AQAB"}
    return {
        "empty-key-list": b'{"keys": []}',
        "only-symmetric-key": json.dumps(
            {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "key-1"}]}
        ).encode(),
        "only-encryption-key": json.dumps({"keys": [{**public, "use": "enc"}]}).encode(),
        "private-key-document": json.dumps({"keys": [leaked_private]}).encode(),
    }


GARBAGE_IDS = ["not-json", "not-utf8", "json-list", "no-keys-list", "oversized"]
WITHOUT_A_SIGNING_KEY_IDS = [
    "empty-key-list",
    "only-symmetric-key",
    "only-encryption-key",
    "private-key-document",
]


@pytest.mark.parametrize("garbage", GARBAGE_IDS, ids=GARBAGE_IDS)
def test_unusable_key_set_on_a_cold_cache_is_503(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, garbage: str
) -> None:
    oidc_issuer.serve_garbage(_garbage_jwks()[garbage])
    response = mint(client, make_token())
    assert_failure(response, 503, "issuer-keys-unavailable")
    assert response.headers["Retry-After"] == "30"


@pytest.mark.parametrize("answer", WITHOUT_A_SIGNING_KEY_IDS, ids=WITHOUT_A_SIGNING_KEY_IDS)
def test_a_key_set_without_a_signing_key_refuses_the_issuers_tokens(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, answer: str
) -> None:
    oidc_issuer.serve_garbage(_sets_without_a_signing_key(oidc_issuer)[answer])
    response = mint(client, make_token())
    assert_failure(response, 422, "invalid-token")
    assert "not in the issuer's key set" in response.get_json()["errors"][0]["description"]


@pytest.mark.parametrize("answer", WITHOUT_A_SIGNING_KEY_IDS, ids=WITHOUT_A_SIGNING_KEY_IDS)
def test_an_issuer_that_withdraws_every_key_is_believed_at_the_next_refresh(
    make_trusted: Callable[..., TrustedIssuers],
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:
    # Before, a set without a usable key was a failed fetch: the withdrawn keys went on
    # verifying for max_stale (24 h), and the issuer had to publish a new key to be heard.
    issuers = make_trusted(ttl=3600, min_refresh_interval=60)
    verify(make_token(), issuers)
    oidc_issuer.serve_garbage(_sets_without_a_signing_key(oidc_issuer)[answer])

    clock.now += 61  # an unknown kid may refresh the set again
    with pytest.raises(InvalidToken):
        verify(make_token(headers={"kid": "new"}), issuers)
    assert oidc_issuer.requests(JWKS) == 2
    with pytest.raises(InvalidToken, match="not in the issuer's key set"):
        verify(make_token(), issuers)
    assert "lists no usable signing key: its tokens are refused" in caplog.text

    oidc_issuer.healthy()  # the issuer publishes its key again
    clock.now += 61
    verify(make_token(), issuers)


@pytest.mark.parametrize(
    "odd",
    [
        {"alg": "none"},  # PyJWK raised NotImplementedError: the whole set was discarded
        {"alg": "HS256"},
        {"alg": "XS999"},
        {"kty": "EC"},
        {"use": "enc"},
        {"n": "not base64!"},
    ],
)
def test_an_odd_entry_beside_the_signing_key_is_skipped(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, odd: dict[str, str]
) -> None:
    public = oidc_issuer.jwks()["keys"][0]
    entries = [{**public, **odd, "kid": "odd"}, public]
    oidc_issuer.serve_garbage(json.dumps({"keys": entries}).encode())

    assert_minted(mint(client, make_token()))


@pytest.mark.parametrize(
    ("declared", "minted"),
    [
        ({"alg": "RS256"}, True),
        ({}, True),  # RFC 7517 makes a key's "alg" optional
        ({"alg": "RS512"}, False),  # an RSA key, published for another RSA algorithm
        ({"alg": 256}, False),  # no algorithm at all: the entry is not a key
    ],
    ids=["RS256", "none-declared", "RS512", "not-a-string"],
)
def test_a_key_verifies_only_the_algorithm_its_key_set_declares(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    declared: dict[str, object],
    minted: bool,
) -> None:
    public = {k: v for k, v in oidc_issuer.jwks()["keys"][0].items() if k != "alg"}
    oidc_issuer.serve_garbage(json.dumps({"keys": [{**public, **declared}]}).encode())

    response = mint(client, make_token())  # RS256, the configured algorithm

    if minted:
        assert_minted(response)
    elif isinstance(declared["alg"], str):
        description = assert_failure(response, 422, "invalid-token")
        assert "published for ('RS512')" in description
    else:  # an entry whose "alg" is no algorithm is no signing key
        description = assert_failure(response, 422, "invalid-token")
        assert "not in the issuer's key set" in description


@pytest.mark.parametrize("signing_first", [True, False], ids=["signing-first", "signing-last"])
def test_a_kid_that_names_two_keys_names_none(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    caplog: pytest.LogCaptureFixture,
    signing_first: bool,
) -> None:
    signing = oidc_issuer.jwks()["keys"][0]
    other_kid = oidc_issuer.add_key()
    other = next(key for key in oidc_issuer.jwks()["keys"] if key["kid"] == other_kid)
    # The issuer's signing key and another key under the same kid: in either order the
    # token's kid is ambiguous. The other key, alone under its own kid, stays usable.
    twins = [signing, {**other, "kid": signing["kid"]}]
    if not signing_first:
        twins.reverse()
    oidc_issuer.serve_garbage(json.dumps({"keys": [*twins, other]}).encode())

    with caplog.at_level("WARNING", logger="app.oidc.keysets"):
        refused = mint(client, make_token(kid=signing["kid"]))

    assert_failure(refused, 422, "invalid-token")
    assert "more than one signing key" in caplog.text
    assert_minted(mint(client, make_token(kid=other_kid)))


def test_the_same_key_listed_twice_under_its_kid_is_one_key(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    signing = oidc_issuer.jwks()["keys"][0]
    oidc_issuer.serve_garbage(json.dumps({"keys": [signing, dict(signing)]}).encode())

    assert_minted(mint(client, make_token()))


@pytest.mark.parametrize("status", [500, 404, 429], ids=["500", "404", "429"])
def test_failing_issuer_on_a_cold_cache_is_503_and_the_failure_is_remembered(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, status: int
) -> None:
    oidc_issuer.fail_with(status)
    response = mint(client, make_token())
    assert_failure(response, 503, "issuer-keys-unavailable")
    assert response.headers["Retry-After"] == "30"
    fetched = oidc_issuer.requests()
    assert fetched >= 1
    # Negative caching: retries during the outage do not reach the issuer.
    for _ in range(3):
        assert_failure(mint(client, make_token()), 503, "issuer-keys-unavailable")
    assert oidc_issuer.requests() == fetched


def test_unreachable_issuer_on_a_cold_cache_is_503(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    token = make_token()
    oidc_issuer.stop()
    response = mint(client, token)
    assert_failure(response, 503, "issuer-keys-unavailable")
    assert "Retry-After" in response.headers


def test_discovery_naming_another_issuer_is_503(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken
) -> None:
    oidc_issuer.override_discovery(issuer="https://token.actions.githubusercontent.com")
    assert_failure(mint(client, make_token()), 503, "issuer-keys-unavailable")
    assert oidc_issuer.requests(JWKS) == 0


def test_an_issuer_that_compresses_when_offered_is_asked_for_plain_json(
    oidc_issuer: OIDCIssuer, session: requests.Session
) -> None:
    # What a CDN in front of an issuer does; the fetcher reads the body undecoded.
    oidc_issuer.compress("offered")

    keys = HttpKeySetFetcher(session).fetch(oidc_issuer.url)

    assert set(keys) == set(oidc_issuer.kids)


def test_an_encoded_answer_nobody_asked_for_is_refused(
    oidc_issuer: OIDCIssuer, session: requests.Session
) -> None:
    oidc_issuer.compress("always")

    with pytest.raises(KeySetFetchError, match="encoded body nobody asked for"):
        HttpKeySetFetcher(session).fetch(oidc_issuer.url)


@pytest.mark.parametrize("status", [200, 500])
def test_an_issuers_cookies_are_neither_kept_nor_sent_back(
    oidc_issuer: OIDCIssuer, session: requests.Session, status: int
) -> None:
    # requests' jar keeps every cookie, of a failed answer too, without a bound: a
    # failing issuer could grow it by megabytes at every attempt, in every worker.
    oidc_issuer.set_cookies(20)
    fetcher = HttpKeySetFetcher(session)
    if status != 200:
        oidc_issuer.fail_with(status)

    for _ in range(3):
        with contextlib.suppress(KeySetFetchError):
            fetcher.fetch(oidc_issuer.url)

    assert oidc_issuer.requests() >= 3
    assert len(session.cookies) == 0
    assert oidc_issuer.cookies_received == 0


def test_jwks_uri_on_another_origin_is_never_fetched(
    client: FlaskClient,
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_token: MakeToken,
) -> None:
    elsewhere = make_oidc_issuer()  # same host, another port: another origin
    oidc_issuer.override_discovery(jwks_uri=elsewhere.jwks_url)
    assert_failure(mint(client, make_token()), 503, "issuer-keys-unavailable")
    assert elsewhere.requests() == 0


def test_slow_issuer_times_out(
    oidc_issuer: OIDCIssuer, make_token: MakeToken, session: requests.Session, clock: ManualClock
) -> None:
    # The app's fetcher has 2 s timeouts (test_trickling_issuer_is_answered_within_five_
    # seconds shows the app's bound end to end); short ones here keep the test fast.
    fetcher = HttpKeySetFetcher(session, timeout=0.2, deadline=0.4)
    issuers = trusted(oidc_issuer.url, CachedKeySet(oidc_issuer.url, fetcher, clock=clock))
    oidc_issuer.delay(30)
    started = time.monotonic()
    with pytest.raises(KeySetUnavailable):
        verify(make_token(), issuers)
    assert time.monotonic() - started < 1
    oidc_issuer.stop()  # releases the handler still sleeping in the injected delay


@pytest.mark.parametrize("outage", ["fail-500", "garbage", "unreachable"])
def test_warm_cache_keeps_working_while_the_issuer_fails(
    client: FlaskClient, oidc_issuer: OIDCIssuer, make_token: MakeToken, outage: str
) -> None:
    assert_minted(mint(client, make_token()))
    token = make_token()
    if outage == "fail-500":
        oidc_issuer.fail_with(500)
    elif outage == "garbage":
        oidc_issuer.serve_garbage(b"{")
    else:
        oidc_issuer.stop()
    assert_minted(mint(client, token))
    # An unknown kid during the outage is refused as such, not a 503 or a 500.
    assert_failure(mint(client, make_token(headers={"kid": "sprayed"})), 422, "invalid-token")


def test_stale_keys_serve_through_an_outage_then_expire_then_recover(
    make_trusted: Callable[..., TrustedIssuers],
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    clock: ManualClock,
) -> None:
    issuers = make_trusted(ttl=100, min_refresh_interval=60, failure_backoff=10, max_stale=1000)
    verify(make_token(), issuers)
    fetched = oidc_issuer.requests()

    oidc_issuer.fail_with(500)
    clock.now += 150  # past the TTL: served stale while a background refresh fails
    verify(make_token(), issuers)
    # An unknown kid queues behind the background refresh, then is refused from cache.
    with pytest.raises(InvalidToken):
        verify(make_token(headers={"kid": "sprayed"}), issuers)
    assert oidc_issuer.requests() == fetched + 1
    clock.now += 5  # within the failure backoff: no new attempt
    verify(make_token(), issuers)
    assert oidc_issuer.requests() == fetched + 1

    clock.now += 1000  # past max_stale: the old keys are no longer trusted
    with pytest.raises(KeySetUnavailable):
        verify(make_token(), issuers)
    oidc_issuer.healthy()
    clock.now += 5  # still within the backoff of that last failure
    with pytest.raises(KeySetUnavailable):
        verify(make_token(), issuers)
    clock.now += 10  # the issuer recovered and the backoff is over
    verify(make_token(), issuers)


# -- an issuer that trickles its answer -------------------------------------------------


@pytest.mark.parametrize("part", ["headers", "body"], ids=["trickled-headers", "trickled-body"])
def test_trickling_issuer_cannot_hold_requests_beyond_the_wait_bound(
    test_ca: TestCA,
    make_claims: MakeClaims,
    oidc_issuer: OIDCIssuer,
    session: requests.Session,
    clock: ManualClock,
    part: str,
) -> None:
    with TricklingIssuer(test_ca, part=part) as trickler:
        policy = KeySetPolicy(max_wait=0.5)
        keys = CachedKeySet(trickler.url, HttpKeySetFetcher(session), policy, clock=clock)
        issuers = trusted(trickler.url, keys)
        token = oidc_issuer.sign(make_claims(iss=trickler.url))

        started = time.monotonic()
        with pytest.raises(KeySetUnavailable):
            verify(token, issuers)
        assert time.monotonic() - started < 1.5
        # The fetch still runs (and trickles); others do not queue behind it.
        started = time.monotonic()
        with pytest.raises(KeySetUnavailable):
            verify(token, issuers)
        assert time.monotonic() - started < 0.3
        assert trickler.requests == 1


@pytest.mark.slow
def test_trickling_issuer_is_answered_within_five_seconds(
    test_ca: TestCA, make_app: MakeApp, make_claims: MakeClaims, oidc_issuer: OIDCIssuer
) -> None:
    # The publish action gives each call 5 s.
    with TricklingIssuer(test_ca, part="body") as trickler:
        client = make_app([github_publisher(trickler.url)], issuers=[trickler.url]).test_client()
        token = oidc_issuer.sign(make_claims(iss=trickler.url))
        started = time.monotonic()
        response = mint(client, token)
        assert time.monotonic() - started < 5
        assert_failure(response, 503, "issuer-keys-unavailable")


@pytest.mark.parametrize("allowed", [True, False], ids=["origin-configured", "not-configured"])
def test_keys_come_from_another_origin_only_where_configured(
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    session: requests.Session,
    allowed: bool,
) -> None:
    # Google's discovery document names www.googleapis.com for its keys.
    elsewhere = make_oidc_issuer()
    oidc_issuer.override_discovery(jwks_uri=elsewhere.jwks_url)
    origins = {oidc_issuer.url: frozenset({elsewhere.url})} if allowed else {}
    fetcher = HttpKeySetFetcher(session, key_origins=origins)

    if allowed:
        assert fetcher.fetch(oidc_issuer.url)
    else:
        with pytest.raises(KeySetFetchError, match="not on an origin allowed"):
            fetcher.fetch(oidc_issuer.url)
    assert elsewhere.requests() == (1 if allowed else 0)


def test_only_the_public_google_issuer_takes_its_keys_from_googleapis() -> None:
    public = GoogleProvider().issuer_config(GOOGLE_ISSUER, enabled=True)
    custom = GoogleProvider().issuer_config("https://accounts.example.com", enabled=True)

    assert public.key_origins == {"https://www.googleapis.com"}
    assert custom.key_origins == frozenset()


@pytest.mark.parametrize("route", ["direct", "through-a-proxy"])
@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_trickled_answer_ends_the_fetch_at_its_deadline(
    test_ca: TestCA,
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    route: str,
) -> None:
    # Each byte comes within the read timeout. Before, a body was read 16 KiB at a time
    # before the deadline was looked at; and a trickled status line or headers, a chunk
    # line, trailers or a flood of interim responses held one read of http.client's for
    # as long as they went on, the flood with a core busy parsing it. The issuer's next
    # refresh waited on it. Until the twenty-eighth session a fetch through an
    # operator's HTTPS_PROXY still did.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(test_ca.ca_path))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    outcome: list[BaseException] = []
    with TricklingIssuer(test_ca, part=part) as trickler, ConnectProxy() as proxy:
        if route == "through-a-proxy":
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("https_proxy", proxy.url)
        fetcher = HttpKeySetFetcher(session, timeout=0.5, deadline=1.0)

        def fetch() -> None:
            try:
                fetcher.fetch(trickler.url)
            except BaseException as exc:
                outcome.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        thread.join(timeout=5)
        elapsed = time.monotonic() - started

    assert not thread.is_alive()
    assert elapsed < 2.0  # the deadline and one read past it
    assert [type(exc) for exc in outcome] == [KeySetFetchError]
    assert str(outcome[0]).endswith("was too slow")
    assert proxy.tunnels == (1 if route == "through-a-proxy" else 0)


def test_a_refresh_without_a_thread_fails_like_a_fetch_and_is_tried_again(
    oidc_issuer: OIDCIssuer,
    make_token: MakeToken,
    session: requests.Session,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before, its running-refresh mark stayed: no refresh for the issuer until restart.
    policy = KeySetPolicy(failure_backoff=10.0)
    issuers = trusted(
        oidc_issuer.url,
        CachedKeySet(oidc_issuer.url, HttpKeySetFetcher(session), policy, clock=clock),
    )
    real_start = threading.Thread.start

    def no_thread(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with pytest.raises(KeySetUnavailable):
        verify(make_token(), issuers)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    clock.now += 11

    verify(make_token(), issuers)
    assert oidc_issuer.requests() >= 1


def test_a_jwks_uri_that_parsers_read_as_two_hosts_is_never_fetched(
    oidc_issuer: OIDCIssuer,
    make_oidc_issuer: Callable[..., OIDCIssuer],
    make_claims: MakeClaims,
    session: requests.Session,
    clock: ManualClock,
) -> None:
    # urlsplit reads the host after the "@" (the issuer's own); requests, like browsers,
    # ends the host at the backslash and connects to the other origin. The check must
    # judge the URL that is fetched, or any host's keys verify the issuer's tokens.
    issuer_authority = f"127.0.0.1:{oidc_issuer.port}"
    elsewhere = make_oidc_issuer(f"/%5C@{issuer_authority}")
    oidc_issuer.override_discovery(
        jwks_uri=f"https://127.0.0.1:{elsewhere.port}\\@{issuer_authority}/.well-known/jwks"
    )
    issuers = trusted(
        oidc_issuer.url, CachedKeySet(oidc_issuer.url, HttpKeySetFetcher(session), clock=clock)
    )
    forged = elsewhere.sign(make_claims())

    with pytest.raises(KeySetUnavailable):
        verify(forged, issuers)
    assert elsewhere.requests() == 0
