"""Structured logs: one JSON object per line, with the request id of the request that
logged it, so a log line, an audit record and a client's error report can be joined.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from app.json_text import compact

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# A log record's structured fields (`log.info("audit", extra={FIELDS_KEY: {...}})`): a JSON
# line carries them as one object, a text line as JSON after the message. Encoded once,
# by the formatter, rather than as JSON text inside the JSON line's message.
FIELDS_KEY = "fields"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_from(header: str | None) -> str:
    """A proxy's X-Request-ID when it looks like one; a fresh id otherwise."""
    if header and _CLIENT_REQUEST_ID.fullmatch(header):
        return header
    # 128 random bits, as a UUID4's hex would hold, without building a UUID (~2.5 us);
    # `secrets.token_hex(16)`'s bytes, without its three Python-level calls.
    return os.urandom(16).hex()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def _fields(record: logging.LogRecord) -> Mapping[str, Any] | None:
    fields = getattr(record, FIELDS_KEY, None)
    return fields if isinstance(fields, Mapping) else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json_line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            getattr(record, "request_id", "-"),
            _fields(record),
            self.formatException(record.exc_info) if record.exc_info else None,
        )


def json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    request_id: str,
    fields: Mapping[str, Any] | None = None,
    exception: str | None = None,
) -> str:
    """One JSON log line (without its newline): the one shape of both ways of logging."""
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
        "request_id": request_id,
    }
    if fields is not None:
        entry[FIELDS_KEY] = fields
    if exception is not None:
        entry["exception"] = exception
    return compact(entry).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        fields = _fields(record)
        return line if fields is None else f"{line} {compact(fields).decode()}"


class JsonLinesHandler(logging.StreamHandler[TextIO]):
    """The handler `trustpub serve` logs with: JSON lines carrying the request id."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.addFilter(_RequestIdFilter())
        self.setFormatter(JsonFormatter())

    def write_line(self, line: str, record: Callable[[], logging.LogRecord]) -> bool:
        """What StreamHandler.emit does with a formatted line. False if the write failed:
        the caller takes logging's way, which reports it. A flush that fails after the
        line is written is reported here, with `record()`, as logging would: retrying
        through logging would write the line twice."""
        self.acquire()
        try:
            try:
                self.stream.write(line + self.terminator)
            except Exception:
                return False
            try:
                self.stream.flush()
            except Exception:
                self.handleError(record())
        finally:
            self.release()
        return True


def configure_logging(json_lines: bool, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    handler: logging.Handler
    if json_lines:
        handler = JsonLinesHandler(stream)
    else:
        handler = logging.StreamHandler(stream)
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def log_fields(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """`logger.info(message, extra={FIELDS_KEY: fields})`: the same line, for a fraction of
    the CPU when trustpub's JSON-lines handler is the only one that would see it.

    The mint's audit line is the one log line of a successful mint, and logging's record,
    caller lookup and handler chain cost it more than encoding and writing the line
    (docs/performance.md). Whenever anything else could see the record (another handler,
    a filter, a level, a disabled logger, the text format) it takes logging's own way, and
    so does a line whose write fails (logging's error handling reports it).
    """
    handler = _sole_json_lines_handler(logger)
    if handler is not None and handler.write_line(
        json_line(time.time(), "info", logger.name, message, REQUEST_ID.get(), fields),
        lambda: logger.makeRecord(
            logger.name, logging.INFO, "", 0, "%s", (message,), None, extra={FIELDS_KEY: fields}
        ),
    ):
        return
    logger.info("%s", message, extra={FIELDS_KEY: fields})


def _sole_json_lines_handler(logger: logging.Logger) -> JsonLinesHandler | None:
    """The handler an INFO record of `logger` would reach, when it is the only one and
    nothing but level checks and its own request-id filter stand on the way."""
    if logger.disabled or logger.filters or not logger.isEnabledFor(logging.INFO):
        return None
    found: JsonLinesHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not JsonLinesHandler
                or handler.level > logging.INFO
                or len(handler.filters) != 1
                or type(handler.filters[0]) is not _RequestIdFilter
                or type(handler.formatter) is not JsonFormatter
            ):
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found
