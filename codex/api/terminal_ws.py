"""Raw terminal streams for xterm.js.

``/ws/terminal/<id>`` speaks terminado's JSON protocol, so a Jupyter-style terminado
client works unchanged: the server sends ``["setup", {}]``, ``["stdout", text]`` and
``["disconnect", 1]`` at the end; the client sends ``["stdin", text]`` (keystrokes as
typed, nothing added) and ``["set_size", rows, cols]``. CodeX's own events ride along
as ``["input_required", {...}]``, ``["error", {...}]`` and
``["execution_complete", {...}]``.

``/ws/terminal/<id>/raw`` is for the stock ``@xterm/addon-attach``: every frame is
output one way and keystrokes the other. Resize, interrupt and the events go through a
side channel: the Socket.IO API (``join``, ``resize``) or ``/ws/terminal/<id>``.

A terminal view shows what a terminal shows, the echo of typed answers included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import tornado.websocket

from codex.api.origins import origin_allowed
from codex.api.requests import terminal_size, typed_bytes, typed_text
from codex.cluster.locator import SessionHandle, SessionLocator
from codex.errors import (
    CodexError,
    InvalidField,
    RateLimited,
    SessionFinished,
    SessionNotFound,
)
from codex.sessions.displays import inline_image
from codex.sessions.eventlog import Entry
from codex.sessions.follow import merge_output
from codex.sessions.output import FRAME_CHARS
from codex.sessions.registry import SessionRegistry
from codex.wire import DISPLAY, ERROR, ID_CHARS, OUTPUT

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404  # WebSocket close code: no such session
CLOSE_RATE_LIMITED = 4429  # WebSocket close code: too many attaches from this address


class TerminalHandler(tornado.websocket.WebSocketHandler):
    registry: SessionRegistry
    locator: SessionLocator
    raw: bool
    session: SessionHandle | None = None
    _task: asyncio.Task[None] | None = None
    _client: str | None = None  # the address counted in registry.open_clients

    def initialize(
        self, registry: SessionRegistry, locator: SessionLocator, raw: bool = False
    ) -> None:
        self.registry = registry
        self.locator = locator
        self.raw = raw

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.registry.settings.allowed_origins)

    async def open(self, *args: str, **kwargs: str) -> None:
        client = self.registry.client_of(
            self.request.remote_ip, self.request.headers.get("X-Forwarded-For")
        )
        session_id = args[0] if args else ""
        try:
            self._count_client(client)
            await self.registry.admit("join", client)
            session = await self.locator.find(session_id)
        except (SessionNotFound, RateLimited) as exc:
            if not self.raw:
                await self._send([ERROR, exc.to_json()])
            code = CLOSE_NOT_FOUND if isinstance(exc, SessionNotFound) else CLOSE_RATE_LIMITED
            self.close(code, exc.code)
            return
        self.session = session
        self.set_nodelay(True)  # keystroke echo is latency-bound
        if not self.raw:
            await self._send(["setup", {}])
        self._task = asyncio.ensure_future(self._deliver(session))

    async def _deliver(self, session: SessionHandle) -> None:
        async def send(entries: list[Entry]) -> None:
            for message in terminal_messages(entries):
                if self.raw:
                    if message[0] == "stdout":
                        await self._send_raw(message[1])
                else:
                    await self._send(message)

        try:
            ending = await session.follow(send, include_echo=True)
            if not self.raw:
                await self._send(["disconnect", 1])
            self.close(1000, ending)
        except (asyncio.CancelledError, tornado.websocket.WebSocketClosedError):
            pass  # the client left: a normal end

    async def _send(self, message: list[Any]) -> None:
        await self.write_message(json.dumps(message))

    async def _send_raw(self, text: str) -> None:
        await self.write_message(text)

    async def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None:
            return
        try:
            if self.raw:
                data = message if isinstance(message, bytes) else message.encode("utf-8", "replace")
                await self._write(session, data)
                return
            await self._command(session, message)
        except CodexError as exc:
            log.info("terminal %s: %s %s", session.id[:8], exc.code, exc.message)
            if not self.raw:
                await self._send([ERROR, {**exc.to_json(), "sessionId": session.id}])

    async def _command(self, session: SessionHandle, message: str | bytes) -> None:
        try:
            parsed = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            raise InvalidField("A message must be a JSON array.", field="message") from None
        if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], str):
            raise InvalidField('A message must be a JSON array like ["stdin", text].')
        kind, args = parsed[0], parsed[1:]
        if kind == "stdin":
            if len(args) != 1:
                raise InvalidField('"stdin" takes one string.', field="stdin")
            text = typed_text(args[0], self.registry.settings, "stdin")
            await self._write(session, text.encode("utf-8"))
        elif kind == "set_size":
            rows, cols = terminal_size(*[*args, None, None][:2])
            await session.resize(rows, cols)
        else:
            raise InvalidField(f"Unknown message {kind!r}; expected stdin or set_size.")

    async def _write(self, session: SessionHandle, data: bytes) -> None:
        typed_bytes(data, self.registry.settings, "stdin")
        # Keys typed after the end are dropped, not answered: the view is closing.
        with contextlib.suppress(SessionFinished):
            await session.write(data)

    def _count_client(self, client: str) -> None:
        """One budget of open clients per address, shared with Socket.IO."""
        counts, cap = self.registry.open_clients, self.registry.settings.max_clients_per_ip
        if counts[client] >= cap:
            raise RateLimited(
                f"At most {cap} connections are allowed from one address.", retry_after=5
            )
        counts[client] += 1
        self._client = client

    def on_close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            counts = self.registry.open_clients
            counts[self._client] -= 1
            if counts[self._client] <= 0:
                del counts[self._client]
            self._client = None


def terminal_messages(entries: list[Entry]) -> list[list[Any]]:
    """Log entries as terminado-protocol messages (stdout frames merged). An image is
    an inline image sequence in the terminal's own stream, at its place in the text."""
    out: list[list[Any]] = []
    for kind, body, _ in merge_output(entries, FRAME_CHARS):
        if kind == DISPLAY and isinstance(body, dict):
            sequence = inline_image(body)
            if sequence:
                out.append(["stdout", sequence])
        else:
            out.append(["stdout" if kind == OUTPUT else kind, body])
    return out


def routes(
    registry: SessionRegistry, locator: SessionLocator
) -> list[tuple[str, Any, dict[str, Any]]]:
    args = {"registry": registry, "locator": locator}
    return [
        (rf"/ws/terminal/({ID_CHARS})", TerminalHandler, args),
        (rf"/ws/terminal/({ID_CHARS})/raw", TerminalHandler, {**args, "raw": True}),
    ]
