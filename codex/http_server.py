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
from collections import Counter
from collections.abc import Sequence
from typing import Any

import tornado.httpserver
import tornado.iostream
from tornado.http1connection import HTTP1ServerConnection

from codex.ratelimit import Network, _trusted

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
        self._open: Counter[str] = Counter()
        self._peer_of: dict[HTTP1ServerConnection, str] = {}
        self.refused = 0

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        peer = str(address[0]) if isinstance(address, tuple) and address else "unix"
        capped = not _trusted(peer, self._exempt)
        if capped and self._open[peer] >= self._cap:
            self.refused += 1
            if self.refused % 100 == 1:  # once per burst, not once per connection
                log.warning("%s holds %d connections: closing new ones", peer, self._cap)
            stream.close()
            return
        context = tornado.httpserver._HTTPRequestContext(
            stream, address, self.protocol, self.trusted_downstream
        )
        conn = HTTP1ServerConnection(stream, self.conn_params, context)
        self._connections.add(conn)
        if capped:
            self._open[peer] += 1
            self._peer_of[conn] = peer
        conn.start_serving(self)

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        peer = self._peer_of.pop(server_conn, None)  # type: ignore[call-overload]
        if peer is not None:
            self._open[peer] -= 1
            if self._open[peer] <= 0:
                del self._open[peer]


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
