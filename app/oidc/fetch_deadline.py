"""A deadline kept on the sockets of an HTTP fetch, not between its reads.

Socket timeouts bound each read, and a fetch that checks its deadline between reads
stops a body trickled a piece at a time. Inside one read, though, http.client does work
without bound: it skips any number of `100 Continue` responses before the real one,
reads a chunk-size line a byte at a time, and any number of trailer lines. A server can
keep one read going for ever, its thread parsing at full speed.

So at its deadline a fetch's sockets are shut down: any read in progress, wherever it
is, ends at once with an error, and so does every later one. A session carries this
once `watch_sockets` mounted its adapters; a fetch sets its deadline with
`SocketDeadline`. Through an operator's proxy (`HTTPS_PROXY`) the socket watched is
the one to the proxy, which carries the tunnel. A SOCKS proxy's sockets are not watched
(requests needs PySocks for one, which trustpub does not install): the fetch's own
deadline checks between reads still bound those.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

# The deadline of the fetch this thread is making, if any.
_current = threading.local()


class SocketDeadline:
    """Within `with`, the sockets this thread's fetch opens or reads from are shut down
    `seconds` from its start."""

    def __init__(self, seconds: float) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._expired = False
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> SocketDeadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        _current.deadline = None

    @property
    def expired(self) -> bool:
        """Whether the deadline came: the fetch's sockets were shut down."""
        return self._expired

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not self._expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def watch_sockets(session: requests.Session) -> None:
    """Make `session` hand the sockets of its fetches to their SocketDeadline."""
    for prefix in ("https://", "http://"):
        session.mount(prefix, _WatchedAdapter())


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's: that one drops its TLS state under
    # the thread that is reading. Closed already: nothing left to end.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(sock: Any) -> None:
    deadline: SocketDeadline | None = getattr(_current, "deadline", None)
    if deadline is not None and isinstance(sock, socket.socket):
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before the TLS handshake, which a server may trickle too
        return sock

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)  # a connection kept from an earlier fetch
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKS: its pools open their own sockets
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager
