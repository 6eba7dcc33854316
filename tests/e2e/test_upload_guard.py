"""UploadGuard (WSGI) and its multipart scanner, against a real local introspection endpoint.

The index behind the guard is a recording WSGI app that parses what reaches it with
pypiserver's own parser (bottle over cgi.FieldStorage), so the tests also show that
what the guard checked is what the index reads.
"""

from __future__ import annotations

import base64
import io
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.util import setup_testing_defaults

import pytest
from requests_toolbelt import MultipartEncoder

from app.integrations import (
    IntrospectionClient,
    MalformedUpload,
    MultipartScanner,
    UploadAuthorizer,
    UploadGuard,
    form_data_boundary,
    normalize_project_name,
    project_from_filename,
)

from .fake_trustpub import (
    CLIENT_ID,
    CLIENT_SECRET,
    INACTIVE,
    Answer,
    FakeTrustpub,
    active_answer,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # bottle imports cgi
    from pypiserver.bottle_wrapper import bottle

TOKEN = "pypi-good"
BOUNDARY = "b0undary"


@dataclass
class Index:
    """The WSGI app behind the guard: records each request it gets, as bottle parses it."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        request = bottle.BaseRequest(environ)
        files = {name: upload.raw_filename for name, upload in request.files.allitems()}
        self.calls.append(
            {
                "body": body,
                "forms": dict(request.forms.allitems()),
                "files": files,
                "token": environ.get("trustpub.token"),
            }
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"stored"]


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def fake() -> Iterator[FakeTrustpub]:
    with FakeTrustpub() as server:
        server.answer(TOKEN, active_answer(["demo-pkg"]))
        yield server


@pytest.fixture
def index() -> Index:
    return Index()


@pytest.fixture
def guard(fake: FakeTrustpub, index: Index) -> UploadGuard:
    client = IntrospectionClient(fake.url, CLIENT_SECRET, client_id=CLIENT_ID, timeout=2)
    return UploadGuard(index, UploadAuthorizer(client), max_upload_bytes=1_000_000)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(
    app: UploadGuard,
    method: str = "POST",
    path: str = "/",
    body: bytes = b"",
    content_type: str | None = f"multipart/form-data; boundary={BOUNDARY}",
    authorization: str | None = basic("__token__", TOKEN),
    **extra: str,
) -> tuple[Response, io.BytesIO]:
    stream = io.BytesIO(body)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": stream,
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    environ.update(extra)
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    code, _, reason = seen["status"].partition(" ")
    return Response(int(code), reason, seen["headers"], data), stream


def twine_like(
    name: str = "demo-pkg", filename: str = "demo_pkg-1.0-py3-none-any.whl", **fields: str
) -> tuple[bytes, str]:
    """A body as twine builds it (requests-toolbelt), and its Content-Type."""
    data: list[tuple[str, Any]] = [
        ("name", name),
        ("version", "1.0"),
        ("filetype", "bdist_wheel"),
        ("metadata_version", "2.1"),
        ("description", "long text\r\n--not-a-boundary\r\n" * 50),
        ("classifiers", "Programming Language :: Python"),
        ("classifiers", "License :: OSI Approved"),
        (":action", fields.pop("action", "file_upload")),
        ("protocol_version", "1"),
        ("content", (filename, b"PK\x03\x04 wheel bytes \r\n\r\n--", "application/octet-stream")),
    ]
    data.extend(fields.items())
    encoder = MultipartEncoder(data)
    return encoder.to_string(), encoder.content_type


def test_reads_pass_without_credentials(guard: UploadGuard, index: Index) -> None:
    response, _ = call(guard, method="GET", path="/simple/demo-pkg/", authorization=None)

    assert response.status == 200
    assert len(index.calls) == 1


def test_xmlrpc_search_is_not_treated_as_an_upload(guard: UploadGuard, index: Index) -> None:
    response, _ = call(guard, path="/RPC2", content_type="text/xml", authorization=None)

    assert response.status == 200


def test_a_twine_upload_in_scope_reaches_the_index_byte_for_byte(
    guard: UploadGuard, index: Index
) -> None:
    body, content_type = twine_like()

    response, _ = call(guard, body=body, content_type=content_type)

    assert response.status == 200
    assert len(index.calls) == 1
    seen = index.calls[0]
    assert seen["body"] == body
    assert seen["forms"][":action"] == "file_upload"
    assert seen["files"] == {"content": "demo_pkg-1.0-py3-none-any.whl"}
    assert seen["token"].jti == "jti-1"


def test_without_credentials_the_answer_is_401_and_the_body_is_read(
    guard: UploadGuard, index: Index
) -> None:
    body, content_type = twine_like()

    response, stream = call(guard, body=body, content_type=content_type, authorization=None)

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert index.calls == []
    assert stream.tell() == len(body)  # drained, so the server can answer cleanly


@pytest.mark.parametrize(
    "authorization",
    [basic("alice", TOKEN), basic("__token__", "pypi-unknown"), "Bearer " + TOKEN],
    ids=["other-user", "inactive-token", "not-basic"],
)
def test_anything_but_an_active_token_is_refused(
    guard: UploadGuard, index: Index, authorization: str
) -> None:
    body, content_type = twine_like()

    response, _ = call(guard, body=body, content_type=content_type, authorization=authorization)

    assert response.status in (401, 403)
    assert index.calls == []


def test_other_users_may_be_passed_to_the_index(fake: FakeTrustpub, index: Index) -> None:
    client = IntrospectionClient(fake.url, CLIENT_SECRET, client_id=CLIENT_ID)
    guard = UploadGuard(index, UploadAuthorizer(client), pass_other_users=True)
    body, content_type = twine_like()

    response, _ = call(guard, body=body, content_type=content_type, authorization=basic("a", "b"))

    assert response.status == 200
    assert fake.asked() == 0


def test_when_trustpub_fails_the_upload_is_refused(
    guard: UploadGuard, index: Index, fake: FakeTrustpub
) -> None:
    fake.answer(TOKEN, Answer(503, b""))
    body, content_type = twine_like()

    response, _ = call(guard, body=body, content_type=content_type)

    assert response.status == 403
    assert "cannot check" in response.reason
    assert index.calls == []


@pytest.mark.parametrize(
    ("name", "filename", "refused"),
    [
        ("demo-pkg", "other_pkg-1.0-py3-none-any.whl", "other-pkg"),
        ("other-pkg", "demo_pkg-1.0-py3-none-any.whl", "other-pkg"),
        ("Demo.Pkg", "demo_pkg-extras-1.0.tar.gz", "demo-pkg-extras"),
    ],
    ids=["file-of-another-project", "name-of-another-project", "longer-name"],
)
def test_a_project_outside_the_tokens_scope_is_refused(
    guard: UploadGuard, index: Index, name: str, filename: str, refused: str
) -> None:
    body, content_type = twine_like(name=name, filename=filename)

    response, _ = call(guard, body=body, content_type=content_type)

    assert response.status == 403
    assert refused in response.reason
    assert "demo-pkg" in response.reason  # what the token does cover
    assert index.calls == []


def test_normalised_names_in_scope_are_accepted(guard: UploadGuard, index: Index) -> None:
    body, content_type = twine_like(name="Demo.PKG", filename="Demo_Pkg-2.0.tar.gz")

    response, _ = call(guard, body=body, content_type=content_type)

    assert response.status == 200


def test_a_name_field_with_a_line_break_is_refused_and_not_logged_as_two_lines(
    guard: UploadGuard, index: Index, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "demo-pkg\n2030-01-01 INFO upload allowed: victim-1.0.tar.gz (token jti-9)"
    body, content_type = twine_like(name=forged)

    with caplog.at_level(logging.INFO, logger="app.integrations"):
        response, _ = call(guard, body=body, content_type=content_type)

    assert response.status == 403
    assert index.calls == []
    assert caplog.records
    assert not any("\n" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("action", ["remove_pkg", "doc_upload", "submit", ""])
def test_a_token_may_only_upload_files(guard: UploadGuard, index: Index, action: str) -> None:
    body, content_type = twine_like(action=action)

    response, _ = call(guard, body=body, content_type=content_type)

    assert response.status == 403
    assert index.calls == []


def test_a_url_encoded_form_is_refused(guard: UploadGuard, index: Index) -> None:
    # pypiserver would act on it: bottle parses url-encoded bodies into the same forms.
    body = b":action=remove_pkg&name=demo-pkg&version=1.0"

    response, _ = call(guard, body=body, content_type="application/x-www-form-urlencoded")

    assert response.status == 400
    assert index.calls == []


def test_chunked_or_unsized_or_oversized_bodies_are_refused(guard: UploadGuard) -> None:
    body, content_type = twine_like()

    chunked, _ = call(guard, body=body, content_type=content_type, HTTP_TRANSFER_ENCODING="chunked")
    unsized, _ = call(guard, body=body, content_type=content_type, CONTENT_LENGTH="")
    huge, _ = call(guard, body=body, content_type=content_type, CONTENT_LENGTH="2000000")

    assert (chunked.status, unsized.status, huge.status) == (411, 411, 413)


@pytest.mark.parametrize(
    # isdigit() but not int(): a latin-1 byte wsgiref passes on; more digits than int() takes.
    "content_length",
    ["\xb2", "9" * 5000],
)
@pytest.mark.parametrize("credentials", [True, False])
def test_a_length_no_integer_reads_is_refused_not_raised(
    guard: UploadGuard, index: Index, content_length: str, credentials: bool
) -> None:
    body, content_type = twine_like()
    anonymous = {} if credentials else {"authorization": None}

    response, _ = call(
        guard, body=body, content_type=content_type, CONTENT_LENGTH=content_length, **anonymous
    )

    assert response.status == (411 if credentials else 401)
    assert index.calls == []


# -- bodies that another parser could read differently ----------------------------


def part(name: str, value: bytes, filename: str | None = None, extra: bytes = b"") -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        + extra
        + b"\r\n"
        + value
        + b"\r\n"
    )


def form(*parts: bytes, end: bytes = f"--{BOUNDARY}--\r\n".encode()) -> bytes:
    return b"".join(parts) + end


HEAD = part(":action", b"file_upload") + part("name", b"demo-pkg")
SMUGGLED = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="content"; filename="victim-1.0.tar.gz"\r\n\r\n'
    "EVIL"
).encode()

MALFORMED = {
    # cgi.FieldStorage ends a part at a bare-LF line "--BOUNDARY": a second file appears.
    "bare-lf-delimiter": form(HEAD, part("content", b"data\n" + SMUGGLED, "demo_pkg-1.0.tar.gz")),
    "boundary-with-trailing-space": form(
        HEAD, part("content", b"data", "demo_pkg-1.0.tar.gz").replace(b"\r\n", b"  \r\n", 1)
    ),
    "part-content-length": form(
        HEAD, part("content", b"data", "demo_pkg-1.0.tar.gz", b"Content-Length: 2\r\n")
    ),
    "nested-multipart": form(
        HEAD,
        part("content", b"data", "demo_pkg-1.0.tar.gz", b"Content-Type: multipart/mixed\r\n"),
    ),
    "filename-star": form(
        HEAD,
        part("content", b"data", "demo_pkg-1.0.tar.gz").replace(
            b'filename="demo', b"filename*=UTF-8''victim-1.0.tar.gz; filename=\"demo"
        ),
    ),
    "escaped-quote": form(HEAD, part("content", b"data", 'demo_pkg-1.0.tar.gz\\"')),
    "duplicate-action": form(HEAD, part(":action", b"remove_pkg")),
    "duplicate-name": form(HEAD, part("name", b"victim")),
    "folded-header": form(
        HEAD,
        part("content", b"data", "demo_pkg-1.0.tar.gz").replace(
            b'; filename="', b';\r\n filename="'
        ),
    ),
    "preamble": b"preamble\r\n" + form(HEAD, part("content", b"data", "demo_pkg-1.0.tar.gz")),
    "epilogue": form(HEAD, part("content", b"data", "demo_pkg-1.0.tar.gz")) + SMUGGLED,
    "no-closing-boundary": form(HEAD, part("content", b"data", "demo_pkg-1.0.tar.gz"), end=b""),
    "empty-filename": form(HEAD, part("content", b"data", "")),
    "path-in-filename": form(HEAD, part("content", b"data", "../demo_pkg-1.0.tar.gz")),
    "not-a-distribution": form(HEAD, part("content", b"data", "demo_pkg.txt")),
    "no-file": form(HEAD),
    "no-name": form(part(":action", b"file_upload"), part("content", b"x", "demo_pkg-1.0.zip")),
    "non-utf8-name": form(part(":action", b"file_upload"), part("name", b"demo\xff")),
    "header-without-colon": form(HEAD, part("content", b"x", "demo_pkg-1.0.zip", b"Oops\r\n")),
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_bodies_the_guard_will_not_interpret_are_refused(
    guard: UploadGuard, index: Index, body: bytes
) -> None:
    response, _ = call(guard, body=body)

    assert response.status == 400, response.reason
    assert index.calls == []


def test_the_bare_lf_body_really_smuggles_a_file_past_a_lenient_parser(index: Index) -> None:
    """Why the scanner is strict: pypiserver's parser sees a file the guard never would."""
    body = MALFORMED["bare-lf-delimiter"]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    index(environ, lambda status, headers, exc_info=None: lambda data: None)

    assert index.calls[0]["files"]["content"] == "victim-1.0.tar.gz"


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/mixed; boundary=b0undary",
        "multipart/form-data",
        'multipart/form-data; boundary="b0undary"; boundary=other',
        "multipart/form-data; boundary=bad boundary",
    ],
)
def test_unusual_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(MalformedUpload):
        form_data_boundary(content_type)


def test_a_quoted_boundary_is_the_same_boundary() -> None:
    assert form_data_boundary('Multipart/Form-Data; Boundary="b0undary"') == b"b0undary"


def test_the_scanner_gives_the_same_answer_for_any_chunking() -> None:
    body, content_type = twine_like()
    boundary = form_data_boundary(content_type)
    whole = MultipartScanner(boundary)
    whole.feed(body)
    expected = whole.close()

    for size in (1, 2, 3, 7, 64):
        scanner = MultipartScanner(boundary)
        for start in range(0, len(body), size):
            scanner.feed(body[start : start + size])
        assert scanner.close() == expected

    assert expected.fields == {":action": "file_upload", "name": "demo-pkg", "version": "1.0"}
    assert [f.filename for f in expected.files] == ["demo_pkg-1.0-py3-none-any.whl"]


@pytest.mark.parametrize(
    ("filename", "project"),
    [
        ("demo_pkg-1.0-py3-none-any.whl", "demo_pkg"),
        ("demo_pkg-1.0-1-py3-none-any.whl", "demo_pkg"),
        ("demo_pkg-1.0.tar.gz", "demo_pkg"),
        ("demo-pkg-1.0.tar.gz", "demo-pkg"),
        ("demo_pkg-1.0.zip", "demo_pkg"),
        ("demo_pkg-1.0.tar.gz.asc", "demo_pkg"),
        ("demo_pkg-py3-none-any.whl", None),
        ("demo_pkg.tar.gz", None),
        ("../demo_pkg-1.0.tar.gz", None),
        ("demo pkg-1.0.tar.gz", None),
        (".demo_pkg-1.0.tar.gz", None),
        ("demo_pkg-1.0.exe", None),
        # Names an index that takes the project up to the first "-<digit>" (pypiserver)
        # would file under another project: none, rather than `demo`'s.
        ("demo-evil-1.0-py3-none-any.whl", None),
        ("demo-victim_tools-1.0-py3-none-any.whl", None),
        ("demo_pkg-1.0-build-py3-none-any.whl", None),
        ("demo-1.0-2.0.tar.gz", None),
        ("demo_pkg-latest.tar.gz", None),
    ],
)
def test_project_from_filename(filename: str, project: str | None) -> None:
    assert project_from_filename(filename) == project


@pytest.mark.parametrize(
    "filename",
    [
        "demo_pkg-1.0-py3-none-any.whl",
        "demo_pkg-1.0-1-py3-none-any.whl",
        "demo-pkg-1.0.tar.gz",
        "demo-evil-1.0-py3-none-any.whl",
        "demo-1.0-2.0.tar.gz",
        "demo-victim_tools-1.0-py3-none-any.whl",
    ],
)
def test_a_file_the_default_names_a_project_of_is_that_projects_for_pypiserver(
    filename: str,
) -> None:
    from pypiserver.pkg_helpers import guess_pkgname_and_version

    ours = project_from_filename(filename)
    theirs = guess_pkgname_and_version(filename)

    assert ours is None or (
        theirs is not None and normalize_project_name(ours) == normalize_project_name(theirs[0])
    )


class _SlowBody(io.RawIOBase):
    """A request body that arrives in two parts, `meanwhile` happening in between."""

    def __init__(self, data: bytes, meanwhile: Callable[[], None]) -> None:
        self._data = io.BytesIO(data)
        self._meanwhile: Callable[[], None] | None = meanwhile

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() > 0 and self._meanwhile is not None:
            self._meanwhile()
            self._meanwhile = None
        return self._data.read(min(size, 1024) if size > 0 else 1024)


@pytest.mark.parametrize("change", ["revoked", "expired"])
def test_a_token_is_asked_about_again_once_the_body_is_in(
    fake: FakeTrustpub, index: Index, change: str
) -> None:
    # An upload may take longer to send than its token lives, or than a revocation takes
    # to be answered: the answer from before its body is no longer the answer.
    fake.answer(TOKEN, active_answer(["demo-pkg"], expires_in=60))
    client = IntrospectionClient(fake.url, CLIENT_SECRET, client_id=CLIENT_ID, cache_ttl=0)
    guard = UploadGuard(index, UploadAuthorizer(client), max_upload_bytes=1_000_000)
    body, content_type = twine_like()

    def meanwhile() -> None:
        if change == "revoked":
            fake.answer(TOKEN, INACTIVE)
        else:
            # Still "active" by a trustpub whose clock is behind: over by the index's.
            fake.answer(TOKEN, active_answer(["demo-pkg"], expires_in=-1))

    response, _ = call(
        guard, body=body, content_type=content_type, **{"wsgi.input": _SlowBody(body, meanwhile)}
    )

    assert response.status == 403, response.body
    assert index.calls == []
    assert fake.asked(TOKEN) == 2  # before the body, and after it
