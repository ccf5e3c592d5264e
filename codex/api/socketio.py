"""The existing frontend's event API on python-socketio (tornado mode, path /socket.io/).

client -> server: join {sessionId}, input {input, sessionId?}, execute {code, language},
                  resize {rows, cols, sessionId?}, interrupt {sessionId?}, eof {sessionId?}
server -> client: output {output, sessionId, stream}, display {sessionId, data, metadata},
                  input_required {sessionId, prompt, ...},
                  execution_complete {sessionId, status, exitCode, durationMs, ...},
                  error {error, code, sessionId?}, session {sessionId}
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from engineio.exceptions import EngineIOError

from codex.api.origins import origin_allowed
from codex.api.request_options import body_limit
from codex.api.requests import parse_execute, terminal_size, typed_text
from codex.api.sio_server import BoundedServer
from codex.cluster.locator import SessionHandle, SessionLocator
from codex.errors import BadRequest, CodexError, RateLimited, field_error
from codex.identity.access import DRIVE, WATCH, check_access
from codex.identity.credentials import Identity
from codex.sessions.eventlog import Entry
from codex.sessions.follow import merge_output
from codex.sessions.output import FRAME_CHARS
from codex.sessions.registry import SessionRegistry
from codex.wire import ERROR, INTERNAL_ERROR, OUTPUT

log = logging.getLogger(__name__)

Handler = Callable[["SocketIOTransport", str, Any], Awaitable[Any]]

MAX_INFLIGHT = 16  # events of one client handled at once
MAX_HANDLES = 32  # sessions a client joined whose handles it keeps


@dataclass
class Client:
    address: str = "unknown"
    identity: Identity | None = None  # with identity on, who connected (see connect)
    following: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # The sessions this client joined, oldest first: its events go to the same
    # handle its output comes from (for a remote session, failures come back there).
    handles: dict[str, SessionHandle] = field(default_factory=dict)
    current: str | None = None
    inflight: int = 0  # events of this client being handled now


def _event(fn: Handler) -> Handler:
    """Errors become an `error` event (and the acknowledgement); they never escape."""

    @functools.wraps(fn)
    async def wrapper(self: SocketIOTransport, sid: str, *args: Any) -> Any:
        data = args[0] if args else None
        client = self.clients.get(sid)
        try:
            if len(args) > 1:
                raise BadRequest(f"`{fn.__name__[3:]}` takes one argument, not {len(args)}.")
            if client is not None:
                # python-socketio runs each event as a task of its own: a client
                # sending thousands at once must not get thousands of tasks.
                if client.inflight >= MAX_INFLIGHT:
                    raise RateLimited(
                        f"At most {MAX_INFLIGHT} events of one client are handled at once.",
                        retry_after=1,
                    )
                client.inflight += 1
            return await fn(self, sid, data)
        except CodexError as exc:
            log.info("socket.io %s from %s: %s %s", fn.__name__, sid, exc.code, exc.message)
            body = exc.to_json()
            session_id = data.get("sessionId") if isinstance(data, dict) else None
            if isinstance(session_id, str) and "sessionId" not in body:
                body["sessionId"] = session_id
            await self.sio.emit(ERROR, body, to=sid)
            return body
        except Exception:
            log.exception("socket.io %s failed", fn.__name__)
            body = {"error": "The server failed; the error was logged.", "code": INTERNAL_ERROR}
            await self.sio.emit(ERROR, body, to=sid)
            return body
        finally:
            if client is not None and client.inflight > 0:
                client.inflight -= 1

    return wrapper


class SocketIOTransport:
    def __init__(self, registry: SessionRegistry, locator: SessionLocator) -> None:
        self.registry = registry
        self.locator = locator
        settings = registry.settings
        max_message = body_limit(settings)
        # Every emit goes to a client of this server (output of a session owned
        # elsewhere is relayed here by the locator's handle), so no Redis manager.
        self.sio = BoundedServer(
            address=self._address,
            max_clients_per_ip=settings.max_clients_per_ip,
            counts=registry.open_clients,
            async_mode="tornado",
            cors_allowed_origins=self._origin_ok,
            max_http_buffer_size=max_message,
            cors_credentials=False,  # no cookies are used: never credentials with `*`
            logger=False,
            engineio_logger=False,
        )
        self.clients: dict[str, Client] = {}
        self.sio.on("connect", self.connect)
        self.sio.on("disconnect", self.disconnect)
        for name in ("join", "input", "execute", "resize", "interrupt", "eof", "leave"):
            self.sio.on(name, functools.partial(getattr(type(self), "on_" + name), self))

    def handler(self) -> Any:
        base: Any = socketio.get_tornado_handler(self.sio)
        origin_ok = self._origin_ok

        class Handler(base):  # type: ignore[misc]
            def check_origin(self, origin: str) -> bool:
                # engine.io's own check does `origin in allowed`, which a callable
                # policy cannot answer: ask the one origin policy instead.
                return origin_ok(origin, {"HTTP_HOST": self.request.host})

            async def open(self, *args: Any, **kwargs: Any) -> None:
                # Events are small and latency matters: no Nagle delay (with the
                # client's delayed ACK it cost ~40 ms per exchange).
                self.set_nodelay(True)
                await super().open(*args, **kwargs)

        return Handler

    def _address(self, environ: dict[str, Any]) -> str:
        """The client's address: the real peer (see sio_server), through trusted proxies."""
        return self.registry.client_of(
            environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR")
        )

    def _origin_ok(self, origin: str | None, environ: dict[str, Any]) -> bool:
        allowed = self.registry.settings.allowed_origins
        return origin_allowed(origin, environ.get("HTTP_HOST"), allowed)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        address = environ.get("codex.address") or self._address(environ)
        # socket.io-client's `auth: {token}`: checked once, for the whole connection.
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            identity = await self.registry.guard.identify(
                token if isinstance(token, str) else None, address
            )
        except CodexError as exc:
            # socket.io-client's connect_error: err.message the sentence, err.data the
            # one JSON error shape.
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_json()) from None
        self.clients[sid] = Client(address=address, identity=identity)

    async def disconnect(self, sid: str, *args: Any) -> None:
        client = self.clients.pop(sid, None)
        if client is not None:
            for task in client.following.values():
                task.cancel()

    # -- events ---------------------------------------------------------------------------

    @_event
    async def on_join(self, sid: str, data: Any) -> dict[str, Any]:
        session_id = _session_id(data, None)
        client = self._client(sid)
        await self.registry.admit("join", client.address, client.identity)
        handle = await self.locator.find(session_id)
        check_access(client.identity, handle.creator, handle.id, WATCH)
        self._follow(sid, handle)
        return {"sessionId": handle.id, "state": handle.state}

    @_event
    async def on_leave(self, sid: str, data: Any) -> dict[str, Any]:
        client = self._client(sid)
        session_id = _session_id(data, client.current)
        task = client.following.pop(session_id, None)
        if task is not None:
            task.cancel()
        client.handles.pop(session_id, None)
        if client.current == session_id:
            client.current = None
        return {"sessionId": session_id}

    @_event
    async def on_input(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise field_error("input", "a string")
        text = typed_text(data.get("input"), self.registry.settings, "input")
        session = await self._target(sid, data)
        await session.send_input(text)
        return {"sessionId": session.id}

    @_event
    async def on_execute(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadRequest("`execute` takes an object {code, language}.")
        client = self._client(sid)
        await self.registry.admit("execute", client.address, client.identity)
        request = parse_execute(data, self.registry.settings)
        session = await self.registry.create(request, client.address, client.identity)
        await self.sio.emit("session", {"sessionId": session.id}, to=sid)
        self._follow(sid, self.locator.handle(session))
        return {"sessionId": session.id}

    @_event
    async def on_resize(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadRequest("`resize` takes an object {rows, cols}.")
        rows, cols = terminal_size(data.get("rows"), data.get("cols"))
        session = await self._target(sid, data)
        await session.resize(rows, cols, wait=True)
        return {"sessionId": session.id}

    @_event
    async def on_interrupt(self, sid: str, data: Any) -> dict[str, Any]:
        session = await self._target(sid, data)
        await session.write(b"\x03")
        return {"sessionId": session.id}

    @_event
    async def on_eof(self, sid: str, data: Any) -> dict[str, Any]:
        session = await self._target(sid, data)
        await session.write(b"\x04")
        return {"sessionId": session.id}

    # -- plumbing ---------------------------------------------------------------------------

    def _client(self, sid: str) -> Client:
        return self.clients.setdefault(sid, Client())

    async def _target(self, sid: str, data: Any) -> SessionHandle:
        client = self._client(sid)
        session_id = _session_id(data, client.current)
        handle = client.handles.get(session_id)
        if handle is None:
            handle = await self.locator.find(session_id)
        check_access(client.identity, handle.creator, handle.id, DRIVE)  # it acts on it
        return handle

    def _follow(self, sid: str, session: SessionHandle) -> None:
        client = self._client(sid)
        client.current = session.id
        client.handles.pop(session.id, None)
        client.handles[session.id] = session
        while len(client.handles) > MAX_HANDLES:
            client.handles.pop(next(iter(client.handles)))
        old = client.following.pop(session.id, None)
        if old is not None:
            old.cancel()  # a second join starts over: a full replay, no duplicates after it
        task = asyncio.ensure_future(self._deliver(sid, session))
        client.following[session.id] = task
        task.add_done_callback(lambda t: _forget(client, session.id, t))

    async def _deliver(self, sid: str, session: SessionHandle) -> None:
        async def send(entries: list[Entry]) -> None:
            for kind, body, stream in merge_output(entries, FRAME_CHARS, by_stream=True):
                if kind == OUTPUT:
                    message = {"output": body, "sessionId": session.id, "stream": stream}
                    await self.sio.emit_to(sid, OUTPUT, message)
                else:
                    await self.sio.emit_to(sid, kind, body)

            await _drain_queue(self.sio, sid)

        try:
            await session.follow(send, include_echo=False)
        except (asyncio.CancelledError, EngineIOError):
            pass  # the client left or joined again: a normal end


QUEUE_HIGH = 16  # engine.io packets queued for one client before its follower waits


async def _drain_queue(sio: socketio.AsyncServer, sid: str) -> None:
    """Wait while this client's engine.io queue is long, so a slow client makes its
    follower lag (and flow control act) instead of growing an unbounded queue.
    The queue is python-engineio's own; if it is not there, there is nothing to wait on."""
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    sock = sio.eio.sockets.get(eio_sid) if eio_sid else None
    queue = getattr(sock, "queue", None)
    if queue is not None and queue.qsize() > QUEUE_HIGH:
        await queue.join()


def _forget(client: Client, session_id: str, task: asyncio.Task[None]) -> None:
    if client.following.get(session_id) is task:
        del client.following[session_id]


def _session_id(data: Any, default: str | None) -> str:
    if isinstance(data, str):
        return data
    value = data.get("sessionId", default) if isinstance(data, dict) else default
    if value is None:
        raise field_error("sessionId", "a string (or join a session first)")
    if not isinstance(value, str):
        raise field_error("sessionId", "a string")
    return value
