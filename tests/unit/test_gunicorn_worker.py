"""trustpub's gunicorn worker (app.serving.RedactingThreadWorker), where it departs from
gthread's: what it logs of a request the app failed, and a quick shutdown."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from gunicorn.config import Config
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    ExpectationFailed,
    InvalidChunkSize,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
    ObsoleteFolding,
    UnsupportedTransferCoding,
)

from app.serving import DEFAULTS, RedactingThreadWorker, TrustpubLogger

SECRET = "pypi-SENTINELSECRET"


@pytest.fixture
def worker() -> Iterator[RedactingThreadWorker]:
    config = Config()
    for key in ("worker_class", "logger_class", "errorlog"):
        config.set(key, DEFAULTS[key])
    made = RedactingThreadWorker(0, 0, [], None, 30, config, TrustpubLogger(config))
    yield made
    made.tmp.close()


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        (f"/oauth/introspect?token={SECRET}", "/oauth/introspect"),
        (f"/_/oidc/mint-token?token={SECRET}#x", "/_/oidc/mint-token"),
        (f"/_/oidc/mint-token#token={SECRET}", "/_/oidc/mint-token"),
        (f"http://user:{SECRET}@trustpub.example/_/oidc/mint-token", "/_/oidc/mint-token"),
        ("/healthz", "/healthz"),
    ],
    ids=["query", "query-and-fragment", "fragment", "absolute-with-password", "no-query"],
)
def test_a_request_the_app_failed_is_logged_without_its_query(
    worker: RedactingThreadWorker, caplog: pytest.LogCaptureFixture, uri: str, logged: str
) -> None:
    parts = urlsplit(uri)
    request = SimpleNamespace(
        method="POST",
        uri=uri,
        path=parts.path,
        query=parts.query,
        version=(1, 1),
        body=None,
        headers=[],
    )
    ours, theirs = socket.socketpair()
    caplog.set_level(logging.DEBUG)
    try:
        worker.handle_error(request, ours, ("127.0.0.1", 1234), RuntimeError("the app failed"))
        answer = theirs.recv(65536)
    finally:
        ours.close()
        theirs.close()

    assert answer.startswith(b"HTTP/1.1 500 ")
    (line,) = [r.getMessage() for r in caplog.records if "Error handling request" in r.getMessage()]
    assert line == f"Error handling request POST {logged}"
    assert SECRET not in caplog.text


def test_a_quick_shutdown_inside_the_pools_submit_exits_rather_than_hangs(
    worker: RedactingThreadWorker,
) -> None:
    # SIGQUIT or SIGINT may land while the main thread is inside the thread pool's
    # submit(), which holds the pool's shutdown lock: gthread's own handler then waits on
    # that lock forever.
    worker.tpool = ThreadPoolExecutor(max_workers=1)
    exit_codes: list[object] = []

    def signal_lands_inside_submit() -> None:
        with worker.tpool._shutdown_lock:  # type: ignore[attr-defined]
            try:
                worker.handle_quit(signal.SIGQUIT, None)
            except SystemExit as exc:
                exit_codes.append(exc.code)

    handler = threading.Thread(target=signal_lands_inside_submit, daemon=True)
    handler.start()
    handler.join(5)

    assert exit_codes == [0]
    assert not worker.alive
    worker.tpool.shutdown()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRequestLine(f"POST /oauth/introspect?token={SECRET} HTTP/1.1 x"), 400),
        (InvalidRequestMethod(SECRET), 400),
        (InvalidHTTPVersion(f"{SECRET} HTTP/1.1"), 400),
        (InvalidHeader(f"Bearer {SECRET}"), 400),
        (InvalidHeaderName(f"Authorization Bearer {SECRET}"), 400),
        (ObsoleteFolding(f" Bearer {SECRET}"), 400),
        (UnsupportedTransferCoding(SECRET), 501),
        (ExpectationFailed(SECRET), 417),
        # A body's first line, drained after the app answered without reading it.
        (InvalidChunkSize(f'{{"token": "{SECRET}"}}'.encode()), 400),
        (ChunkMissingTerminator(SECRET.encode()), 400),
        (InvalidProxyLine(f"PROXY {SECRET}"), 400),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_what_the_http_parser_could_not_parse_is_neither_logged_nor_answered(
    worker: RedactingThreadWorker, caplog: pytest.LogCaptureFixture, error: Exception, status: int
) -> None:
    request = SimpleNamespace(
        method="POST", uri="/oauth/introspect", path="/oauth/introspect", query="",
        version=(1, 1), body=None, headers=[],
    )  # fmt: skip
    ours, theirs = socket.socketpair()
    caplog.set_level(logging.DEBUG)
    try:
        worker.handle_error(request, ours, ("127.0.0.1", 1234), error)
        answer = theirs.recv(65536)
    finally:
        ours.close()
        theirs.close()

    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert SECRET.encode() not in answer
    assert "Invalid request from ip=127.0.0.1" in caplog.text
    assert SECRET not in caplog.text, caplog.text


def test_a_header_name_alone_is_still_named(
    worker: RedactingThreadWorker, caplog: pytest.LogCaptureFixture
) -> None:
    # Upper-case token characters only, as gunicorn names a header: never a credential,
    # and what an operator needs to find the client that sent it.
    ours, theirs = socket.socketpair()
    caplog.set_level(logging.DEBUG)
    try:
        worker.handle_error(None, ours, ("127.0.0.1", 1234), InvalidHeaderName("X_FORWARDED_FOR"))
        theirs.recv(65536)
    finally:
        ours.close()
        theirs.close()

    assert "Invalid HTTP header name: 'X_FORWARDED_FOR'" in caplog.text
