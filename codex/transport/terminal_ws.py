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
import json
import logging
from typing import Any

import tornado.websocket

from codex.errors import (
    CodexError,
    InvalidField,
    PayloadTooLarge,
    RateLimited,
    SessionNotFound,
)
from codex.eventlog import OUTPUT, Entry
from codex.origins import origin_allowed
from codex.sessions import FRAME_CHARS, Session, SessionRegistry
from codex.terminal import valid_size
from codex.transport.follow import follow, merge_output

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404  # WebSocket close code: no such session
CLOSE_RATE_LIMITED = 4429  # WebSocket close code: too many attaches from this address


class TerminalHandler(tornado.websocket.WebSocketHandler):
    registry: SessionRegistry
    raw: bool
    session: Session | None = None
    _task: asyncio.Task[None] | None = None

    def initialize(self, registry: SessionRegistry, raw: bool = False) -> None:
        self.registry = registry
        self.raw = raw

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.registry.settings.allowed_origins)

    async def open(self, *args: str, **kwargs: str) -> None:
        client = self.registry.client_of(
            self.request.remote_ip, self.request.headers.get("X-Forwarded-For")
        )
        try:
            await self.registry.admit("join", client)
            self.session = self.registry.get(args[0] if args else None)
        except (SessionNotFound, RateLimited) as exc:
            if not self.raw:
                await self._send(["error", exc.to_json()])
            code = CLOSE_NOT_FOUND if isinstance(exc, SessionNotFound) else CLOSE_RATE_LIMITED
            self.close(code, exc.code)
            return
        self.set_nodelay(True)  # keystroke echo is latency-bound
        if not self.raw:
            await self._send(["setup", {}])
        self._task = asyncio.ensure_future(self._deliver(self.session))

    async def _deliver(self, session: Session) -> None:
        async def send(entries: list[Entry]) -> None:
            for kind, body in merge_output(entries, FRAME_CHARS):
                if self.raw:
                    if kind == OUTPUT:
                        await self._send_raw(str(body))
                else:
                    await self._send(["stdout" if kind == OUTPUT else kind, body])

        try:
            await follow(session, send, include_echo=True)
            if not self.raw:
                await self._send(["disconnect", 1])
            self.close(1000, "finished")
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
                data = message if isinstance(message, bytes) else message.encode("utf-8")
                await self._write(session, data)
                return
            await self._command(session, message)
        except CodexError as exc:
            log.info("terminal %s: %s %s", session.id[:8], exc.code, exc.message)
            if not self.raw:
                await self._send(["error", {**exc.to_json(), "sessionId": session.id}])

    async def _command(self, session: Session, message: str | bytes) -> None:
        try:
            parsed = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            raise InvalidField("A message must be a JSON array.", field="message") from None
        if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], str):
            raise InvalidField('A message must be a JSON array like ["stdin", text].')
        kind, args = parsed[0], parsed[1:]
        if kind == "stdin":
            if len(args) != 1 or not isinstance(args[0], str):
                raise InvalidField('"stdin" takes one string.', field="stdin")
            await self._write(session, args[0].encode("utf-8"))
        elif kind == "set_size":
            rows, cols = valid_size(*[*args, None, None][:2])
            await session.resize(rows, cols)
        else:
            raise InvalidField(f"Unknown message {kind!r}; expected stdin or set_size.")

    async def _write(self, session: Session, data: bytes) -> None:
        limit = self.registry.settings.max_input_bytes
        if len(data) > limit:
            raise PayloadTooLarge(f"A message may carry at most {limit} bytes.", field="stdin")
        if not session.finished:
            await session.write(data)

    def on_close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def routes(registry: SessionRegistry) -> list[tuple[str, Any, dict[str, Any]]]:
    return [
        (r"/ws/terminal/([A-Za-z0-9_\-]{1,64})", TerminalHandler, {"registry": registry}),
        (
            r"/ws/terminal/([A-Za-z0-9_\-]{1,64})/raw",
            TerminalHandler,
            {"registry": registry, "raw": True},
        ),
    ]
