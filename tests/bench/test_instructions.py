"""The bytecode table counts the app's work and nothing of the harness's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .harness import instructions


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [environ["wsgi.input"].read()]


def _requests() -> Iterator[dict[str, Any]]:
    # Each body encoded on demand, as the mint's are: by the standard library's json.
    for index in range(100):
        body = json.dumps({"token": f"token-{index}"}).encode()
        yield instructions.wsgi_environ("/mint", body, "application/json")


def test_building_a_request_is_not_counted_as_the_apps_work() -> None:
    counted = instructions.per_request(_app, _requests(), 5)

    # Only this module's app ran inside the count: no json frames of the body's encoding.
    assert set(counted["by_module"]) == {__name__}
    assert counted["min"] == counted["max"] == counted["instructions"] > 0
