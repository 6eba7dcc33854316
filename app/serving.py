"""Running the Flask app under gunicorn from the `trustpub serve` command."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from flask import Flask
from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.http.errors import ParseException
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

from app.api.errors import Answer, answer_server_refusal
from app.api.wire import JSON_TYPE
from app.metrics import mark_process_dead
from app.observability import REQUEST_ID, log_fields

# What a header name is as gunicorn's errors name it: an RFC 9110 token, upper-cased
# (gunicorn upper-cases a name before it raises with it). Anything else it quotes is
# part of a line it could not parse, which may be a credential alone: a tpc_ secret or a
# JWT is made of token characters too, but never of upper case only.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Z-]+")
_NOT_SHOWN = "(not shown: it may hold a credential)"
# The attributes in which gunicorn's parse errors quote what the client sent, and its log
# line and page then quote it too: a request line, method or version, a header, a chunk
# of the body (drained after the app answered without reading it: a 401, a 404), a
# PROXY line. Any of them may hold a token or a secret sent in the wrong place.
_QUOTED = ("req", "method", "version", "hdr", "expect", "data", "term", "line")


class RedactingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, except for the answer to a request it cannot parse or
    serve: JSON in the route's error shape, as every other error is, not gunicorn's
    HTML page; and without the text it could not parse, in that answer and in its log
    line: a malformed `Authorization` line (`Authorization Bearer tpc_...`, the colon
    forgotten) is quoted whole, secret and all."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ParseException):
            _redact(exc)
        if isinstance(getattr(req, "path", None), str):
            # gunicorn logs a failed request's whole target ("Error handling request POST
            # /oauth/introspect?token=..."): its query, fragment or an absolute target's
            # user and password. The request is over: its connection closes.
            req.uri = req.path
        # gunicorn chooses the status, logs and writes its page: the page goes to a stand-in
        # and only its status is kept.
        page = _ErrorPage()
        super().handle_error(req, page, addr, exc)
        # The route decides the answer's shape; a header gunicorn refused comes with the
        # request it belongs to.
        path = getattr(req or getattr(exc, "req", None), "path", None)
        answer = answer_server_refusal(path if isinstance(path, str) else "", page.status())
        try:
            util.write_nonblock(client, _raw_answer(answer))
        except Exception:
            self.log.debug("Failed to send error message.")

    def handle_quit(self, sig: int, frame: Any) -> None:
        # gthread's own shuts its thread pool down here, in the signal handler. A SIGQUIT or
        # SIGINT that lands while the main thread is inside the pool's submit(), which holds
        # the same lock, hangs the worker until the master kills it. The pool's threads are
        # stopped at exit anyway (concurrent.futures joins them), as after gthread's.
        Worker.handle_quit(self, sig, frame)


def _redact(exc: ParseException) -> None:
    for name in _QUOTED:
        value = getattr(exc, name, None)
        if not isinstance(value, str | bytes):
            continue  # InvalidHeader's `req` is the request, not a line of it
        if name == "hdr" and _HEADER_NAME.fullmatch(str(value)):
            continue  # a header name alone: what was wrong with it is worth saying
        setattr(exc, name, _NOT_SHOWN)


class _ErrorPage:
    """What gunicorn's error page is written to in place of the client's socket."""

    def __init__(self) -> None:
        self._written = bytearray()

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self._written += data

    def status(self) -> int:
        # gunicorn's own status line: "HTTP/1.1 400 Bad Request".
        try:
            return int(bytes(self._written).split(b" ", 2)[1])
        except (IndexError, ValueError):
            return 500


def _raw_answer(answer: Answer) -> bytes:
    status, headers, body = answer
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in [("Content-Type", JSON_TYPE), *headers]]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class TrustpubLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, its lines written by trustpub's handler (JSON lines, or text with
    `--log-format text`) rather than in gunicorn's own formats, so that a log pipeline
    reads one format.

    Its access line holds what an operator needs and no credential. gunicorn's combined
    format logs the query string (where a misbehaving client puts a token), the Referer,
    and the user name of an `Authorization: Basic` header: the secret itself, for a
    client that sends its secret with no name (`auth=(secret, "")`)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        if not logging.getLogger().handlers:
            # Nothing of trustpub's to write them (a runner that did not configure logging,
            # as the bench's floors): without gunicorn's own handlers its lines would be lost.
            return
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                if getattr(handler, "_gunicorn", False):
                    logger.removeHandler(handler)
            logger.propagate = True

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = str(resp.status).split(None, 1)[0]
        fields = {
            "method": environ.get("REQUEST_METHOD", "-"),
            "path": environ.get("PATH_INFO", ""),  # without the query string
            "status": int(status) if status.isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "seconds": round(request_time.total_seconds(), 6),
            "remote_addr": environ.get("REMOTE_ADDR", "-"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        # The request's id as its answer carried it: the app's context has ended by now.
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), "-"
        )
        token = REQUEST_ID.set(request_id)
        try:
            log_fields(self.access_log, "access", fields)
        finally:
            REQUEST_ID.reset(token)


# Production worker settings: threads let one worker wait on Redis for one request while
# serving another; the timeouts bound a stuck request; graceful_timeout lets in-flight
# exchanges finish on SIGTERM instead of failing.
DEFAULTS: dict[str, Any] = {
    "worker_class": RedactingThreadWorker,  # gthread
    "timeout": 30,
    "graceful_timeout": 20,
    "keepalive": 5,
    "limit_request_line": 4094,
    "limit_request_fields": 64,
    "limit_request_field_size": 8190,
    "errorlog": "-",
    "logger_class": TrustpubLogger,
    # gunicorn's control socket lives in the home directory and is shared by every
    # instance of the user; trustpub is managed by signals and its process supervisor.
    "control_socket_disable": True,
    # gunicorn lets a trusted forwarder (127.0.0.1 by default: a proxy on the same host, a
    # mesh sidecar) set SCRIPT_NAME and PATH_INFO by request header. trustpub is served at
    # the root and routed by path: a client's `SCRIPT_NAME: /_/oidc` on /_/oidc/metrics
    # reached the internal /metrics through a proxy that passes underscored headers.
    "forwarder_headers": "",
    # The app was built (and validated) before forking; workers share nothing mutable
    # that matters: Redis pools reconnect per process, key caches are per process.
    "preload_app": True,
}


def _child_exit(server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)  # its metric files stop counting as live


class GunicornApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self._app = app
        self._options = {**DEFAULTS, "child_exit": _child_exit, **options}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app
