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
import uuid
from typing import Any

import tornado.websocket

from codex.api.follow import follow, merge_output
from codex.api.origins import origin_allowed
from codex.cluster.directory import Cluster, RemoteSession
from codex.errors import (
    CodexError,
    InvalidField,
    PayloadTooLarge,
    RateLimited,
    SessionNotFound,
    text_field,
)
from codex.sessions.eventlog import OUTPUT, Entry
from codex.sessions.screen import valid_size
from codex.sessions.session import FRAME_CHARS, Session, SessionRegistry

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404  # WebSocket close code: no such session
CLOSE_RATE_LIMITED = 4429  # WebSocket close code: too many attaches from this address


class TerminalHandler(tornado.websocket.WebSocketHandler):
    registry: SessionRegistry
    raw: bool
    session: Session | RemoteSession | None = None
    _task: asyncio.Task[None] | None = None
    _client: str | None = None  # the address counted in registry.open_clients

    def initialize(self, registry: SessionRegistry, raw: bool = False) -> None:
        self.registry = registry
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
            try:
                session: Session | RemoteSession = self.registry.get(session_id)
            except SessionNotFound:
                session = await self._remote(session_id)
        except (SessionNotFound, RateLimited) as exc:
            if not self.raw:
                await self._send(["error", exc.to_json()])
            code = CLOSE_NOT_FOUND if isinstance(exc, SessionNotFound) else CLOSE_RATE_LIMITED
            self.close(code, exc.code)
            return
        self.session = session
        self.set_nodelay(True)  # keystroke echo is latency-bound
        if not self.raw:
            await self._send(["setup", {}])
        if isinstance(session, RemoteSession):
            self._task = asyncio.ensure_future(self._relay(session))
        else:
            self._task = asyncio.ensure_future(self._deliver(session))

    async def _remote(self, session_id: str) -> RemoteSession:
        """A session owned by another instance (with redis_url); SessionNotFound if none."""
        record = await self.registry.remote_record(session_id)
        cluster = self.registry.cluster
        assert cluster is not None
        return RemoteSession(cluster, str(record.get("owner")), session_id)

    async def _relay(self, session: RemoteSession) -> None:
        """The owner follows the session for us and publishes the messages on a channel
        of our own; they are passed on as they come. Without the owner's lease, the
        session is lost and the client is told so."""
        cluster = session.cluster
        channel = uuid.uuid4().hex
        try:
            async with cluster.subscription(channel) as pubsub:
                await session.send_command("term-follow", channel=channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        if not await cluster.alive(session.owner):
                            await self._lost(session)
                            return
                        continue
                    parsed = json.loads(message["data"])
                    if self.raw and parsed[0] == "stdout":
                        await self._send_raw(parsed[1])
                    elif not self.raw:
                        await self._send(parsed)
                    if parsed[0] == "disconnect":
                        self.close(1000, "finished")
                        return
        except (asyncio.CancelledError, tornado.websocket.WebSocketClosedError):
            pass  # the client left: a normal end
        finally:
            with contextlib.suppress(Exception):
                await session.send_command("term-leave", channel=channel)

    async def _lost(self, session: RemoteSession) -> None:
        record = await session.cluster.lookup(session.id) or {"owner": session.owner}
        error, result = await session.cluster.lost_ending(session.id, record)
        if not self.raw:
            await self._send(["error", error])
            await self._send(["execution_complete", result])
            await self._send(["disconnect", 1])
        self.close(1000, "lost")

    async def _deliver(self, session: Session) -> None:
        async def send(entries: list[Entry]) -> None:
            for message in terminal_messages(entries):
                if self.raw:
                    if message[0] == "stdout":
                        await self._send_raw(message[1])
                else:
                    await self._send(message)

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
                data = message if isinstance(message, bytes) else message.encode("utf-8", "replace")
                await self._write(session, data)
                return
            await self._command(session, message)
        except CodexError as exc:
            log.info("terminal %s: %s %s", session.id[:8], exc.code, exc.message)
            if not self.raw:
                await self._send(["error", {**exc.to_json(), "sessionId": session.id}])

    async def _command(self, session: Session | RemoteSession, message: str | bytes) -> None:
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
            await self._write(session, text_field(args[0], "stdin").encode("utf-8"))
        elif kind == "set_size":
            rows, cols = valid_size(*[*args, None, None][:2])
            await session.resize(rows, cols)
        else:
            raise InvalidField(f"Unknown message {kind!r}; expected stdin or set_size.")

    async def _write(self, session: Session | RemoteSession, data: bytes) -> None:
        limit = self.registry.settings.max_input_bytes
        if len(data) > limit:
            raise PayloadTooLarge(f"A message may carry at most {limit} bytes.", field="stdin")
        if not isinstance(session, Session) or not session.finished:
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
    """Log entries as terminado-protocol messages (stdout frames merged)."""
    return [
        ["stdout" if kind == OUTPUT else kind, body]
        for kind, body in merge_output(entries, FRAME_CHARS)
    ]


class TerminalRelays:
    """The owner's side of terminal streams relayed to other instances."""

    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def on_command(self, command: dict[str, Any]) -> bool:
        """Handle `term-follow` / `term-leave`; False for any other command."""
        op, channel = command.get("op"), command.get("channel")
        if op not in ("term-follow", "term-leave") or not isinstance(channel, str):
            return False
        if op == "term-leave":
            task = self._tasks.pop(channel, None)
            if task is not None:
                task.cancel()
            return True
        cluster = self.registry.cluster
        try:
            session = self.registry.get(command.get("sessionId"))
        except SessionNotFound as exc:
            if cluster is not None:
                await cluster.publish(channel, ["error", exc.to_json()])
                await cluster.publish(channel, ["disconnect", 1])
            return True
        assert cluster is not None
        task = asyncio.ensure_future(self._publish(cluster, channel, session))
        self._tasks[channel] = task
        task.add_done_callback(lambda t: self._tasks.pop(channel, None))
        return True

    async def _publish(self, cluster: Cluster, channel: str, session: Session) -> None:
        # Published, not awaited by the reader: a remote terminal never holds the
        # program back (no flow control across instances).
        async def send(entries: list[Entry]) -> None:
            for message in terminal_messages(entries):
                await cluster.publish(channel, message)

        with contextlib.suppress(asyncio.CancelledError):
            await follow(session, send, include_echo=True)
            await cluster.publish(channel, ["disconnect", 1])

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()


def routes(registry: SessionRegistry) -> list[tuple[str, Any, dict[str, Any]]]:
    return [
        (r"/ws/terminal/([A-Za-z0-9_\-]{1,64})", TerminalHandler, {"registry": registry}),
        (
            r"/ws/terminal/([A-Za-z0-9_\-]{1,64})/raw",
            TerminalHandler,
            {"registry": registry, "raw": True},
        ),
    ]
