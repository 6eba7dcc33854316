"""`TrustpubLogger`: gunicorn's lines go through trustpub's handler when the process has
one (`trustpub serve`), and through gunicorn's own otherwise, never nowhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from gunicorn.config import Config

from app.observability import configure_logging
from app.serving import TrustpubLogger


@pytest.fixture
def gunicorn_loggers() -> Iterator[None]:
    """Root and gunicorn's loggers put back as they were: the logger changes them globally."""
    root = logging.getLogger()
    root_level = root.level
    kept = {
        name: (logger.handlers[:], logger.propagate, logger.level)
        for name in ("gunicorn.error", "gunicorn.access")
        for logger in [logging.getLogger(name)]
    }
    yield
    root.setLevel(root_level)
    for name, (handlers, propagate, level) in kept.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)


@pytest.mark.parametrize("configured", [True, False], ids=["trustpub-serve", "bench-floor"])
def test_gunicorn_lines_are_written_whether_or_not_logging_was_configured(
    gunicorn_loggers: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    configured: bool,
) -> None:
    # Here, not in a fixture: pytest adds its capture handler to the root for the test.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    stream = io.StringIO()
    if configured:
        configure_logging(json_lines=True, stream=stream)

    TrustpubLogger(Config()).info("Booting worker with pid: %s", 42)

    if configured:
        (line,) = stream.getvalue().splitlines()
        assert json.loads(line)["logger"] == "gunicorn.error"
        assert "Booting worker" not in capsys.readouterr().err
    else:
        # The floors' runner never called configure_logging: gunicorn's format, on stderr.
        assert "[INFO] Booting worker with pid: 42" in capsys.readouterr().err
