"""Deciding uploads: the token check, the project check, and a WSGI guard doing both.

`UploadAuthorizer` answers "may this `__token__` password upload these projects?".
`UploadGuard` wraps an index server's WSGI application: every request that can change
the index (any method but GET, HEAD and OPTIONS) must come from `__token__` with an
active upload token, must be a `file_upload`, and every project it names, by its
`name` field and by each file name, must be one of the token's projects. Everything
else is answered before the index sees it: 401 without credentials, 403 for a
token that is not active (or when trustpub cannot be asked: fail closed) or a
project outside its scope, 400 for a body the guard will not interpret.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from app.integrations.introspection import (
    TOKEN_USERNAME,
    ActiveToken,
    IntrospectionClient,
    IntrospectionUnavailable,
    normalize_project_name,
)
from app.integrations.multipart import (
    MalformedUpload,
    MultipartScanner,
    UploadForm,
    form_data_boundary,
)

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# PyPI's default file size limit.
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# Uploads up to this size stay in memory while they are checked; larger ones spool to disk.
SPOOL_BYTES = 1024 * 1024
READ_CHUNK = 64 * 1024
# The environ key under which UploadGuard hands the index an upload it checked: its token.
CHECKED_UPLOAD = "trustpub.token"
# What pypiserver (and PyPI) accept as a distribution file name: no paths, no spaces.
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.!+-]*")
_SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
# Where an index may take a source archive's project to end (project_from_filename).
_DASH_DIGIT = re.compile(r"-[0-9]")
# A project name as PEP 508 allows it. Checked before normalising: str.lower() turns
# some non-ASCII letters into ASCII ones (KELVIN SIGN into "k"), and a name with a line
# break, quoted in a refusal's reason, would forge a line in the log.
_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")

ProjectOf = Callable[[str], str | None]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    token: ActiveToken | None = None


def project_from_filename(filename: str) -> str | None:
    """The project a distribution file belongs to, or None for a name that is not one.

    Wheels: the first `-`-separated field. Source archives: everything before the last
    `-` (PEP 625 names have no `-` in the project part). A `.asc` signature belongs to
    the file it signs.

    A name that an index may split elsewhere is none: a version (or a wheel's build tag)
    that does not begin with a digit, or an archive whose project part holds a `-` and a
    digit. pypiserver and others take the project up to the first `-<digit>`:
    `demo-evil-1.0-py3-none-any.whl` and `demo-1.0-2.0.tar.gz` would be `demo`'s files
    here and another project's there.
    """
    if not _FILENAME.fullmatch(filename):
        return None
    base = filename.removesuffix(".asc")
    if base.endswith(".whl"):
        fields = base[: -len(".whl")].split("-")
        if len(fields) not in (5, 6) or not fields[0]:
            return None
        if not fields[1][:1].isdigit() or (len(fields) == 6 and not fields[2][:1].isdigit()):
            return None
        return fields[0]
    for suffix in _SDIST_SUFFIXES:
        if base.endswith(suffix):
            project, dash, version = base[: -len(suffix)].rpartition("-")
            if not (dash and project and version[:1].isdigit()):
                return None
            return None if _DASH_DIGIT.search(project) else project
    return None


class UploadAuthorizer:
    """Token and scope decisions for uploads, from trustpub's introspection endpoint."""

    def __init__(self, client: IntrospectionClient, username: str = TOKEN_USERNAME) -> None:
        self.client = client
        self.username = username

    def check_token(self, username: str, password: str) -> Decision:
        if username != self.username:
            return Decision(False, f"uploads need user {self.username!r} and an upload token")
        try:
            token = self.client.introspect(password)
        except IntrospectionUnavailable as exc:
            log.error("upload refused: trustpub cannot be asked (fail closed): %s", exc)
            return Decision(False, "trustpub cannot check the upload token right now")
        if token is None:
            return Decision(False, "the upload token is not active (expired, revoked or unknown)")
        return Decision(True, "active upload token", token)

    def check_projects(self, token: ActiveToken, projects: Iterable[str]) -> Decision:
        names = set(projects)
        if not names:
            return Decision(False, "the upload names no project", token)
        invalid = sorted(repr(name[:100]) for name in names if not _PROJECT_NAME.fullmatch(name))
        if invalid:
            return Decision(False, f"not a project name: {', '.join(invalid)}", token)
        outside = sorted({normalize_project_name(p) for p in names} - token.projects)
        if outside:
            return Decision(
                False,
                f"this upload token may not upload {', '.join(outside)}; "
                f"it covers {', '.join(sorted(token.projects)) or 'no project'}",
                token,
            )
        return Decision(True, "project in the token's scope", token)

    def check_upload(self, username: str, password: str, projects: Iterable[str]) -> Decision:
        decision = self.check_token(username, password)
        if not decision.allowed or decision.token is None:
            return decision
        return self.check_projects(decision.token, projects)

    def auther(
        self,
        fallback: Callable[[str, str], bool] | None = None,
        upload_checked: Callable[[], bool] | None = None,
    ) -> Callable[[str, str], bool]:
        """A `(username, password) -> bool` check for index servers such as pypiserver.

        `__token__` passes with an active upload token; given `upload_checked`, only on
        a request it says `UploadGuard` has checked as an upload: an upload token must
        not open downloads or listings that the index keeps behind its passwords. Other
        users go to `fallback` (the index's own password check) or are refused when
        there is none.
        """

        def check(username: str, password: str) -> bool:
            if username == self.username:
                if upload_checked is not None and not upload_checked():
                    return False
                return self.check_token(username, password).allowed
            return fallback(username, password) if fallback is not None else False

        return check


class UploadGuard:
    """WSGI middleware in front of an index: upload tokens, scoped to their projects.

    `project_of` maps a file name to its project as the index will file it (the
    pypiserver launcher passes pypiserver's own function); None marks a name the index
    would not accept. `read_only_posts` are path suffixes of POST endpoints that only
    read (pypiserver's XML-RPC search). `pass_other_users` lets requests of users other
    than `__token__` through unchecked, to the index's own authentication.
    """

    def __init__(
        self,
        app: WSGIApplication,
        authorizer: UploadAuthorizer,
        *,
        project_of: ProjectOf = project_from_filename,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        read_only_posts: tuple[str, ...] = ("/RPC2",),
        pass_other_users: bool = False,
    ) -> None:
        self.app = app
        self.authorizer = authorizer
        self.project_of = project_of
        self.max_upload_bytes = max_upload_bytes
        self.read_only_posts = read_only_posts
        self.pass_other_users = pass_other_users

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        if method in SAFE_METHODS or (method == "POST" and path.endswith(self.read_only_posts)):
            return self.app(environ, start_response)
        request = _Request(environ, drain_limit=self.max_upload_bytes)
        credentials = basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        if credentials is None:
            return request.deny(start_response, 401, "send user __token__ and an upload token")
        username, password = credentials
        if username != self.authorizer.username and self.pass_other_users:
            return self.app(environ, start_response)
        decision = self.authorizer.check_token(username, password)
        if not decision.allowed or decision.token is None:
            log.warning("upload refused: %s", decision.reason)
            return request.deny(start_response, 403, decision.reason)
        return self._check_body(request, credentials, decision.token, start_response)

    def _check_body(
        self,
        request: _Request,
        credentials: tuple[str, str],
        token: ActiveToken,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        environ = request.environ
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return request.deny(start_response, 411, "send uploads with a Content-Length")
        length = request.content_length
        if length is None:
            return request.deny(start_response, 411, "send uploads with a Content-Length")
        if length > self.max_upload_bytes:
            request.drain_limit = 0  # too large to read just to refuse it
            return request.deny(start_response, 413, "the upload is too large")
        # Closed on every refusal, else by _Closing once the server is done with the answer.
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            checked = self._check_form(request, credentials, token, length, spool)
            if not isinstance(checked, ActiveToken):
                spool.close()
                status, reason = checked
                return request.deny(start_response, status, reason)
            token = checked
            spool.seek(0)
            environ["wsgi.input"] = spool
            environ["CONTENT_LENGTH"] = str(length)
            environ[CHECKED_UPLOAD] = token
            return _Closing(self.app(environ, start_response), spool)
        except BaseException:
            spool.close()
            raise

    def _check_form(
        self,
        request: _Request,
        credentials: tuple[str, str],
        token: ActiveToken,
        length: int,
        spool: IO[bytes],
    ) -> tuple[int, str] | ActiveToken:
        """(status, reason) to refuse the upload, or the token once it may go to the
        index."""
        try:
            form = self._read_form(request, length, spool)
        except MalformedUpload as exc:
            log.warning("upload refused for token %s: %s", token.jti, exc)
            return 400, str(exc)
        problem, status, projects = self._inspect(form)
        if problem:
            log.warning("upload refused for token %s: %s", token.jti, problem)
            return status, problem
        # Asked again now that the body is in (from the cache, within its TTL): reading it
        # may take longer than the token lives, or than a revocation takes to be answered.
        decision = self.authorizer.check_token(*credentials)
        if not decision.allowed or decision.token is None:
            log.warning(
                "upload refused for token %s after its body: %s", token.jti, decision.reason
            )
            return 403, decision.reason
        token = decision.token
        decision = self.authorizer.check_projects(token, projects)
        if not decision.allowed:
            log.warning("upload refused for token %s: %s", token.jti, decision.reason)
            return 403, decision.reason
        publisher = token.publisher
        log.info(
            "upload allowed: %s by %s workflow=%s ref=%s run_id=%s (token %s)",
            ", ".join(f.filename for f in form.files),
            token.subject,
            publisher.get("workflow", "-"),
            publisher.get("ref", "-"),
            publisher.get("run_id", "-"),
            token.jti,
        )
        return token

    def _read_form(self, request: _Request, length: int, spool: IO[bytes]) -> UploadForm:
        boundary = form_data_boundary(str(request.environ.get("CONTENT_TYPE", "")))
        scanner = MultipartScanner(boundary)
        stream = request.environ["wsgi.input"]
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise MalformedUpload("the upload ends before its Content-Length")
            remaining -= len(chunk)
            request.consumed += len(chunk)
            spool.write(chunk)
            scanner.feed(chunk)
        return scanner.close()

    def _inspect(self, form: UploadForm) -> tuple[str, int, list[str]]:
        action = form.fields.get(":action")
        if action != "file_upload":
            return (f"an upload token may only upload files, not {action!r}", 403, [])
        name = form.fields.get("name")
        if not name:
            return ("the upload has no 'name' field", 400, [])
        if not form.files:
            return ("the upload has no file", 400, [])
        projects = [name]
        for part in form.files:
            project = self.project_of(part.filename)
            if not project:
                return (f"{part.filename!r} is not a distribution file name", 400, [])
            projects.append(project)
        return ("", 200, projects)


def basic_credentials(header: object) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic` header; None for anything else."""
    if not isinstance(header, str):
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


class _Request:
    """The bits of a request the guard tracks: how much body it has read."""

    def __init__(self, environ: WSGIEnvironment, drain_limit: int) -> None:
        self.environ = environ
        self.consumed = 0
        self.drain_limit = drain_limit

    @property
    def content_length(self) -> int | None:
        raw = str(self.environ.get("CONTENT_LENGTH") or "").strip()
        # ASCII digits only ("²".isdigit() is true, int() refuses it), and few of them
        # (int() refuses more than 4300): anything else is "no usable length", not a 500.
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None

    def deny(self, start_response: StartResponse, status: int, reason: str) -> list[bytes]:
        self._drain()
        body = (reason + "\n").encode("utf-8")
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Basic realm="upload"'))
        # twine prints the reason phrase, so it carries the explanation too.
        phrase = re.sub(r"[^\x20-\x7e]", "?", reason)[:200]
        start_response(f"{status} {phrase}", headers)
        return [body]

    def _drain(self) -> None:
        # Read what the client sent before answering: a server that closes a socket
        # with unread data resets the connection, and the client never sees the answer.
        length = self.content_length
        if length is None or length > self.drain_limit:
            return
        stream = self.environ.get("wsgi.input")
        remaining = length - self.consumed
        while stream is not None and remaining > 0:
            chunk = stream.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            self.consumed += len(chunk)


class _Closing:
    """The application's response, closing the spooled upload when the server is done."""

    def __init__(self, result: Iterable[bytes], spool: IO[bytes]) -> None:
        self._result = result
        self._spool = spool

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._spool.close()
