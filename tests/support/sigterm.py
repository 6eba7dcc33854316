"""A pytest plugin: SIGTERM ends the run the way Ctrl-C does.

Python's default for SIGTERM is to die at once: no fixture teardown, no atexit, so the
redis-servers the suite started would outlive it (a CI step's timeout, or `kill` on a
developer's machine). As KeyboardInterrupt, pytest tears the fixtures down and says what
ran; `support.redis_server` reaps what is left at exit.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

_previous: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global _previous
    _previous = signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _previous is not None:
        signal.signal(signal.SIGTERM, _previous)
