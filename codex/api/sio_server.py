"""python-socketio's server with the bounds a shared server needs.

- **The real peer.** python-engineio's Tornado driver writes ``REMOTE_ADDR =
  '127.0.0.1'`` into every environ; here it is the Tornado request's ``remote_ip``, so
  per-address limits (and ``trusted_proxies``) see every client as itself.
- **Engine.IO sessions per address** are capped (``max_clients_per_ip``): a refused
  handshake is a 401 with this API's ``{error, code}`` body.
- **Binary attachments** are capped in number and in bytes: a packet announcing more
  is refused and its client disconnected, before anything is buffered for it.
- **What the server buffers for a client** is bounded: a WebSocket write waits while
  the connection's send buffer is over ``SEND_BUFFER_HIGH``, so the session's flow
  control (docs/terminal.md) holds the program back instead of the server growing a
  buffer; a client that reads nothing for ``SLOW_CLIENT_TIMEOUT`` is disconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import socketio
import tornado.iostream
import tornado.websocket
from engineio import async_socket as eio_async_socket
from engineio import exceptions as eio_exceptions
from engineio.async_drivers import tornado as eio_tornado

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 4  # binary attachments per packet (CodeX's events take none)
SEND_BUFFER_HIGH = 1024 * 1024  # bytes queued on one WebSocket before writes wait
SLOW_CLIENT_TIMEOUT = 20.0  # seconds a client may leave that buffer undrained

Address = Callable[[dict[str, Any]], str]


def _translate_request(handler: Any) -> dict[str, Any]:
    environ: dict[str, Any] = eio_tornado.translate_request(handler)
    environ["REMOTE_ADDR"] = handler.request.remote_ip or "unknown"
    return environ


class PacedWebSocket(eio_tornado.WebSocket):  # type: ignore[misc]
    """engine.io's Tornado WebSocket, whose send waits while the client lags."""

    def __init__(self, handler: Any, server: Any) -> None:
        super().__init__(handler, server)
        self.server = server

    async def __call__(self, environ: dict[str, Any]) -> None:
        # An upgrade names its Engine.IO session: remember which Tornado connection
        # carries it, so a refused client can be cut off at the socket.
        sid = parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
        connections = getattr(self.server, "codex_connections", None)
        if sid and connections is not None:
            connections[sid] = environ["tornado.handler"]
        await super().__call__(environ)

    async def send(self, message: str | bytes) -> None:
        handler = self.tornado_handler
        try:
            done = handler.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            raise eio_exceptions.EngineIOError() from None
        connection = getattr(handler, "ws_connection", None)
        stream = getattr(connection, "stream", None)
        if len(getattr(stream, "_write_buffer", None) or b"") <= SEND_BUFFER_HIGH:
            done.add_done_callback(_consume)  # a close meanwhile is not an error here
            return
        try:
            await asyncio.wait_for(done, SLOW_CLIENT_TIMEOUT)
        except TimeoutError:
            log.info("socket.io client %s reads nothing: disconnected", handler.request.remote_ip)
            handler.close(1008, "not reading")
            raise eio_exceptions.EngineIOError() from None
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            raise eio_exceptions.EngineIOError() from None


class QuickPollSocket(eio_async_socket.AsyncSocket):  # type: ignore[misc]
    """engine.io's socket, whose writer waits on its queue directly. The original
    poll wraps every wait in asyncio.wait_for, which makes a task of its own per
    packet sent: three more turns of the event loop for each frame of output."""

    async def poll(self) -> list[Any]:
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                packets = [await self.queue.get()]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise eio_exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while True:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets


class BoundedServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(
        self, *, address: Address, max_clients_per_ip: int, counts: Counter[str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._address = address
        self._max_per_ip = max_clients_per_ip
        self._eio_address: dict[str, str] = {}
        # Shared with the terminal WebSockets: one budget of open clients per address.
        self._per_address = counts
        self._binary_bytes: dict[str, int] = {}
        # Engine.IO session -> the Tornado handler of its connection (see _refuse).
        self._connections: dict[str, Any] = {}
        self.eio.codex_connections = self._connections
        # The driver's table is module-wide: this server gets its own copy.
        self.eio._async = {
            **self.eio._async,
            "translate_request": _translate_request,
            "websocket": PacedWebSocket,
        }

    async def emit_to(self, sid: str, event: str, data: Any) -> None:
        """``emit(event, data, to=sid)`` without python-socketio's task and wait per
        recipient (AsyncManager.emit): a stream of output sends one per frame, and
        for one recipient they were a third of what the frame cost."""
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            return  # the client left
        pkt = self.packet_class(socketio.packet.EVENT, namespace="/", data=[event, data])
        encoded = pkt.encode()
        if isinstance(encoded, list):  # binary attachments (none of CodeX's events)
            await self.emit(event, data, to=sid)
            return
        await self.eio.send(eio_sid, encoded)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        address = self._address(environ)
        if self._per_address[address] >= self._max_per_ip:
            log.info("socket.io: %s already has %d connections: refused", address, self._max_per_ip)
            return {
                "error": f"At most {self._max_per_ip} connections are allowed from one address.",
                "code": "too_many_connections",
            }
        self._per_address[address] += 1
        self._eio_address[eio_sid] = address
        environ["codex.address"] = address
        self._connections[eio_sid] = environ.get("tornado.handler")
        sock = self.eio.sockets.get(eio_sid)
        if type(sock) is eio_async_socket.AsyncSocket:
            sock.__class__ = QuickPollSocket  # made by engine.io: only its poll differs
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, *args: Any) -> None:
        address = self._eio_address.pop(eio_sid, None)
        if address is not None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]
        self._binary_bytes.pop(eio_sid, None)
        self._connections.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, *args)

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        if eio_sid in self._binary_packet:
            # An attachment: the packet's parts are bounded in bytes, in all.
            total = self._binary_bytes.get(eio_sid, 0) + len(data)
            self._binary_bytes[eio_sid] = total
            if total > self.eio.max_http_buffer_size:
                await self._refuse(eio_sid, "binary attachments over the size limit")
                return
        elif isinstance(data, str) and data[:1] in ("5", "6"):
            count = _attachments(data)
            if count is None or count > MAX_ATTACHMENTS:
                await self._refuse(eio_sid, f"a packet announcing {count} attachments")
                return
            self._binary_bytes[eio_sid] = 0
        await super()._handle_eio_message(eio_sid, data)

    async def _refuse(self, eio_sid: str, why: str) -> None:
        log.info("socket.io client %s disconnected: %s", self._eio_address.get(eio_sid), why)
        self._binary_packet.pop(eio_sid, None)
        self._binary_bytes.pop(eio_sid, None)
        handler = self._connections.pop(eio_sid, None)
        await self.eio.disconnect(eio_sid)
        # Engine.IO's disconnect leaves the WebSocket open until its ping times out:
        # close the connection itself, so nothing more is read from this client.
        if isinstance(handler, tornado.websocket.WebSocketHandler):
            handler.close(1008, "refused")


def _consume(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def _attachments(encoded: str) -> int | None:
    """The attachment count of an encoded binary packet ("51-[...]"), or None."""
    dash = encoded.find("-", 1, 12)
    digits = encoded[1:dash] if dash > 0 else ""
    return int(digits) if digits.isdigit() else None
