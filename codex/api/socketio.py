"""The existing frontend's event API on python-socketio (tornado mode, path /socket.io/).

client -> server: join {sessionId}, input {input, sessionId?}, execute {code, language},
                  resize {rows, cols, sessionId?}, interrupt {sessionId?}, eof {sessionId?}
server -> client: output {output, sessionId}, input_required {sessionId, prompt, ...},
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

from codex.api.follow import follow, merge_output
from codex.api.http import parse_execute
from codex.api.origins import origin_allowed
from codex.api.sio_server import BoundedServer
from codex.cluster.directory import Cluster, RemoteSession
from codex.errors import (
    BadRequest,
    CodexError,
    PayloadTooLarge,
    RateLimited,
    SessionNotFound,
    field_error,
    text_field,
)
from codex.sessions.eventlog import OUTPUT, Entry
from codex.sessions.screen import valid_size
from codex.sessions.session import FRAME_CHARS, Session, SessionRegistry

log = logging.getLogger(__name__)

Handler = Callable[["SocketIOTransport", str, Any], Awaitable[Any]]

MAX_INFLIGHT = 16  # events of one client handled at once


@dataclass
class Client:
    address: str = "unknown"
    following: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Sessions this client follows on other instances: session id -> owner instance.
    remote: dict[str, str] = field(default_factory=dict)
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
            await self.sio.emit("error", body, to=sid)
            return body
        except Exception:
            log.exception("socket.io %s failed", fn.__name__)
            body = {"error": "The server failed; the error was logged.", "code": "internal_error"}
            await self.sio.emit("error", body, to=sid)
            return body
        finally:
            if client is not None and client.inflight > 0:
                client.inflight -= 1

    return wrapper


class SocketIOTransport:
    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry
        settings = registry.settings
        max_message = settings.max_code_bytes + settings.max_stdin_bytes + 16 * 1024
        manager = socketio.AsyncRedisManager(settings.redis_url) if settings.redis_url else None
        self.sio = BoundedServer(
            address=self._address,
            max_clients_per_ip=settings.max_clients_per_ip,
            counts=registry.open_clients,
            async_mode="tornado",
            client_manager=manager,
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
        self.clients[sid] = Client(address=environ.get("codex.address") or self._address(environ))

    async def disconnect(self, sid: str, *args: Any) -> None:
        client = self.clients.pop(sid, None)
        if client is not None:
            for task in client.following.values():
                task.cancel()
            for session_id, owner in client.remote.items():
                await self._relay(owner, "leave", session_id, sid)

    # -- events ---------------------------------------------------------------------------

    @_event
    async def on_join(self, sid: str, data: Any) -> dict[str, Any]:
        session_id = _session_id(data, None)
        client = self._client(sid)
        await self.registry.admit("join", client.address)
        try:
            session = self.registry.get(session_id)
        except SessionNotFound:
            owner, record = await self._remote_owner(session_id)
            client.current = session_id
            if owner is None:  # its instance is gone: say how it ended, once
                await self._report_lost(sid, session_id, record)
                return {"sessionId": session_id, "state": "finished"}
            client.remote[session_id] = owner
            await self._relay(owner, "follow", session_id, sid)
            return {"sessionId": session_id, "state": record.get("state", "running")}
        self._follow(sid, session)
        return {"sessionId": session.id, "state": session.state}

    @_event
    async def on_leave(self, sid: str, data: Any) -> dict[str, Any]:
        client = self._client(sid)
        session_id = _session_id(data, client.current)
        task = client.following.pop(session_id, None)
        if task is not None:
            task.cancel()
        owner = client.remote.pop(session_id, None)
        if owner is not None:
            await self._relay(owner, "leave", session_id, sid)
        if client.current == session_id:
            client.current = None
        return {"sessionId": session_id}

    @_event
    async def on_input(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise field_error("input", "a string")
        text = text_field(data.get("input"), "input")
        if len(text.encode("utf-8")) > self.registry.settings.max_input_bytes:
            raise PayloadTooLarge(
                f"An input may be at most {self.registry.settings.max_input_bytes} bytes.",
                field="input",
            )
        session = self._target(sid, data)
        await session.send_input(text)
        return {"sessionId": session.id}

    @_event
    async def on_execute(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadRequest("`execute` takes an object {code, language}.")
        address = self._client(sid).address
        await self.registry.admit("execute", address)
        session = await self.registry.create(parse_execute(data), address)
        await self.sio.emit("session", {"sessionId": session.id}, to=sid)
        self._follow(sid, session)
        return {"sessionId": session.id}

    @_event
    async def on_resize(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadRequest("`resize` takes an object {rows, cols}.")
        rows, cols = valid_size(data.get("rows"), data.get("cols"))
        session = self._target(sid, data)
        await session.resize(rows, cols, wait=True)
        return {"sessionId": session.id}

    @_event
    async def on_interrupt(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._target(sid, data)
        await session.write(b"\x03")
        return {"sessionId": session.id}

    @_event
    async def on_eof(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._target(sid, data)
        await session.write(b"\x04")
        return {"sessionId": session.id}

    # -- plumbing ---------------------------------------------------------------------------

    def _client(self, sid: str) -> Client:
        return self.clients.setdefault(sid, Client())

    def _target(self, sid: str, data: Any) -> Session | RemoteSession:
        client = self._client(sid)
        session_id = _session_id(data, client.current)
        owner = client.remote.get(session_id)
        if owner is not None and self.cluster is not None:
            return RemoteSession(self.cluster, owner, session_id, sid)
        return self.registry.get(session_id)

    # -- other instances (only with redis_url) ----------------------------------------------

    @property
    def cluster(self) -> Cluster | None:
        return self.registry.cluster

    async def _remote_owner(self, session_id: str) -> tuple[str | None, dict[str, Any]]:
        """(owner instance if alive, directory record); SessionNotFound if none."""
        record = await self.registry.remote_record(session_id)
        assert self.cluster is not None  # remote_record found one, so there is a cluster
        owner = str(record.get("owner"))
        if record.get("lost") or not await self.cluster.alive(owner):
            return None, record
        return owner, record

    async def _relay(self, owner: str, op: str, session_id: str, sid: str) -> None:
        if self.cluster is not None:
            await self.cluster.send(owner, {"op": op, "sessionId": session_id, "sid": sid})

    async def _report_lost(self, sid: str, session_id: str, record: dict[str, Any]) -> None:
        assert self.cluster is not None
        error, result = await self.cluster.lost_ending(session_id, record)
        await self.sio.emit("error", error, to=sid)
        await self.sio.emit("execution_complete", result, to=sid)

    async def on_command(self, command: dict[str, Any]) -> None:
        """A client of another instance asks something of a session this one owns."""
        op, sid = command.get("op"), command.get("sid")
        if not isinstance(sid, str) or not sid:
            sid = None  # nobody to answer (an HTTP DELETE): never emit to "everyone"
        try:
            session = self.registry.get(command.get("sessionId"))
            if op == "cancel":
                session.cancel()
            elif op == "input":
                await session.send_input(str(command.get("input", "")))
            elif op == "write":
                await session.write(str(command.get("data", "")).encode("utf-8"))
            elif op == "resize":
                await session.resize(*valid_size(command.get("rows"), command.get("cols")))
            elif op == "follow" and sid is not None:
                self._follow(sid, session)
            elif op == "leave" and sid is not None:
                task = self._client(sid).following.pop(session.id, None)
                if task is not None:
                    task.cancel()
        except CodexError as exc:
            if sid is not None:
                await self.sio.emit(
                    "error", {**exc.to_json(), "sessionId": command.get("sessionId")}, to=sid
                )

    async def watch_owners(self) -> None:
        """Clients here following sessions elsewhere hear when an owner dies: once
        its lease expires, the session ends for them as an internal error."""
        while True:
            await asyncio.sleep(1.0)
            if self.cluster is None:
                return
            alive: dict[str, bool] = {}
            for sid, client in list(self.clients.items()):
                for session_id, owner in list(client.remote.items()):
                    if owner not in alive:
                        alive[owner] = await self.cluster.alive(owner)
                    if alive[owner]:
                        continue
                    client.remote.pop(session_id, None)
                    record = await self.cluster.lookup(session_id) or {"owner": owner}
                    if record.get("state") != "finished" or record.get("lost"):
                        await self._report_lost(sid, session_id, record)

    def _follow(self, sid: str, session: Session) -> None:
        client = self._client(sid)
        client.current = session.id
        old = client.following.pop(session.id, None)
        if old is not None:
            old.cancel()  # a second join starts over: a full replay, no duplicates after it
        task = asyncio.ensure_future(self._deliver(sid, session))
        client.following[session.id] = task
        task.add_done_callback(lambda t: _forget(client, session.id, t))

    async def _deliver(self, sid: str, session: Session) -> None:
        async def send(entries: list[Entry]) -> None:
            for kind, body in merge_output(entries, FRAME_CHARS):
                if kind == OUTPUT:
                    await self.sio.emit("output", {"output": body, "sessionId": session.id}, to=sid)
                else:
                    await self.sio.emit(kind, body, to=sid)

            await _drain_queue(self.sio, sid)

        try:
            await follow(session, send, include_echo=False)
        except asyncio.CancelledError:
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
