"""`log_fields` writes the line logging would, and takes logging's way whenever anything
but trustpub's own JSON-lines handler could see the record."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from app.observability import (
    FIELDS_KEY,
    REQUEST_ID,
    JsonLinesHandler,
    _sole_json_lines_handler,
    configure_logging,
    log_fields,
)

LOGGER = "app.audit"
FIELDS = {
    "action": "mint",
    "jti": "abc",
    # Non-ASCII, quotes, a newline, a backslash, a lone surrogate made storable upstream.
    "repository": 'octo-org/démo "x"\n\\ \ufffd',
    "projects": "a,b",
}
# The moment of each line, in the JSON and in the text format: two writes differ there.
_TIMES = (
    (re.compile(r'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"'), '"time":"T"'),
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "), "T "),
)


@contextmanager
def _trustpub_logging() -> Iterator[io.StringIO]:
    """trustpub's JSON logging into a buffer, alone: pytest adds its capturing handlers to
    the root logger around each test phase, so this runs inside the test's body."""
    root = logging.getLogger()
    saved_root = root.handlers[:], root.level
    # The audit logger and its parents as `trustpub serve` leaves them, whatever ran before.
    chain = [logging.getLogger(name) for name in ("app", LOGGER)]
    saved_chain = [_state(logger) for logger in chain]
    for logger in chain:
        _restore(logger, ([], [], logging.NOTSET, True, False))
    buffer = io.StringIO()
    configure_logging(json_lines=True, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved_root
        for logger, state in zip(chain, saved_chain, strict=True):
            _restore(logger, state)


_State = tuple[list[logging.Handler], list[object], int, bool, bool]


def _state(logger: logging.Logger) -> _State:
    return logger.handlers[:], logger.filters[:], logger.level, logger.propagate, logger.disabled


def _restore(logger: logging.Logger, state: _State) -> None:
    handlers, filters, level, logger.propagate, logger.disabled = state
    logger.handlers[:], logger.filters[:] = handlers, filters
    logger.setLevel(level)


def _by_logging(message: str) -> None:
    logging.getLogger(LOGGER).info("%s", message, extra={FIELDS_KEY: FIELDS})


def _by_log_fields(message: str) -> None:
    log_fields(logging.getLogger(LOGGER), message, FIELDS)


def _lines(stream: io.StringIO, write: Callable[[str], None]) -> list[str]:
    stream.seek(0)
    stream.truncate()
    write("audit mint")
    lines = stream.getvalue().splitlines()
    for pattern, replacement in _TIMES:
        lines = [pattern.sub(replacement, line, count=1) for line in lines]
    return lines


@pytest.mark.parametrize("request_id", [None, "req-0123456789"])
def test_the_fast_way_writes_logging_s_line_byte_for_byte(request_id: str | None) -> None:
    token = REQUEST_ID.set(request_id) if request_id else None
    try:
        with _trustpub_logging() as stream:
            handler = _sole_json_lines_handler(logging.getLogger(LOGGER))
            assert isinstance(handler, JsonLinesHandler)  # the fast way is the one taken
            fast, slow = _lines(stream, _by_log_fields), _lines(stream, _by_logging)
    finally:
        if token is not None:
            REQUEST_ID.reset(token)

    assert fast == slow
    assert len(fast) == 1
    entry = json.loads(fast[0])
    assert entry[FIELDS_KEY] == FIELDS
    assert entry["request_id"] == (request_id or "-")
    assert entry["message"] == "audit mint"


def _another_handler(logger: logging.Logger) -> None:
    logging.getLogger().addHandler(logging.NullHandler())


def _a_filter_dropping_everything(logger: logging.Logger) -> None:
    logger.addFilter(lambda record: False)


def _a_handler_filter(logger: logging.Logger) -> None:
    logging.getLogger().handlers[0].addFilter(lambda record: False)


def _level_warning(logger: logging.Logger) -> None:
    logger.setLevel(logging.WARNING)


def _handler_level_warning(logger: logging.Logger) -> None:
    logging.getLogger().handlers[0].setLevel(logging.WARNING)


def _disabled(logger: logging.Logger) -> None:
    logger.disabled = True


def _not_propagating(logger: logging.Logger) -> None:
    logger.propagate = False


def _text_format(logger: logging.Logger) -> None:
    configure_logging(json_lines=False, stream=logging.getLogger().handlers[0].stream)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "lines"),
    [
        (_another_handler, 1),
        (_a_filter_dropping_everything, 0),
        (_a_handler_filter, 0),
        (_level_warning, 0),
        (_handler_level_warning, 0),
        (_disabled, 0),
        (_not_propagating, 0),  # logging's last resort takes WARNING and above only
        (_text_format, 1),
    ],
)
def test_anything_else_that_could_see_the_record_takes_logging_s_way(
    change: Callable[[logging.Logger], None], lines: int
) -> None:
    logger = logging.getLogger(LOGGER)
    with _trustpub_logging() as stream:
        change(logger)
        assert _sole_json_lines_handler(logger) is None
        fast, slow = _lines(stream, _by_log_fields), _lines(stream, _by_logging)
    assert fast == slow
    assert len(fast) == lines


class _WriteFails(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("the log's pipe is gone")


class _FlushFails(io.StringIO):
    def flush(self) -> None:
        raise OSError("the log's disk is full")


@pytest.mark.parametrize("write", [_by_log_fields, _by_logging])
@pytest.mark.parametrize(
    ("stream", "lines"),
    [
        (_WriteFails, []),
        # The line is written (buffered) before the flush fails: written once, not
        # again through logging's way.
        (_FlushFails, ["audit mint"]),
    ],
)
def test_a_failed_write_is_reported_once_as_logging_would(
    monkeypatch: pytest.MonkeyPatch,
    write: Callable[[str], None],
    stream: type[io.StringIO],
    lines: list[str],
) -> None:
    reported: list[logging.LogRecord] = []
    broken = stream()
    with _trustpub_logging():
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, JsonLinesHandler)
        handler.setStream(broken)
        monkeypatch.setattr(handler, "handleError", reported.append)
        write("audit mint")

    assert [record.getMessage() for record in reported] == ["audit mint"]
    assert [getattr(record, FIELDS_KEY) for record in reported] == [FIELDS]
    assert [json.loads(line)["message"] for line in broken.getvalue().splitlines()] == lines
