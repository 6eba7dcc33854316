"""Running the Flask app under gunicorn from the `trustpub serve` command."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from app.metrics import mark_process_dead

# Production worker settings: threads let one worker wait on Redis for one request while
# serving another; the timeouts bound a stuck request; graceful_timeout lets in-flight
# exchanges finish on SIGTERM instead of failing.
DEFAULTS: dict[str, Any] = {
    "worker_class": "gthread",
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
