"""app.integrations.introspection against a real local HTTP endpoint: cache and failing closed."""

from __future__ import annotations

import ast
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from app.integrations import (
    IntrospectionClient,
    IntrospectionUnavailable,
    UploadAuthorizer,
)

from .fake_trustpub import (
    CLIENT_ID,
    CLIENT_SECRET,
    INACTIVE,
    Answer,
    FakeTrustpub,
    active_answer,
)
from .servers import LoopbackServer


class Clock:
    """A clock the test moves by hand (wall time or monotonic time)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake() -> Iterator[FakeTrustpub]:
    with FakeTrustpub() as server:
        yield server


@pytest.fixture
def wall() -> Clock:
    return Clock(time.time())


@pytest.fixture
def mono() -> Clock:
    return Clock(1000.0)


def make_client(
    fake: FakeTrustpub,
    wall: Clock | None = None,
    mono: Clock | None = None,
    **options: object,
) -> IntrospectionClient:
    return IntrospectionClient(
        fake.url,
        CLIENT_SECRET,
        client_id=CLIENT_ID,
        clock=wall or time.time,
        monotonic=mono or time.monotonic,
        **options,  # type: ignore[arg-type]
    )


def test_an_active_answer_gives_normalised_projects_and_the_publisher(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["Demo_Pkg", "other.pkg"], jti="abc"))

    token = make_client(fake).introspect("tok")

    assert token is not None
    assert token.projects == {"demo-pkg", "other-pkg"}
    assert token.jti == "abc"
    assert token.subject == "github:octo-org/demo"
    assert token.publisher["repository"] == "octo-org/demo"
    assert token.may_upload("demo.pkg")
    assert not token.may_upload("demo-pkg-extras")


def test_inactive_answers_are_none_and_never_cached(fake: FakeTrustpub) -> None:
    client = make_client(fake)

    assert client.introspect("unknown") is None
    assert client.introspect("unknown") is None
    assert fake.asked("unknown") == 2


def test_active_answers_are_reused_for_the_cache_ttl_only(
    fake: FakeTrustpub, wall: Clock, mono: Clock
) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    client = make_client(fake, wall, mono, cache_ttl=10)

    assert client.introspect("tok") is not None
    mono.advance(9.9)
    wall.advance(9.9)
    assert client.introspect("tok") is not None
    assert fake.asked("tok") == 1

    mono.advance(0.2)
    wall.advance(0.2)
    assert client.introspect("tok") is not None
    assert fake.asked("tok") == 2


def test_a_revocation_is_seen_once_the_cache_ttl_has_passed(
    fake: FakeTrustpub, wall: Clock, mono: Clock
) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    client = make_client(fake, wall, mono, cache_ttl=10)
    assert client.introspect("tok") is not None

    fake.answer("tok", INACTIVE)  # revoked at trustpub
    assert client.introspect("tok") is not None  # within the documented delay
    mono.advance(10)
    assert client.introspect("tok") is None


def test_the_cache_ttl_counts_from_when_trustpub_was_asked(
    fake: FakeTrustpub, wall: Clock, mono: Clock
) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))

    class SlowAnswers(requests.Session):
        def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            response = super().post(*args, **kwargs)
            fake.answer("tok", INACTIVE)  # revoked just after trustpub answered
            mono.advance(4)  # and the answer took 4 s to arrive
            wall.advance(4)
            return response

    client = make_client(fake, wall, mono, cache_ttl=10, session_factory=SlowAnswers)
    assert client.introspect("tok") is not None

    mono.advance(6)  # 10 s after trustpub answered: the revocation must be seen
    wall.advance(6)
    assert client.introspect("tok") is None


def test_the_cache_never_outlives_the_token(fake: FakeTrustpub, wall: Clock, mono: Clock) -> None:
    fake.answer("tok", active_answer(["demo-pkg"], expires_in=3))
    client = make_client(fake, wall, mono, cache_ttl=10)
    assert client.introspect("tok") is not None

    # Only 3 s of the 10 s TTL pass on the monotonic clock, but the token's exp is over.
    mono.advance(3)
    wall.advance(3)
    assert client.introspect("tok") is None
    assert fake.asked("tok") == 2  # asked again, and by this clock the answer is over too


def test_the_cache_is_bounded_least_recently_used_first(fake: FakeTrustpub) -> None:
    for name in ("a", "b", "c"):
        fake.answer(name, active_answer(["demo-pkg"], jti=name))
    client = make_client(fake, cache_size=2)

    client.introspect("a")
    client.introspect("b")
    client.introspect("a")  # a is now the most recently used
    client.introspect("c")  # evicts b
    assert len(client.cache) == 2
    client.introspect("a")
    client.introspect("c")
    client.introspect("b")

    assert (fake.asked("a"), fake.asked("b"), fake.asked("c")) == (1, 2, 1)


def test_cache_ttl_zero_asks_every_time(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    client = make_client(fake, cache_ttl=0)

    client.introspect("tok")
    client.introspect("tok")

    assert fake.asked("tok") == 2
    assert len(client.cache) == 0


def test_errors_are_not_cached(fake: FakeTrustpub) -> None:
    client = make_client(fake)
    fake.answer("tok", Answer(503, b'{"error": "store-unavailable"}'))
    with pytest.raises(IntrospectionUnavailable):
        client.introspect("tok")

    fake.answer("tok", active_answer(["demo-pkg"]))
    assert client.introspect("tok") is not None
    assert fake.asked("tok") == 2


@pytest.mark.parametrize(
    "answer",
    [
        Answer(500, b'{"error": "internal"}'),
        Answer(502, b"<html>bad gateway</html>"),
        Answer(503, b""),
        Answer(404, b'{"error": "not found"}'),
        Answer(302, b""),
        Answer(200, b"<html>login page</html>"),
        Answer(200, b""),
        Answer(200, b'["active", true]'),
        Answer(200, b'{"active": "true", "exp": 9999999999, "projects": []}'),
        Answer(200, b'{"projects": ["demo-pkg"]}'),
        Answer(200, b'{"active": true, "exp": NaN}'),
        Answer(200, b'{"active": true}'),
        Answer(200, json.dumps({"active": True, "x": "y" * 70_000}).encode()),
        Answer(200, b"[" * 30_000 + b"]" * 30_000),  # under the size cap: RecursionError
    ],
    ids=[
        "500",
        "502-html",
        "503-empty",
        "404",
        "redirect",
        "html",
        "empty",
        "json-list",
        "active-as-string",
        "no-active",
        "nan",
        "active-without-claims",
        "huge",
        "deeply-nested",
    ],
)
def test_anything_but_a_proper_answer_fails_closed(fake: FakeTrustpub, answer: Answer) -> None:
    fake.answer("tok", answer)

    with pytest.raises(IntrospectionUnavailable):
        make_client(fake).introspect("tok")


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": "9999999999"},
        {"exp": True},
        {"projects": "demo-pkg"},
        {"projects": [1]},
        {"scope": "read"},
        {"scope": None},
        {"jti": ""},
    ],
    ids=["exp-str", "exp-bool", "projects-str", "projects-ints", "scope", "no-scope", "jti"],
)
def test_an_active_answer_without_usable_claims_fails_closed(
    fake: FakeTrustpub, overrides: dict[str, object]
) -> None:
    fake.answer("tok", active_answer(["demo-pkg"], **overrides))

    with pytest.raises(IntrospectionUnavailable):
        make_client(fake).introspect("tok")


def test_an_active_answer_expired_by_our_clock_is_inactive(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["demo-pkg"], expires_in=-5))

    assert make_client(fake).introspect("tok") is None


def test_a_slow_trustpub_times_out_and_fails_closed(fake: FakeTrustpub) -> None:
    fake.answer("tok", Answer(200, b'{"active": false}', delay=3.0))
    client = make_client(fake, timeout=0.3)

    started = time.monotonic()
    with pytest.raises(IntrospectionUnavailable, match="cannot reach"):
        client.introspect("tok")
    assert time.monotonic() - started < 2.0


def test_an_unreachable_trustpub_fails_closed() -> None:
    with FakeTrustpub() as server:
        url = server.url
    client = IntrospectionClient(url, CLIENT_SECRET, client_id=CLIENT_ID, timeout=1)

    with pytest.raises(IntrospectionUnavailable, match="cannot reach"):
        client.introspect("tok")


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://idx:hunter2@trustpub.example", "must not hold credentials"),
        ("ftp://idx:hunter2@trustpub.example", "must not hold credentials"),
        ("ftp://trustpub.example", "must be an http(s) URL"),
        ("idx:hunter2@trustpub.example:8000", "must not hold credentials"),
        ("https://idx:hunt/er2@trustpub.example", "must not hold credentials"),
        ("https://idx:hunt#er2@trustpub.example", "must not hold credentials"),
        ("trustpub.example/hunter2", "must be an http(s) URL"),
    ],
    ids=[
        "credentials",
        "credentials-other-scheme",
        "other-scheme",
        "credentials-without-scheme",
        "password-with-slash",
        "password-with-hash",
        "no-scheme",
    ],
)
def test_a_trustpub_url_it_cannot_use_is_refused_without_its_password(
    url: str, refused: str
) -> None:
    with pytest.raises(ValueError, match=r"trustpub_url") as excinfo:
        IntrospectionClient(url, CLIENT_SECRET)

    assert refused in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


def test_refused_client_credentials_fail_closed_and_say_so(fake: FakeTrustpub) -> None:
    client = IntrospectionClient(fake.url, "tpc_wrong", client_id=CLIENT_ID)

    with pytest.raises(IntrospectionUnavailable, match="credentials"):
        client.introspect("tok")
    with pytest.raises(IntrospectionUnavailable, match="credentials"):
        client.probe()


def test_the_secret_alone_is_sent_as_a_bearer_credential(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    client = IntrospectionClient(fake.url, CLIENT_SECRET)

    assert client.introspect("tok") is not None
    client.probe()


@pytest.mark.parametrize("client_id", [None, CLIENT_ID], ids=["bearer", "basic"])
def test_a_netrc_entry_for_trustpub_does_not_replace_the_credentials(
    fake: FakeTrustpub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    client_id: str | None,
) -> None:
    # requests reads ~/.netrc (or $NETRC) for a call made without `auth`, and its entry
    # replaced the Bearer header: trustpub then refused every upload (and was sent the
    # netrc's password).
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1\nlogin someone\npassword netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    fake.answer("tok", active_answer(["demo-pkg"]))
    client = IntrospectionClient(fake.url, CLIENT_SECRET, client_id=client_id)

    assert client.introspect("tok") is not None
    client.probe()


@pytest.mark.parametrize("token", ["", "x" * 9000, "pypi-tök"], ids=["empty", "huge", "non-ascii"])
def test_tokens_that_cannot_be_upload_tokens_are_inactive_without_a_call(
    fake: FakeTrustpub, token: str
) -> None:
    assert make_client(fake).introspect(token) is None
    assert fake.asked() == 0


def test_concurrent_callers_share_one_bounded_cache(fake: FakeTrustpub) -> None:
    names = [f"t{i}" for i in range(20)]
    for name in names:
        fake.answer(name, active_answer(["demo-pkg"], jti=name))
    client = make_client(fake, cache_size=8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for name in names * 3:
                assert client.introspect(name) is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(client.cache) <= 8


def test_a_thread_per_request_reuses_one_session_and_leaves_none_open(
    fake: FakeTrustpub,
) -> None:
    # The launcher's server runs each request in a new thread. A session per thread
    # meant a new connection per request, each kept open for the life of the process.
    fake.answer("tok", active_answer(["demo-pkg"]))
    made: list[requests.Session] = []
    closed: list[requests.Session] = []

    class Recorded(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        def close(self) -> None:
            closed.append(self)
            super().close()

    client = make_client(fake, cache_ttl=0, session_factory=Recorded)

    for _ in range(20):
        thread = threading.Thread(target=client.introspect, args=("tok",))
        thread.start()
        thread.join()
    client.close()

    assert fake.asked("tok") == 20
    assert len(made) == 1
    assert closed == made


def test_close_also_closes_the_sessions_of_calls_under_way(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    asking, closed_client = threading.Event(), threading.Event()
    made: list[requests.Session] = []
    closed: list[requests.Session] = []

    class HeldOpen(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        def post(self, *args: Any, **kwargs: Any) -> requests.Response:
            asking.set()
            assert closed_client.wait(5)
            return super().post(*args, **kwargs)

        def close(self) -> None:
            closed.append(self)
            super().close()

    client = make_client(fake, cache_ttl=0, session_factory=HeldOpen)
    caller = threading.Thread(target=client.introspect, args=("tok",))
    caller.start()
    assert asking.wait(5)
    client.close()
    closed_client.set()
    caller.join(5)

    assert fake.asked("tok") == 1
    assert len(made) == 1
    assert closed == made
    # A call after close() still answers, and leaves no session open either.
    closed_client.set()
    assert client.introspect("tok") is not None
    assert len(made) == 2
    assert closed == made


# -- decisions -----------------------------------------------------------------


def test_the_authorizer_allows_only_the_tokens_projects(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    authorizer = UploadAuthorizer(make_client(fake))

    assert authorizer.check_upload("__token__", "tok", ["Demo_Pkg"]).allowed
    refused = authorizer.check_upload("__token__", "tok", ["demo-pkg", "other"])
    assert not refused.allowed
    assert "other" in refused.reason
    assert not authorizer.check_upload("alice", "tok", ["demo-pkg"]).allowed
    assert not authorizer.check_upload("__token__", "unknown", ["demo-pkg"]).allowed


@pytest.mark.parametrize(
    "projects",
    [
        [],
        ["\u212aelvin-pkg"],  # KELVIN SIGN: str.lower() makes it a "k"
        ["demo-pkg", "x\n2030-01-01 INFO upload allowed: victim-1.0.tar.gz"],
        ["demo-pkg", "-demo-pkg"],
    ],
    ids=["none", "lower-cases-into-ascii", "line-break", "leading-separator"],
)
def test_the_authorizer_refuses_uploads_that_name_no_valid_project(
    fake: FakeTrustpub, projects: list[str]
) -> None:
    fake.answer("tok", active_answer(["demo-pkg", "kelvin-pkg"]))
    decision = UploadAuthorizer(make_client(fake)).check_upload("__token__", "tok", projects)

    assert not decision.allowed
    assert "\n" not in decision.reason  # it is logged


def test_the_authorizer_denies_when_trustpub_fails(fake: FakeTrustpub) -> None:
    fake.answer("tok", Answer(500, b""))
    decision = UploadAuthorizer(make_client(fake)).check_upload("__token__", "tok", ["demo-pkg"])

    assert not decision.allowed
    assert "cannot check" in decision.reason


def test_the_auther_hook_checks_tokens_and_delegates_other_users(fake: FakeTrustpub) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    authorizer = UploadAuthorizer(make_client(fake))
    auther = authorizer.auther(fallback=lambda user, password: (user, password) == ("ann", "pw"))

    assert auther("__token__", "tok")
    assert not auther("__token__", "other")
    assert auther("ann", "pw")
    assert not auther("ann", "tok")
    assert not authorizer.auther()("ann", "pw")


# -- a client library ------------------------------------------------------------

INTEGRATIONS = Path(__file__).resolve().parents[2] / "app" / "integrations"


def test_the_package_imports_only_the_standard_library_requests_and_itself() -> None:
    # urllib3: requests' own transport, which requests installs (its read errors).
    allowed = set(sys.stdlib_module_names) | {"requests", "urllib3", "app"}
    for path in INTEGRATIONS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                if name.startswith("app"):
                    assert name.startswith("app.integrations"), f"{path.name} imports {name}"


class _Recorder(BaseHTTPRequestHandler):
    """A proxy that records what it is sent, and answers 502."""

    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.requestline, self.headers.get("Authorization", ""), body))
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_environment_proxy_is_not_sent_the_secret_or_the_token(
    fake: FakeTrustpub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.answer("tok", active_answer(["demo-pkg"]))
    _Recorder.seen = []
    with LoopbackServer(_Recorder) as proxy:
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)

        answer = make_client(fake).introspect("tok")

    assert answer is not None  # trustpub itself was asked
    assert answer.projects == {"demo-pkg"}
    assert _Recorder.seen == []


class _EndlessAnswer(BaseHTTPRequestHandler):
    """An answer without a length that floods, or that trickles a byte at a time."""

    protocol_version = "HTTP/1.0"
    mode = "flood"
    sent = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            if type(self).mode == "flood":
                for _ in range(1600):  # 100 MiB
                    self.wfile.write(b" " * 65536)
                    type(self).sent += 65536
            else:
                for _ in range(12):  # each byte well within the read timeout
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
                self.wfile.write(b'{"active": false}')
        except OSError:
            pass  # the client hung up: what the test wants

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [("flood", "too large"), ("trickle", "took too long")],
)
def test_an_answer_is_read_only_as_far_as_its_bound_and_deadline(mode: str, refusal: str) -> None:
    _EndlessAnswer.mode, _EndlessAnswer.sent = mode, 0
    with LoopbackServer(_EndlessAnswer) as server:
        client = IntrospectionClient(server.url, CLIENT_SECRET, client_id=CLIENT_ID, timeout=1)
        started = time.monotonic()
        with pytest.raises(IntrospectionUnavailable, match=refusal):
            client.introspect("tok")
        took = time.monotonic() - started

    assert took < 4  # three timeouts, and a read
    assert _EndlessAnswer.sent < 16 * 1024 * 1024  # not 100 MiB taken in before the check
