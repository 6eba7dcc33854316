"""A strict, streaming scanner for the multipart/form-data body of a legacy upload.

The upload guard must see exactly what the index will see. Index servers parse
multipart bodies with lenient parsers (pypiserver's bottle uses `cgi.FieldStorage`,
which accepts bare-LF line ends, whitespace after a boundary and a Content-Length per
part). A body that two parsers read differently could show the guard one project and
the index another, so this scanner accepts only the plain form real clients (twine,
requests-toolbelt, urllib3, curl) send, and rejects everything else:

- the body starts with `--BOUNDARY CRLF` and ends with `--BOUNDARY--` plus at most
  one CRLF (no preamble, no epilogue);
- every occurrence of `--BOUNDARY` in the body is a delimiter: preceded by CRLF and
  followed by CRLF or `--`, so no parser can find a delimiter this one did not;
- part headers are CRLF-terminated printable ASCII, only `Content-Disposition`
  (`form-data` with `name` and optional `filename`, no escapes, no `filename*`) and
  `Content-Type` (not `multipart/*`), each at most once;
- the fields the guard reads (`:action`, `name`, `version`) appear at most once and
  are short UTF-8 strings; file names are non-empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The fields whose values the guard reads; every other field is skipped unread.
KEPT_FIELDS = frozenset({":action", "name", "version"})
MAX_FIELD_BYTES = 1024
MAX_HEADER_BYTES = 8192
MAX_PARTS = 10_000

# RFC 2046 bchars without the space (no client uses one; cgi refuses a trailing one).
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}")
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'[ \t]*;[ \t]*({_TCHARS})[ \t]*=[ \t]*(?:"([^"\\\r\n]*)"|({_TCHARS}))[ \t]*')
# A disposition type (`form-data`) or a media type (`multipart/form-data`).
_FIRST = re.compile(rf"[ \t]*({_TCHARS}(?:/{_TCHARS})?)[ \t]*")
_HEADER_NAME = re.compile(_TCHARS)
_PRINTABLE = re.compile(r"[\t\x20-\x7e]*")


class MalformedUpload(Exception):
    """The body is not the plain multipart/form-data an upload client sends."""


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str


@dataclass
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[FilePart] = field(default_factory=list)


def form_data_boundary(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data` Content-Type; MalformedUpload otherwise."""
    media_type, params = _parse_header_value(content_type)
    if media_type.lower() != "multipart/form-data":
        raise MalformedUpload("uploads must be multipart/form-data")
    boundary = params.get("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise MalformedUpload("the multipart boundary is missing or unusual")
    return boundary.encode("ascii")


def _parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """`type; key=value; key="value"` with lower-cased keys, refusing duplicates."""
    first = _FIRST.match(value)
    if first is None:
        raise MalformedUpload(f"cannot parse header value {value[:80]!r}")
    params: dict[str, str] = {}
    position = first.end()
    while position < len(value):
        match = _PARAM.match(value, position)
        if match is None:
            raise MalformedUpload(f"cannot parse header value {value[:80]!r}")
        key = match.group(1).lower()
        if key in params:
            raise MalformedUpload(f"parameter {key!r} appears twice")
        quoted, token = match.group(2), match.group(3)
        params[key] = quoted if quoted is not None else token
        position = match.end()
    return first.group(1), params


@dataclass
class _Part:
    name: str
    filename: str | None
    value: bytearray | None  # collected only for KEPT_FIELDS


_START, _HEADERS, _BODY, _END = range(4)


class MultipartScanner:
    """Feed the body in chunks, then `close()` for the fields and file names."""

    def __init__(self, boundary: bytes) -> None:
        self._marker = b"--" + boundary
        self._buffer = bytearray()
        self._state = _START
        self._part: _Part | None = None
        self._parts = 0
        self._form = UploadForm()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        self._process(final=False)

    def close(self) -> UploadForm:
        self._process(final=True)
        if self._state != _END:
            raise MalformedUpload("the multipart body ends before its closing boundary")
        return self._form

    def _process(self, *, final: bool) -> None:
        marker, buffer = self._marker, self._buffer
        while True:
            if self._state == _START:
                if len(buffer) < len(marker) + 2:
                    if final:
                        raise MalformedUpload("the multipart body is truncated")
                    return
                if not buffer.startswith(marker + b"\r\n"):
                    raise MalformedUpload("the body does not start with its boundary")
                del buffer[: len(marker) + 2]
                self._state = _HEADERS
            elif self._state == _HEADERS:
                end = buffer.find(b"\r\n\r\n")
                if end == -1 or end > MAX_HEADER_BYTES:
                    if len(buffer) > MAX_HEADER_BYTES:
                        raise MalformedUpload("part headers are too long")
                    if final:
                        raise MalformedUpload("the multipart body is truncated")
                    return
                if marker in buffer[:end]:
                    raise MalformedUpload("a boundary appears inside part headers")
                self._start_part(bytes(buffer[:end]))
                del buffer[: end + 4]
                self._state = _BODY
            elif self._state == _BODY:
                index = buffer.find(marker)
                if index == -1:
                    # Keep what could be the CRLF and the start of a marker.
                    keep = len(marker) + 1
                    if len(buffer) > keep:
                        self._content(buffer[: len(buffer) - keep])
                        del buffer[: len(buffer) - keep]
                    if final:
                        raise MalformedUpload("the multipart body is truncated")
                    return
                if index < 2 or buffer[index - 2 : index] != b"\r\n":
                    raise MalformedUpload("the boundary appears inside a part")
                self._content(buffer[: index - 2])
                del buffer[: index - 2]
                after = 2 + len(marker)
                if len(buffer) < after + 2:
                    if final:
                        raise MalformedUpload("the multipart body is truncated")
                    return
                suffix = bytes(buffer[after : after + 2])
                self._finish_part()
                if suffix == b"\r\n":
                    del buffer[: after + 2]
                    self._state = _HEADERS
                elif suffix == b"--":
                    del buffer[: after + 2]
                    self._state = _END
                else:
                    raise MalformedUpload("unexpected bytes after a boundary")
            else:  # _END: at most one CRLF may follow the closing boundary.
                if not b"\r\n".startswith(bytes(buffer)):
                    raise MalformedUpload("data follows the closing boundary")
                return

    def _start_part(self, block: bytes) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MalformedUpload("too many parts")
        disposition: str | None = None
        content_type: str | None = None
        for raw_line in block.split(b"\r\n"):
            try:
                line = raw_line.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedUpload("part headers must be ASCII") from None
            name, colon, value = line.partition(":")
            if not colon or not _HEADER_NAME.fullmatch(name) or not _PRINTABLE.fullmatch(value):
                raise MalformedUpload("malformed part header")
            key = name.lower()
            if key == "content-disposition" and disposition is None:
                disposition = value
            elif key == "content-type" and content_type is None:
                content_type = value
            else:
                raise MalformedUpload(f"unexpected or repeated part header {name!r}")
        if disposition is None:
            raise MalformedUpload("a part has no Content-Disposition")
        if content_type is not None and content_type.strip().lower().startswith("multipart/"):
            raise MalformedUpload("nested multipart parts are not accepted")
        kind, params = _parse_header_value(disposition)
        if kind.lower() != "form-data" or set(params) - {"name", "filename"}:
            raise MalformedUpload("a part's Content-Disposition is not plain form-data")
        part_name = params.get("name")
        if not part_name:
            raise MalformedUpload("a part has no name")
        filename = params.get("filename")
        if filename is not None:
            if not filename:
                raise MalformedUpload("a file part has an empty file name")
            self._form.files.append(FilePart(part_name, filename))
            self._part = _Part(part_name, filename, None)
            return
        if part_name in KEPT_FIELDS:
            if part_name in self._form.fields:
                raise MalformedUpload(f"field {part_name!r} appears twice")
            self._part = _Part(part_name, None, bytearray())
        else:
            self._part = _Part(part_name, None, None)

    def _content(self, data: bytearray) -> None:
        part = self._part
        if part is None or part.value is None or not data:
            return
        part.value += data
        if len(part.value) > MAX_FIELD_BYTES:
            raise MalformedUpload(f"field {part.name!r} is too long")

    def _finish_part(self) -> None:
        part, self._part = self._part, None
        if part is None or part.value is None:
            return
        try:
            self._form.fields[part.name] = part.value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedUpload(f"field {part.name!r} is not UTF-8") from None
