"""The pypiserver launcher's start-up checks (its serving is covered by test_publish_loop)."""

from __future__ import annotations

import base64
import importlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

import pytest

from app.integrations import IntrospectionClient, UploadAuthorizer, UploadGuard
from app.integrations import pypiserver_launcher as launcher
from app.integrations.pypiserver_launcher import (
    _pypiserver_app,
    split_argv,
    with_trustpub_auther,
)

from .fake_trustpub import CLIENT_ID, CLIENT_SECRET, FakeTrustpub, active_answer
from .tools import python_module, run

LAUNCHER = "app.integrations.pypiserver_launcher"


@pytest.fixture
def fake() -> Iterator[FakeTrustpub]:
    with FakeTrustpub() as server:
        yield server


def launch(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = run(python_module(LAUNCHER, *args), env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    return result.returncode, result.output


def test_credentials_that_trustpub_refuses_stop_the_launcher(
    fake: FakeTrustpub, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("tpc_not-the-secret\n")

    code, output = launch(
        tmp_path,
        *("--trustpub-url", fake.url, "--client-id", "index"),
        *("--client-secret-file", str(secret), "--", "run", "-p", "0", str(tmp_path)),
    )

    assert code == 2
    assert "client credentials" in output


def test_password_uploads_need_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("tpc_x\n")

    code, output = launch(
        tmp_path,
        *("--trustpub-url", "http://127.0.0.1:9", "--client-secret-file", str(secret)),
        *("--allow-password-uploads", "--", "run", str(tmp_path)),
    )

    assert code == 2
    assert "-P password file" in output


def test_a_missing_secret_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = launch(
        tmp_path,
        *("--trustpub-url", "http://127.0.0.1:9"),
        *("--client-secret-file", str(tmp_path / "absent"), "--", "run"),
    )

    assert code == 2
    assert "--client-secret-file" in output


def test_arguments_after_the_separator_are_pypiservers() -> None:
    assert split_argv(["--cache-ttl", "0", "--", "run", "-p", "8080", "--", "x"]) == (
        ["--cache-ttl", "0"],
        ["run", "-p", "8080", "--", "x"],
    )
    assert split_argv(["--cache-ttl", "0"]) == (["--cache-ttl", "0"], [])


def test_an_upload_token_opens_no_download_or_listing_behind_passwords(
    fake: FakeTrustpub, tmp_path: Path
) -> None:
    # A private index: pypiserver asks for credentials to download and list too. Its
    # password file needs passlib, which the tests lack: a refusing auther stands in.
    fake.answer("tok", active_answer(["demo-pkg"]))
    (tmp_path / "private_b-1.0.tar.gz").write_bytes(b"not public")
    client = IntrospectionClient(fake.url, CLIENT_SECRET, client_id=CLIENT_ID)
    authorizer = UploadAuthorizer(client)
    config_module: Any = importlib.import_module("pypiserver.config")
    config = config_module.Config.from_args(["run", "-a", ".", "-P", ".", str(tmp_path)])
    config = config.with_updates(
        authenticate=["download", "list"], auther=lambda user, password: False
    )
    config = with_trustpub_auther(config, authorizer)
    index = UploadGuard(_pypiserver_app(config), authorizer)

    def get(path: str) -> str:
        statuses: list[str] = []
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "index",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"__token__:tok").decode(),
        }
        b"".join(index(environ, lambda status, headers, *_: statuses.append(status)))
        return statuses[0].split()[0]

    assert [get("/simple/private-b/"), get("/packages/private_b-1.0.tar.gz")] == ["403", "403"]
    assert authorizer.auther()("__token__", "tok")  # the token itself is active


def _closed(connection: socket.socket) -> bool:
    try:
        return connection.recv(1024) == b""
    except TimeoutError:  # still held open
        return False


def _hello(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def test_the_wsgiref_server_bounds_stalled_clients_in_time_and_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(launcher, "CLIENT_TIMEOUT_SECONDS", 2.0)
    monkeypatch.setattr(launcher, "MAX_CONCURRENT_REQUESTS", 4)
    server = launcher.ThreadingWSGIServer(
        ("127.0.0.1", 0), launcher.timed_handler(WSGIRequestHandler)
    )
    server.set_app(_hello)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    stalled = [socket.create_connection(server.server_address, timeout=4) for _ in range(8)]
    try:
        for connection in stalled:
            connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")  # and no more
        # Past the cap, a connection is closed once accepted: not queued behind stalled
        # ones, and well before their timeout.
        started = time.monotonic()
        for connection in stalled[4:]:
            connection.settimeout(max(0.01, started + 1.0 - time.monotonic()))
        closed_at_once = sum(_closed(connection) for connection in stalled[4:])
        # Within the cap, each is cut off once it has sent nothing for the timeout.
        cut_off = sum(_closed(connection) for connection in stalled[:4])

        with socket.create_connection(server.server_address, timeout=5) as fresh:
            fresh.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = fresh.recv(1024)
    finally:
        for connection in stalled:
            connection.close()
        server.shutdown()
        server.server_close()

    assert closed_at_once == 4
    assert cut_off == 4
    assert answer.startswith(b"HTTP/1.0 200")  # every slot free again
    assert "Traceback" not in capsys.readouterr().err  # a cut-off client is no error
