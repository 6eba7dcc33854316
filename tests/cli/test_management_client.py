"""How the management commands reach the service: the credential they send, and what
they say when TRUSTPUB_URL answers something that is not trustpub. In process, against
a loopback HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner, Result

from app.cli import cli

SECRET = "tpc_" + "s3cr3t" * 7


class _Server(ThreadingHTTPServer):
    answer_json = True
    authorizations: list[str]
    # Audit answers by the `before` asked for, and the queries asked.
    audit_pages: dict[str | None, dict[str, Any]]
    queries: list[dict[str, list[str]]]
    # Answers to the next POSTs, in order: (status, headers, body).
    posts: list[tuple[int, dict[str, str], dict[str, Any]]]
    # The bodies of the PUTs received (each answered as a first confirmation).
    puts: list[Any]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        query = parse_qs(urlsplit(self.path).query)
        self.server.queries.append(query)
        if self.server.answer_json:
            before = query.get("before", [None])[0]
            answer = self.server.audit_pages.get(before, {"records": [], "next_before": None})
            body, kind = json.dumps(answer).encode(), "application/json"
        else:  # an index's page for a path it does not route to trustpub
            body, kind = b"<html><body>Simple index</body></html>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        if not self.server.posts:
            self._answer()
            return
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, headers, answer = self.server.posts.pop(0)
        body = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.puts.append(sent)
        body = json.dumps({"confirmed": True, "changed": True, **sent}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.authorizations = []
    server.audit_pages = {}
    server.queries = []
    server.posts = []
    server.puts = []
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cli_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The CLI's waits, recorded instead of waited. Patching `time.sleep` patches it for
    every thread: a registrations poller left running by an earlier test's app would
    spin and fill the record. The CLI runs in the main thread; others still sleep."""
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            slept.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr("app.cli.time.sleep", sleep)
    return slept


def _invoke(server: _Server, tmp_path: Path, args: list[str], secret: str = SECRET) -> Result:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path),
        "TRUSTPUB_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "TRUSTPUB_CLIENT_SECRET": secret,
    }
    return CliRunner().invoke(cli, args, env=env)


@pytest.mark.parametrize(
    "args",
    [
        ["publishers", "list", "demo-pkg"],
        ["publishers", "add", "demo-pkg", "--repository", "o/r", "--owner-id", "1",
         "--workflow", "r.yml"],
        ["publishers", "remove", "demo-pkg", "rp_1"],
        ["audit"],
    ],
)  # fmt: skip
def test_an_answer_that_is_not_trustpubs_is_a_clear_error(
    server: _Server, tmp_path: Path, args: list[str]
) -> None:
    server.answer_json = False

    result = _invoke(server, tmp_path, args)

    assert result.exit_code == 1, repr(result.exception)
    assert "is no answer of trustpub's" in result.output


@pytest.mark.parametrize("secret", [SECRET + "\n", f"  {SECRET}\r\n"])
def test_a_secret_is_sent_without_surrounding_whitespace(
    server: _Server, tmp_path: Path, secret: str
) -> None:
    result = _invoke(server, tmp_path, ["audit"], secret)

    assert result.exit_code == 0, result.output
    assert server.authorizations == [f"Bearer {SECRET}"]


@pytest.mark.parametrize(
    "secret",
    [
        "tpc_…",  # maintainers.md's placeholder, pasted as is
        SECRET[:10] + " " + SECRET[10:],
        SECRET[:10] + "\n" + SECRET[10:],
        SECRET[:10] + "\x7f" + SECRET[10:],
    ],
)
def test_a_secret_no_header_can_carry_is_refused_without_being_printed(
    server: _Server, tmp_path: Path, secret: str
) -> None:
    result = _invoke(server, tmp_path, ["audit"], secret)

    assert result.exit_code == 1, repr(result.exception)
    assert "copy the secret again" in result.output
    assert SECRET[10:] not in result.output
    assert server.authorizations == []


@pytest.mark.parametrize(
    ("limit", "printed", "limits_asked"),
    [
        ("100", ["1-0", "2-0", "3-0"], ["100", "98", "98"]),
        ("2", ["1-0", "2-0"], ["2"]),
        ("3", ["1-0", "2-0", "3-0"], ["3", "1", "1"]),
    ],
)
def test_audit_goes_on_where_each_answer_stopped_until_it_has_its_limit(
    server: _Server, tmp_path: Path, limit: str, printed: list[str], limits_asked: list[str]
) -> None:
    server.audit_pages = {
        None: {"records": [{"id": "1-0"}, {"id": "2-0"}], "next_before": "2-0"},
        "2-0": {"records": [], "next_before": "5-0"},  # the answer's scan found nothing
        "5-0": {"records": [{"id": "3-0"}], "next_before": None},
    }

    result = _invoke(server, tmp_path, ["audit", "--project", "demo-pkg", "--limit", limit])

    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == printed
    assert [query["limit"][0] for query in server.queries] == limits_asked
    assert all(query["project"] == ["demo-pkg"] for query in server.queries)


@pytest.mark.parametrize(("flag", "asked"), [([], None), (["--refusals"], ["true"])])
def test_audit_asks_for_the_refusals_trail_only_when_told(
    server: _Server, tmp_path: Path, flag: list[str], asked: list[str] | None
) -> None:
    server.audit_pages = {None: {"records": [{"id": "1-0"}], "next_before": None}}

    result = _invoke(server, tmp_path, ["audit", *flag])

    assert result.exit_code == 0, result.output
    assert [query.get("refusals") for query in server.queries] == [asked]


def test_a_bulk_declaration_waits_out_a_rate_limit_and_goes_on(
    server: _Server, tmp_path: Path
) -> None:
    limited = {"error": {"code": "rate-limited", "description": "too many requests"}}
    server.posts = [
        (429, {"Retry-After": "1"}, limited),
        (200, {}, {"declared": 2, "created": 2, "epoch": "e:1"}),
    ]

    result = _invoke(server, tmp_path, ["projects", "declare", "a-pkg", "b-pkg"])

    assert result.exit_code == 0, result.output
    assert "rate limited; going on in 1 s" in result.output
    assert result.output.endswith("declared 2 names; 2 projects were new (epoch e:1)\n")
    assert server.posts == []  # asked again after the wait


def test_a_declaration_confirms_with_the_epoch_it_began_in(server: _Server, tmp_path: Path) -> None:
    names = tmp_path / "projects.txt"
    names.write_text("".join(f"pkg-{index}\n" for index in range(10_001)))  # two calls
    server.posts = [
        (200, {}, {"declared": 10_000, "created": 10_000, "epoch": "e:1"}),
        (200, {}, {"declared": 1, "created": 1, "epoch": "e:1"}),
    ]

    result = _invoke(
        server, tmp_path, ["projects", "declare", "--from-file", str(names), "--confirm"]
    )

    assert result.exit_code == 0, result.output
    assert result.output == "declared 10001 names; 10001 projects were new (epoch e:1)\nconfirmed\n"
    assert server.puts == [{"epoch": "e:1"}]


def test_a_data_loss_while_declaring_stops_before_any_confirmation(
    server: _Server, tmp_path: Path
) -> None:
    names = tmp_path / "projects.txt"
    names.write_text("".join(f"pkg-{index}\n" for index in range(10_001)))
    server.posts = [
        (200, {}, {"declared": 10_000, "created": 10_000, "epoch": "e:1"}),
        (200, {}, {"declared": 1, "created": 1, "epoch": "lost-since:2"}),
    ]

    result = _invoke(
        server, tmp_path, ["projects", "declare", "--from-file", str(names), "--confirm"]
    )

    assert result.exit_code == 1
    assert "the store lost its data while the names were declared: run this again" in result.output
    assert server.puts == []


def test_other_calls_report_a_rate_limit_at_once(server: _Server, tmp_path: Path) -> None:
    limited = {"error": {"code": "rate-limited", "description": "too many requests"}}
    server.posts = [(429, {"Retry-After": "1"}, limited)]

    result = _invoke(
        server,
        tmp_path,
        ["publishers", "add", "demo-pkg", "--repository", "o/r", "--owner-id", "1",
         "--workflow", "r.yml"],
    )  # fmt: skip

    assert result.exit_code == 1
    assert "rate-limited: too many requests" in result.output


def test_a_bulk_declaration_limited_without_end_gives_up(
    server: _Server, tmp_path: Path, cli_sleeps: list[float]
) -> None:
    # A proxy (or a budget someone else keeps spending) that answers 429 to every call:
    # the CLI must stop one day, and never ask again without waiting.
    limited = {"error": {"code": "rate-limited", "description": "too many requests"}}
    server.posts = [(429, {"Retry-After": "0"}, limited)] * 1000
    server.posts.append((200, {}, {"declared": 1, "created": 1, "epoch": "e:1"}))
    slept = cli_sleeps

    result = _invoke(server, tmp_path, ["projects", "declare", "a-pkg"])

    assert result.exit_code == 1, result.output
    assert "rate-limited: too many requests" in result.output
    assert len(server.posts) > 900  # it gave up long before the 1000th answer
    assert slept
    assert min(slept) >= 1


@pytest.mark.parametrize(
    ("retry_after", "exit_code", "slept_for"),
    [
        ("\u00b2", 1, []),  # superscript two is no number of seconds: the limit, reported
        ("9" * 5000, 0, [300]),  # more digits than int() takes: the longest wait
    ],
    ids=["superscript", "huge"],
)
def test_a_retry_after_that_is_no_number_of_seconds_is_reported_not_a_crash(
    server: _Server,
    tmp_path: Path,
    cli_sleeps: list[float],
    retry_after: str,
    exit_code: int,
    slept_for: list[float],
) -> None:
    limited = {"error": {"code": "rate-limited", "description": "too many requests"}}
    server.posts = [
        (429, {"Retry-After": retry_after}, limited),
        (200, {}, {"declared": 1, "created": 1, "epoch": "e:1"}),
    ]

    result = _invoke(server, tmp_path, ["projects", "declare", "a-pkg"])

    assert result.exit_code == exit_code, repr(result.exception)
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert cli_sleeps == slept_for


@pytest.mark.parametrize(
    ("url", "allow_plain_http", "sent"),
    [
        ("https://trustpub.example.com", False, True),
        ("https://10.0.0.5:8443", False, True),
        ("http://127.0.0.1:8000", False, True),
        ("http://127.0.0.2:8000", False, True),
        ("http://localhost:8000", False, True),
        ("http://[::1]:8000", False, True),
        ("http://trustpub.example.com", False, False),
        ("http://10.0.0.5:8000", False, False),
        ("http://[fd00::1]:8000", False, False),
        ("http://localhost.example.com", False, False),  # a name that may resolve anywhere
        ("http://trustpub.example.com", True, True),  # the operator's word for its network
        ("ftp://127.0.0.1", False, False),
        ("trustpub.example.com", False, False),
        ("https://", False, False),
        ("http://[::1", False, False),  # urlsplit's ValueError was a traceback
        ("https://trustpub.example.com:99999", False, False),
        ("https://admin:hunter2@trustpub.example.com", False, False),
    ],
)
def test_the_secret_is_sent_over_plain_http_only_to_this_machine(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    allow_plain_http: bool,
    sent: bool,
) -> None:
    requested: list[str] = []

    def request(method: str, address: str, **kwargs: Any) -> Any:
        requested.append(address)
        raise requests.ConnectionError("not sent anywhere in this test")

    monkeypatch.setattr(requests, "request", request)
    env = {"XDG_CONFIG_HOME": str(tmp_path), "TRUSTPUB_URL": url, "TRUSTPUB_CLIENT_SECRET": SECRET}
    if allow_plain_http:
        env["TRUSTPUB_ALLOW_PLAIN_HTTP"] = "1"

    result = CliRunner().invoke(cli, ["audit"], env=env)

    assert result.exit_code == 1, repr(result.exception)
    assert SECRET not in result.output
    if sent:
        assert requested == [url + "/api/v1/audit"]
        assert "cannot reach" in result.output
    else:
        assert requested == []
        assert "https://" in result.output or "holds credentials" in result.output
        assert "hunter2" not in result.output
