"""What each part of a mint costs: the mint counted again with parts of it switched off.

The mint's targets (docs/performance.md) leave trustpub's own logic a fraction of what it
costs today; whether any choice about what a mint does could close that gap is a
question of what each part costs. `make profile` counts the mint once as it is, then
once per row of `VARIANTS`, with those parts switched off in the live app, and prints
the instructions each variant saves.

Switching a part off reaches into the app's internals (every seam is in this module;
`tests/bench/test_parts.py` holds each variant to replacing what it names and restoring
it, `tests/bench/test_profile.py` counts them all): an audit trail of None, a no-op
rate limiter, metric children that record nothing, the request-id middleware passing
requests through, and publisher matching answered from the first mint's result. Each
variant still answers 200 with an upload token; none of them is a way to run trustpub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from .instructions import WSGICall

# What switches a part off in a built app, for as long as it is entered.
Switch = Callable[[WSGICall], AbstractContextManager[None]]


def _hot_paths(app: WSGICall) -> Any:
    from app.api.hot_paths import HotPaths

    layer: Any = getattr(app, "wsgi_app", app)
    while not isinstance(layer, HotPaths):
        layer = getattr(layer, "_app", None) or layer.app  # trustpub's middleware, ProxyFix
    return layer


def _exchange(app: WSGICall) -> Any:
    return _hot_paths(app)._services.exchange


@contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    # object.__setattr__ for instances of frozen dataclasses (the exchange is one).
    assign = setattr if isinstance(owner, type) else object.__setattr__
    original = getattr(owner, name)
    assign(owner, name, value)
    try:
        yield
    finally:
        assign(owner, name, original)


@contextmanager
def _without_audit_line(_app: WSGICall) -> Iterator[None]:
    from app.audit import AuditTrail

    with _replaced(AuditTrail, "log", lambda _self, _entry: None):
        yield


@contextmanager
def _without_audit_trail(app: WSGICall) -> Iterator[None]:
    with _replaced(_exchange(app), "audit", None):
        yield


class _Unrecorded:
    def inc(self, *_: object) -> None:
        pass

    def observe(self, *_: object) -> None:
        pass


@contextmanager
def _without_metrics(_app: WSGICall) -> Iterator[None]:
    import app.api.observe as observe_module
    import app.exchange as exchange_module

    def unrecorded(*_: object) -> _Unrecorded:
        return _Unrecorded()

    with (
        _replaced(exchange_module, "labelled", unrecorded),
        _replaced(observe_module, "labelled", unrecorded),
    ):
        yield


@contextmanager
def _without_request_layer(_app: WSGICall) -> Iterator[None]:
    from app.api.observe import _ObservedRequests

    def passed_through(self: Any, environ: Any, start_response: Any) -> Any:
        return self._app(environ, start_response)

    with _replaced(_ObservedRequests, "__call__", passed_through):
        yield


class _Unlimited:
    def hit(self, _key: str) -> None:
        return None

    def refund(self, _key: str) -> None:
        return None


@contextmanager
def _without_rate_limits(app: WSGICall) -> Iterator[None]:
    hot_paths = _hot_paths(app)
    unchecked = {endpoint: (lambda _environ: None) for endpoint in hot_paths._rate_checks}
    with (
        _replaced(_exchange(app), "publisher_limits", _Unlimited()),
        _replaced(hot_paths, "_rate_checks", unchecked),
    ):
        yield


class _Remembered:
    """Answers `method` with its first answer; everything else goes to `wrapped`."""

    def __init__(self, wrapped: Any, method: str) -> None:
        self._wrapped = wrapped
        self._answer: Any = None
        real = getattr(wrapped, method)

        def remembered(*args: Any) -> Any:
            if self._answer is None:
                self._answer = real(*args)
            return self._answer

        setattr(self, method, remembered)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


@contextmanager
def _without_publisher_matching(app: WSGICall) -> Iterator[None]:
    exchange = _exchange(app)
    providers = {name: _Remembered(p, "parse_claims") for name, p in exchange.providers.items()}
    with (
        _replaced(exchange, "providers", providers),
        _replaced(exchange, "publishers", _Remembered(exchange.publishers, "match")),
    ):
        yield


# Each part: its label, and what switches it off.
PARTS: dict[str, tuple[str, Switch]] = {
    "audit_line": ("the audit log line", _without_audit_line),
    "audit_trail": ("the audit trail (record in the claim, log line)", _without_audit_trail),
    "metrics": ("metrics (mint counter, latency histogram)", _without_metrics),
    "request_layer": ("request ids and the latency histogram", _without_request_layer),
    "rate_limits": ("rate limits (two hits)", _without_rate_limits),
    "matching": ("provider claims parsed, publishers matched", _without_publisher_matching),
}
OPTIONAL = ("audit_trail", "metrics", "request_layer", "rate_limits")
# Rows of the table: each part alone, then the parts a team could choose to drop, then
# those and matching too (left: verifying the CI token, the replay claim, the upload token).
VARIANTS: dict[str, tuple[str, ...]] = {
    # Counted like the others (same number of requests, right before them), so that
    # what each variant saves is not blurred by the count of the whole mint's table.
    "nothing": (),
    **{name: (name,) for name in PARTS},
    "optional": OPTIONAL,
    "core": (*OPTIONAL, "matching"),
}


@contextmanager
def switched_off(app: WSGICall, variant: str) -> Iterator[None]:
    """The app, while the parts of `variant` are switched off."""
    with ExitStack() as stack:
        for part in VARIANTS[variant]:
            stack.enter_context(PARTS[part][1](app))
        yield


def variant_label(variant: str) -> str:
    if variant == "nothing":
        return "nothing (the whole mint)"
    if variant == "optional":
        return "all of: audit trail, metrics, request ids, rate limits"
    if variant == "core":
        return "all of those, and publisher matching: verify, claim, mint"
    return PARTS[variant][0]
