"""Run pypiserver so that uploads need a trustpub upload token scoped to the project.

    python -m app.integrations.pypiserver_launcher \\
        --trustpub-url http://127.0.0.1:8000 --client-id index \\
        --client-secret-file /run/secrets/trustpub-index \\
        -- run -p 8080 -i 127.0.0.1 /srv/packages

Everything after `--` is pypiserver's own command line (`pypi-server run ...`). The
launcher builds pypiserver's application from it, plugs an introspecting `auther`
into it (so `-a update` is always on) and wraps it in `UploadGuard`, which checks each
upload's project against the token before pypiserver reads the request. See
docs/index-integration.md.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import socketserver
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from wsgiref.simple_server import WSGIServer
from wsgiref.types import WSGIApplication

from app.integrations.introspection import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_TIMEOUT,
    IntrospectionClient,
    IntrospectionUnavailable,
)
from app.integrations.uploads import (
    CHECKED_UPLOAD,
    DEFAULT_MAX_UPLOAD_BYTES,
    UploadAuthorizer,
    UploadGuard,
    project_from_filename,
)

log = logging.getLogger("app.integrations.pypiserver")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.integrations.pypiserver_launcher",
        description="pypiserver whose uploads need trustpub upload tokens. "
        "Put pypiserver's own arguments after '--'.",
    )
    parser.add_argument(
        "--trustpub-url",
        required=True,
        help="trustpub's internal base URL, e.g. http://127.0.0.1:8000 "
        "(introspection is POST <url>/oauth/introspect)",
    )
    parser.add_argument(
        "--client-id",
        default=None,
        help="the introspection client's name (HTTP Basic); omit to send the secret as Bearer",
    )
    parser.add_argument(
        "--client-secret-file",
        required=True,
        type=Path,
        help="file holding the client's secret (from 'trustpub clients add')",
    )
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=DEFAULT_CACHE_TTL,
        help="seconds an active answer is reused, never past the token's exp; 0 disables "
        "(a revocation takes effect within this delay) [default: %(default)s]",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=DEFAULT_CACHE_SIZE,
        help="most cached answers [default: %(default)s]",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to connect to trustpub, and for each read of its answer "
        "[default: %(default)s]",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help="largest upload request accepted [default: %(default)s]",
    )
    parser.add_argument(
        "--allow-password-uploads",
        action="store_true",
        help="also let users of pypiserver's password file (-P) upload, checked by pypiserver "
        "only; by default only __token__ uploads are accepted",
    )
    return parser


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(launcher arguments, pypiserver arguments), split at the first `--`."""
    items = list(argv)
    if "--" in items:
        index = items.index("--")
        return items[:index], items[index + 1 :]
    return items, []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ours, theirs = split_argv(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(ours)
    try:
        secret = args.client_secret_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        parser.error(f"cannot read --client-secret-file: {exc.strerror}")
    if not secret:
        parser.error("--client-secret-file is empty")
    try:
        client = IntrospectionClient(
            args.trustpub_url,
            secret,
            client_id=args.client_id,
            timeout=args.timeout,
            cache_ttl=args.cache_ttl,
            cache_size=args.cache_size,
        )
    except ValueError as exc:
        parser.error(str(exc))
    authorizer = UploadAuthorizer(client)

    config_module: Any = importlib.import_module("pypiserver.config")
    config: Any = config_module.Config.from_args(theirs or ["run"])
    if not isinstance(config, config_module.RunConfig):
        parser.error("only 'run' can be launched: put 'run ...' after '--'")
    if args.allow_password_uploads and config.password_file in (None, "."):
        parser.error("--allow-password-uploads needs pypiserver's -P password file")
    config = with_trustpub_auther(config, authorizer)

    pypiserver_main: Any = importlib.import_module("pypiserver.__main__")
    pypiserver_main.init_logging(
        level=config.log_level,
        filename=config.log_file,
        frmt=config.log_frmt,
        stream=config.log_stream,
    )
    logging.getLogger("app.integrations").setLevel(min(config.log_level, logging.INFO))
    try:
        client.probe()
    except IntrospectionUnavailable as exc:
        # Credentials that trustpub refuses will never work: stop now. An unreachable
        # trustpub may come back; uploads are refused until it does.
        if "credentials" in str(exc):
            log.error("%s", exc)
            return 2
        log.warning("trustpub is not reachable yet; uploads are refused until it is: %s", exc)

    guard = UploadGuard(
        _pypiserver_app(config),
        authorizer,
        project_of=_pypiserver_project_of(),
        max_upload_bytes=args.max_upload_bytes,
        pass_other_users=args.allow_password_uploads,
    )
    log.info(
        "uploads need trustpub upload tokens (introspection at %s, cache %ss)",
        client.endpoint,
        args.cache_ttl,
    )
    _serve(guard, config, pypiserver_main)
    return 0


def with_trustpub_auther(config: Any, authorizer: UploadAuthorizer) -> Any:
    """pypiserver's config with uploads authenticated (`-a update`) by upload tokens,
    which pass only on the upload request UploadGuard checked (pypiserver asks its auther
    for downloads and listings too, with `-a download,list`)."""
    bottle: Any = importlib.import_module("pypiserver.bottle_wrapper")

    def upload_checked() -> bool:
        return CHECKED_UPLOAD in bottle.request.environ

    return config.with_updates(
        auther=authorizer.auther(fallback=config.auther, upload_checked=upload_checked),
        authenticate=sorted(set(config.authenticate) | {"update"}),
    )


def _pypiserver_app(config: Any) -> WSGIApplication:
    pypiserver: Any = importlib.import_module("pypiserver")
    bottle: Any = importlib.import_module("pypiserver.bottle_wrapper")
    app = pypiserver.setup_routes_from_config(pypiserver.app_from_config(config), config)
    if str(config.server_base_url).strip("/"):
        root = bottle.Bottle()
        root.mount(config.server_base_url, app)
        app = root
    return cast(WSGIApplication, app)


def _pypiserver_project_of() -> Any:
    """pypiserver's own file-name parser, so the guard files uploads as pypiserver does."""
    helpers: Any = importlib.import_module("pypiserver.pkg_helpers")

    def project_of(filename: str) -> str | None:
        # The generic check first: it refuses names with paths or odd characters.
        if project_from_filename(filename) is None:
            return None
        guess = helpers.guess_pkgname_and_version(filename)
        return str(guess[0]) if guess and guess[0] else None

    return project_of


# wsgiref's server has no timeout and no bound on its threads: every client that stops
# sending would hold a thread for ever. A read that waits longer than this fails, and past
# this many requests at once a new connection is closed unanswered.
CLIENT_TIMEOUT_SECONDS = 60
MAX_CONCURRENT_REQUESTS = 64


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request: a slow upload must not stop downloads."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # refused now, not queued behind stalled ones
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], TimeoutError):
            # A client that stopped sending: a line, not socketserver's traceback.
            log.info("closed a connection from %s: nothing sent for a while", client_address[0])
            return
        super().handle_error(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can
        # stall for seconds without DNS; the name is never needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


def timed_handler(handler: type[Any]) -> type[Any]:
    """`handler`, with CLIENT_TIMEOUT_SECONDS on each read from the client."""
    return type(f"Timed{handler.__name__}", (handler,), {"timeout": CLIENT_TIMEOUT_SECONDS})


def _serve(app: WSGIApplication, config: Any, pypiserver_main: Any) -> None:
    bottle: Any = importlib.import_module("pypiserver.bottle_wrapper")
    server = str(config.server_method)
    options: dict[str, Any] = {}
    if server == "auto" and pypiserver_main.guess_auto_server().name == "WsgiRef":
        server = "wsgiref"
    if server == "wsgiref":
        options = {
            "handler_class": timed_handler(pypiserver_main.WsgiHandler),
            "server_class": ThreadingWSGIServer,
        }
    if server == "gunicorn":
        sys.argv = ["gunicorn"]
    bottle.run(app=app, host=config.host, port=config.port, server=server, quiet=True, **options)


if __name__ == "__main__":
    sys.exit(main())
