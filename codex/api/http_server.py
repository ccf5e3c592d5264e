"""The HTTP server's own bounds: slow clients are cut off, one peer cannot hold every
connection, and the process has the descriptors a full server needs.

Tornado's ``idle_connection_timeout`` is also its header timeout: a connection that
has not finished its request headers by then is closed, as is one idle between
requests. ``body_timeout`` bounds the body. Open connections are counted per TCP peer
(a trusted proxy carries many clients and is not capped here; its clients are capped
by address elsewhere). WebSockets leave this count once upgraded: Socket.IO and
terminal streams have their own cap per client address (``max_clients_per_ip``).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Sequence
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream
from tornado.http1connection import HTTP1ServerConnection

from codex.sessions.admission import Network, _trusted

log = logging.getLogger(__name__)

WANTED_FDS = 65536


class BoundedHTTPServer(tornado.httpserver.HTTPServer):
    def initialize(
        self,
        *args: Any,
        max_connections_per_ip: int = 64,
        exempt: Sequence[Network] = (),
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self._cap = max_connections_per_ip
        self._exempt = list(exempt)
        # Per peer, its open connections, oldest first (dicts keep insertion order).
        self._by_peer: dict[str, dict[HTTP1ServerConnection, None]] = {}
        self._peer_of: dict[HTTP1ServerConnection, str] = {}
        self._busy: set[HTTP1ServerConnection] = set()  # inside a request now
        self.refused = 0
        self.evicted = 0

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        peer = str(address[0]) if isinstance(address, tuple) and address else "unix"
        capped = not _trusted(peer, self._exempt)
        mine = self._by_peer.setdefault(peer, {}) if capped else {}
        if capped and len(mine) >= self._cap and not self._evict(mine):
            self.refused += 1
            if self.refused % 100 == 1:  # once per burst, not once per connection
                log.warning("%s holds %d busy connections: closing new ones", peer, self._cap)
            stream.close()
            return
        context = tornado.httpserver._HTTPRequestContext(
            stream, address, self.protocol, self.trusted_downstream
        )
        conn = HTTP1ServerConnection(stream, self.conn_params, context)
        self._connections.add(conn)
        if capped:
            mine[conn] = None
            self._peer_of[conn] = peer
        conn.start_serving(self)

    def _evict(self, mine: dict[HTTP1ServerConnection, None]) -> bool:
        """Make room by closing the peer's oldest connection that is not inside a
        request (idle, or its headers still unfinished): a client sharing an address
        with a slow-header attacker still gets in, and the attacker loses its oldest."""
        for conn in mine:
            if conn not in self._busy:
                self.evicted += 1
                self._forget(conn)
                conn.stream.close()
                return True
        return False

    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        # A new request cycle: the last response is out, the next headers are awaited.
        self._busy.discard(server_conn)
        delegate = super().start_request(server_conn, request_conn)
        return _Tracked(delegate, self._busy, server_conn)  # type: ignore[arg-type]

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        self._forget(server_conn)  # type: ignore[arg-type]

    def _forget(self, conn: HTTP1ServerConnection) -> None:
        self._busy.discard(conn)
        peer = self._peer_of.pop(conn, None)
        if peer is not None:
            mine = self._by_peer.get(peer, {})
            mine.pop(conn, None)
            if not mine:
                self._by_peer.pop(peer, None)


class _Tracked(tornado.httputil.HTTPMessageDelegate):
    """Marks a connection busy from its request's headers on (until the server starts
    reading its next request, or it closes)."""

    def __init__(
        self,
        inner: tornado.httputil.HTTPMessageDelegate,
        busy: set[HTTP1ServerConnection],
        conn: HTTP1ServerConnection,
    ) -> None:
        self.inner, self.busy, self.conn = inner, busy, conn

    def headers_received(self, start_line: Any, headers: Any) -> Any:
        self.busy.add(self.conn)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.busy.discard(self.conn)
        self.inner.on_connection_close()


def raise_fd_limit() -> None:
    """Every connection, sandbox stream and log is a descriptor: take what the hard
    limit allows (up to WANTED_FDS) rather than the usual soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = WANTED_FDS if hard == resource.RLIM_INFINITY else min(hard, WANTED_FDS)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit to %d: %s", target, exc)
