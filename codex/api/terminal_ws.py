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

import tornado.ioloop
import tornado.websocket

from codex.api.origins import origin_allowed
from codex.api.requests import terminal_size, typed_bytes, typed_text
from codex.cluster.locator import SessionHandle, SessionLocator
from codex.errors import (
    CodexError,
    Forbidden,
    InvalidField,
    RateLimited,
    SessionFinished,
    SessionNotFound,
    Unauthorized,
)
from codex.identity.access import DRIVE, WATCH, check_access
from codex.sessions.displays import inline_image
from codex.sessions.eventlog import Entry
from codex.sessions.follow import merge_output
from codex.sessions.output import FRAME_CHARS
from codex.sessions.registry import SessionRegistry
from codex.wire import DISPLAY, ERROR, ID_CHARS, OUTPUT

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404  # WebSocket close code: no such session
CLOSE_RATE_LIMITED = 4429  # WebSocket close code: too many attaches from this address
CLOSES: dict[type[CodexError], int] = {
    SessionNotFound: CLOSE_NOT_FOUND,
    RateLimited: CLOSE_RATE_LIMITED,
    Unauthorized: 4401,
    Forbidden: 4403,
}
AUTH_PROTOCOL = "bearer"  # Sec-WebSocket-Protocol: bearer, <credential>
AUTH_WAIT = 10.0  # seconds the JSON protocol's ["auth", token] may take to come


class TerminalHandler(tornado.websocket.WebSocketHandler):
    registry: SessionRegistry
    locator: SessionLocator
    raw: bool
    session: SessionHandle | None = None
    _task: asyncio.Task[None] | None = None
    _client: str | None = None  # the address counted in registry.open_clients
    _credential: str | None = None  # from the "bearer" subprotocol, if given
    _auth_timer: object | None = None  # waiting for ["auth", token] while set
    _drives = True  # may type and resize (False for an observer)
    _session_id = ""
    _address = ""

    def initialize(
        self, registry: SessionRegistry, locator: SessionLocator, raw: bool = False
    ) -> None:
        self.registry = registry
        self.locator = locator
        self.raw = raw

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.registry.settings.allowed_origins)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        # A browser cannot set headers on a WebSocket: a credential comes as the
        # protocol after "bearer" (`new WebSocket(url, ["bearer", token])`), never in
        # the URL, which ends up in access logs.
        if AUTH_PROTOCOL in subprotocols:
            at = subprotocols.index(AUTH_PROTOCOL)
            self._credential = subprotocols[at + 1] if at + 1 < len(subprotocols) else ""
            return AUTH_PROTOCOL
        return None

    async def open(self, *args: str, **kwargs: str) -> None:
        self._session_id = args[0] if args else ""
        self._address = self.registry.client_of(
            self.request.remote_ip, self.request.headers.get("X-Forwarded-For")
        )
        try:
            self._count_client(self._address)
        except RateLimited as exc:
            await self._refuse(exc)
            return
        if self.registry.guard.enabled and self._credential is None and not self.raw:
            # terminado's way: the first message is ["auth", token].
            self._auth_timer = tornado.ioloop.IOLoop.current().call_later(
                AUTH_WAIT, lambda: self.close(CLOSES[Unauthorized], "no credential came")
            )
            return
        await self._attach(self._credential)

    async def _attach(self, credential: str | None) -> None:
        try:
            identity = await self.registry.guard.identify(credential, self._address)
            await self.registry.admit("join", self._address, identity)
            session = await self.locator.find(self._session_id)
            check_access(identity, session.creator, session.id, WATCH)
        except (SessionNotFound, RateLimited, Unauthorized, Forbidden) as exc:
            await self._refuse(exc)
            return
        try:
            check_access(identity, session.creator, session.id, DRIVE)
            self._drives = True
        except Forbidden:
            self._drives = False  # an observer: watches, never types
        self.session = session
        self.set_nodelay(True)  # keystroke echo is latency-bound
        if not self.raw:
            await self._send(["setup", {}])
        self._task = asyncio.ensure_future(self._deliver(session))

    async def _refuse(self, exc: CodexError) -> None:
        if not self.raw:
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                await self._send([ERROR, exc.to_json()])
        self.close(CLOSES.get(type(exc), CLOSE_RATE_LIMITED), exc.code)

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
        if self._auth_timer is not None:
            await self._first_message(message)
            return
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

    async def _first_message(self, message: str | bytes) -> None:
        """With identity on, the first message of the JSON protocol: ["auth", token]."""
        if self._auth_timer is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(self._auth_timer)
            self._auth_timer = None
        try:
            parsed = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        valid = isinstance(parsed, list) and len(parsed) == 2 and parsed[0] == "auth"
        token = parsed[1] if valid and isinstance(parsed[1], str) else None
        await self._attach(token)

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
        elif kind == "auth":
            pass  # identity is off, or was settled at attach: nothing more to say
        elif kind == "set_size":
            rows, cols = terminal_size(*[*args, None, None][:2])
            self._check_drives()
            await session.resize(rows, cols)
        else:
            raise InvalidField(f"Unknown message {kind!r}; expected stdin, set_size or auth.")

    async def _write(self, session: SessionHandle, data: bytes) -> None:
        self._check_drives()
        typed_bytes(data, self.registry.settings, "stdin")
        # Keys typed after the end are dropped, not answered: the view is closing.
        with contextlib.suppress(SessionFinished):
            await session.write(data)

    def _check_drives(self) -> None:
        if not self._drives:
            raise Forbidden("You may watch this session, not type into it.")

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
        if self._auth_timer is not None:
            tornado.ioloop.IOLoop.current().remove_timeout(self._auth_timer)
            self._auth_timer = None
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
