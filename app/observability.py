"""Structured logs: one JSON object per line, with the request id of the request that
logged it, so a log line, an audit record and a client's error report can be joined.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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
    # 128 random bits, as a UUID4's hex would hold, without building a UUID (~2.5 us).
    return secrets.token_hex(16)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def _fields(record: logging.LogRecord) -> Mapping[str, Any] | None:
    fields = getattr(record, FIELDS_KEY, None)
    return fields if isinstance(fields, Mapping) else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if (fields := _fields(record)) is not None:
            entry[FIELDS_KEY] = fields
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        fields = _fields(record)
        return line if fields is None else f"{line} {json.dumps(fields, ensure_ascii=False)}"


def configure_logging(json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
