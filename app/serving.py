"""Running the Flask app under gunicorn from the `trustpub serve` command."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.http.errors import InvalidHeader, InvalidHeaderName, InvalidRequestLine
from gunicorn.workers.gthread import ThreadWorker

from app.metrics import mark_process_dead

# What a header name is as gunicorn's errors name it: an RFC 9110 token, upper-cased
# (gunicorn upper-cases a name before it raises with it). Anything else it quotes is
# part of a line it could not parse, which may be a credential alone: a tpc_ secret or a
# JWT is made of token characters too, but never of upper case only.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Z-]+")
_NOT_SHOWN = "(not shown: it may hold a credential)"


class RedactingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, except that a request it cannot parse is logged and
    answered without the text it could not parse: a malformed `Authorization` line
    (`Authorization Bearer tpc_...`, the colon forgotten) is quoted whole, secret and all,
    in gunicorn's warning and in its 400 page."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, InvalidHeader | InvalidHeaderName) and not _HEADER_NAME.fullmatch(
            str(exc.hdr)
        ):
            exc.hdr = _NOT_SHOWN
        elif isinstance(exc, InvalidRequestLine):
            exc.req = _NOT_SHOWN  # its query string may hold a token
        super().handle_error(req, client, addr, exc)


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
