"""Several service processes on one Redis, and restarts under load."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .conftest import Deployment, Service, introspect, mint

pytestmark = pytest.mark.slow


def test_two_processes_share_replay_and_revocation_state(
    deployment: Deployment, start_service: Callable[..., Service]
) -> None:
    first, second = start_service(deployment), start_service(deployment)
    token = deployment.make_token()
    barrier = threading.Barrier(16)

    def fire(index: int) -> int:
        barrier.wait(timeout=10)
        return mint(first if index % 2 else second, token).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = Counter(pool.map(fire, range(16)))

    # One OIDC token, fired 16 times at two processes (four workers): one upload token.
    assert statuses == Counter({200: 1, 422: 15})

    upload = mint(first, deployment.make_token()).json()["token"]
    assert introspect(second, deployment, upload)["active"] is True
    assert requests.post(f"{first.base}/oauth/revoke", data={"token": upload}, timeout=5).ok
    # Seen by the other process at once: no cache between the store and introspection.
    assert introspect(second, deployment, upload) == {"active": False}


def test_graceful_restart_and_shutdown_under_load_never_answer_500(
    deployment: Deployment, start_service: Callable[..., Service]
) -> None:
    service = start_service(deployment)
    upload = mint(service, deployment.make_token()).json()["token"]
    statuses: Counter[int] = Counter()
    refused_after_stop: list[str] = []
    stopping = threading.Event()
    done = threading.Event()

    def load(kind: str) -> None:
        session = requests.Session()
        while not done.is_set():
            try:
                if kind == "mint":
                    response = session.post(
                        f"{service.base}/_/oidc/mint-token",
                        json={"token": deployment.make_token()},
                        timeout=10,
                    )
                else:
                    response = session.post(
                        f"{service.base}/oauth/introspect",
                        data={"token": upload},
                        headers={"Authorization": f"Bearer {deployment.secret}"},
                        timeout=10,
                    )
                statuses[response.status_code] += 1
            except requests.ConnectionError as exc:
                # Only once the service is going away may a connection be refused.
                if not stopping.is_set():
                    raise AssertionError(f"connection failed before shutdown: {exc}") from exc
                refused_after_stop.append(type(exc).__name__)
                time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(kind,)) for kind in ("mint", "introspect") * 2]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    service.process.send_signal(signal.SIGHUP)  # gunicorn: replace every worker gracefully
    time.sleep(3.0)
    served_before_stop = sum(statuses.values())
    stopping.set()
    exit_code = service.stop()
    done.set()
    for thread in threads:
        thread.join(timeout=15)

    assert exit_code == 0
    assert served_before_stop > 20
    assert set(statuses) == {200}, statuses


def raw_exchange(service: Service, request: bytes) -> tuple[int, bytes]:
    """Send `request` as is, close our side, and read the whole answer."""
    host, port = service.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


MINT_HEAD = b"POST /_/oidc/mint-token HTTP/1.1\r\nHost: trustpub\r\nConnection: close\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        MINT_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        MINT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        # Fewer bytes than announced, then the client stops sending: gunicorn hands the
        # hot path a short body (not JSON), no error.
        MINT_HEAD + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"tok',
        # The connection ends inside a chunk: gunicorn raises NoMoreData, an OSError,
        # which werkzeug turns into its own 400 "bad-request" (no code of the contract).
        MINT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n50\r\n" + b'{"tok',
    ],
    ids=["bad-chunk-size", "missing-chunk-terminator", "body-cut-short", "chunk-cut-short"],
)
def test_a_body_that_cannot_be_read_is_the_clients_error_never_a_500(
    deployment: Deployment, start_service: Callable[[Deployment], Service], request_bytes: bytes
) -> None:
    # gunicorn raises its own parse errors (not OSErrors, which werkzeug answers with
    # 400) while the app reads such a body: they reached the catch-all 500.
    service = start_service(deployment, workers=1)

    status, body = raw_exchange(service, request_bytes)

    assert status == 422, body
    assert b'"code":"invalid-payload"' in body
    assert "unhandled error" not in service.log.read_text()


# gunicorn takes SCRIPT_NAME from a request header when the peer is a trusted forwarder
# (127.0.0.1 by default: a proxy on the same host, a mesh sidecar), and proxies other
# than nginx pass headers with underscores through.
SCRIPT_NAME_HEAD = b"Host: trustpub\r\nConnection: close\r\nSCRIPT_NAME: "


@pytest.mark.parametrize(
    ("path", "script_name", "status", "answer"),
    [
        # The proxy routes /_/oidc/ here; with the prefix stripped, the internal /metrics
        # (or /api/, /oauth/introspect) was served to whoever sent the header.
        (b"/_/oidc/metrics", b"/_/oidc", 404, b'"code":"not-found"'),
        # A SCRIPT_NAME the path does not start with was gunicorn's own HTML 500.
        (b"/_/oidc/audience", b"/elsewhere", 200, b'{"audience":'),
    ],
    ids=["internal-path", "foreign-prefix"],
)
def test_a_script_name_header_changes_nothing(
    deployment: Deployment,
    start_service: Callable[[Deployment], Service],
    path: bytes,
    script_name: bytes,
    status: int,
    answer: bytes,
) -> None:
    service = start_service(deployment, workers=1)
    request = b"GET " + path + b" HTTP/1.1\r\n" + SCRIPT_NAME_HEAD + script_name + b"\r\n\r\n"

    answered, body = raw_exchange(service, request)

    assert answered == status, body
    assert answer in body, body


INTROSPECT_HEAD = b"POST /oauth/introspect HTTP/1.1\r\nHost: trustpub\r\nConnection: close\r\n"


@pytest.mark.parametrize(
    "malformed",
    [
        b"Authorization Bearer %s\r\n",  # the colon forgotten: not a header line
        b"Authorization Bearer %s: x\r\n",  # a header name with spaces in it
        b"Authorization: Basic x\r\n Bearer %s\r\n",  # obsolete line folding
        # The secret on a line of its own (a value that began with a line break): every
        # character of a tpc_ secret or a JWT is one a header name may hold.
        b"Authorization: Bearer\r\n%s\r\n",
    ],
    ids=["no-colon", "spaces-in-name", "folded", "secret-alone-on-a-line"],
)
def test_a_malformed_authorization_line_never_puts_the_secret_in_the_log(
    deployment: Deployment, start_service: Callable[[Deployment], Service], malformed: bytes
) -> None:
    # gunicorn refuses these before the app sees them, and logs (and answers) the line it
    # could not parse: with the credential in it.
    service = start_service(deployment, workers=1)
    secret = deployment.secret.encode()
    request = INTROSPECT_HEAD + malformed % secret + b"Content-Length: 0\r\n\r\n"

    status, body = raw_exchange(service, request)

    assert status == 400, body
    assert secret not in body
    time.sleep(0.2)  # the worker's log line
    assert deployment.secret not in service.log.read_text()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # The app refuses these before it reads their body (no credentials, a mistyped
        # path); gunicorn then drains the body to keep the connection, and a body that is
        # not the chunks it announced was quoted whole: its first line, the token.
        (
            b"POST /oauth/introspect HTTP/1.1\r\nHost: trustpub\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\ntoken=%s\r\n0\r\n\r\n",
            401,
        ),
        (
            b"POST /_/oidc/mint-token/ HTTP/1.1\r\nHost: trustpub\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n{"token": "%s"}\r\n0\r\n\r\n',
            404,
        ),
        # A token in the query after a space: the rest of the line is the HTTP version.
        (b"POST /oauth/introspect?token=Bearer %s HTTP/1.1\r\nHost: trustpub\r\n\r\n", 400),
    ],
    ids=["drained-after-401", "drained-after-404", "token-as-version"],
)
def test_a_token_the_http_parser_could_not_parse_stays_out_of_the_log(
    deployment: Deployment,
    start_service: Callable[[Deployment], Service],
    request_bytes: bytes,
    status: int,
) -> None:
    service = start_service(deployment, workers=1)
    token = deployment.make_token().encode()

    answered, body = raw_exchange(service, request_bytes % token)

    assert answered == status, body
    assert token not in body
    time.sleep(0.2)  # the worker's log line
    logged = service.log.read_text()
    assert "Invalid request from ip=127.0.0.1" in logged
    assert token.decode() not in logged


# Requests gunicorn refuses itself, before the app sees them: each answered in JSON with a
# code, as every other error is, and not with gunicorn's HTML page. The route decides the
# shape when gunicorn has read it (the contract's envelope under /_/oidc/).
GENERIC = "error"
OIDC = "errors"


@pytest.mark.parametrize(
    ("request_bytes", "status", "shape", "code"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414, GENERIC, "request-uri-too-long"),
        (b"HELLO\r\n\r\n", 400, GENERIC, "bad-request"),
        (b"GET / HTTP/9.9\r\n\r\n", 400, GENERIC, "bad-request"),
        (MINT_HEAD + b"X-A: 1\r\n" * 70 + b"\r\n", 431, GENERIC, "request-header-fields-too-large"),
        (
            MINT_HEAD + b"X-A: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            GENERIC,
            "request-header-fields-too-large",
        ),
        (INTROSPECT_HEAD + b"Bad Header\r\n\r\n", 400, GENERIC, "bad-request"),
        (MINT_HEAD + b"Transfer-Encoding: gzip\r\n\r\n", 400, OIDC, "bad-request"),
    ],
    ids=[
        "line-too-long",
        "not-http",
        "http-9",
        "many-fields",
        "long-field",
        "bad-header",
        "mint-coding",
    ],
)
def test_a_request_the_http_server_refuses_is_answered_in_json(
    deployment: Deployment,
    start_service: Callable[[Deployment], Service],
    request_bytes: bytes,
    status: int,
    shape: str,
    code: str,
) -> None:
    service = start_service(deployment, workers=1)

    answered, body = raw_exchange(service, request_bytes)

    assert answered == status, body
    document = json.loads(body)
    if shape == OIDC:
        assert document["message"] == "Token request failed", document
        (error,) = document["errors"]
    else:
        error = document["error"]
    assert error["code"] == code, document
    assert error["description"], document
    assert "<" not in error["description"], document


# A client's mistakes put credentials where gunicorn's access log (combined format) wrote
# them: the user name of a Basic header (the secret, sent without a name) and the query
# string; a Referer may carry a token too.
@pytest.mark.parametrize(
    ("method", "path", "options", "status"),
    [
        ("POST", "/oauth/introspect", {"auth": ("{secret}", ""), "data": {"token": "x"}}, 401),
        ("GET", "/oauth/introspect?token={secret}", {}, 405),
        ("GET", "/healthz", {"headers": {"Referer": "https://ci.example/?token={secret}"}}, 200),
    ],
    ids=["basic-secret-without-name", "token-in-query", "token-in-referer"],
)
def test_the_access_log_is_json_lines_without_credentials(
    deployment: Deployment,
    start_service: Callable[..., Service],
    method: str,
    path: str,
    options: dict[str, object],
    status: int,
) -> None:
    service = start_service(deployment, workers=1, args=["--access-log"])
    filled = json.loads(json.dumps(options).replace("{secret}", deployment.secret))
    if "auth" in filled:
        filled["auth"] = tuple(filled["auth"])

    response = requests.request(
        method, service.base + path.format(secret=deployment.secret), timeout=10, **filled
    )

    assert response.status_code == status, response.text
    time.sleep(0.2)  # the worker's access line
    text = service.log.read_text()
    assert deployment.secret not in text
    # gunicorn's lines too: one format for a log pipeline to read.
    entries = [json.loads(line) for line in text.splitlines()]
    (access,) = [
        entry
        for entry in entries
        if entry["logger"] == "gunicorn.access"
        and entry["request_id"] == response.headers["X-Request-ID"]
    ]
    assert access["fields"]["method"] == method
    assert access["fields"]["path"] == path.partition("?")[0]
    assert access["fields"]["status"] == status
