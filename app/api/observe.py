"""Per-request observability: request ids and latency histograms, and /metrics."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from app.metrics import metrics, render_latest
from app.observability import REQUEST_ID, request_id_from

blueprint = Blueprint("observe", __name__)


@blueprint.get("/metrics")
def exposition() -> Response:
    body, content_type = render_latest()
    return Response(body, content_type=content_type)


def install_request_hooks(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        g.request_id_token = REQUEST_ID.set(request_id_from(request.headers.get("X-Request-ID")))

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = REQUEST_ID.get()
        started = g.get("started")
        if started is not None:
            metrics().request_seconds.labels(
                # The endpoint name, never the raw path: unmatched paths share one label.
                request.endpoint or "unmatched",
                request.method if request.method in _METHODS else "other",
                str(response.status_code),
            ).observe(time.perf_counter() - started)
        return response

    @app.teardown_request
    def reset(_: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)


_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
