"""Where a session runs, asked in one place: here, or on the server that owns it.

Transports ask the one :class:`SessionLocator` for a session and get a
:class:`SessionHandle`: a :class:`LocalHandle` over the session when this server runs
it, a :class:`RemoteHandle` otherwise, which sends typed commands
(codex.cluster.commands) to the owner and follows the session's log over a relay
channel. On the owner, :class:`CommandHandler` applies those commands to its
sessions. So no transport asks which of the two it holds, or whether there is a
cluster at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import logging
import uuid
from typing import Any, Protocol

from codex.cluster.commands import (
    DESCRIBE,
    FILE,
    IMAGE,
    Answer,
    Cancel,
    Command,
    End,
    Entries,
    Failed,
    Follow,
    Input,
    Leave,
    Query,
    Resize,
    Write,
)
from codex.cluster.directory import Cluster
from codex.errors import CodexError, SessionFinished, SessionNotFound
from codex.sessions.eventlog import Entry
from codex.sessions.follow import Send, follow
from codex.sessions.registry import SessionRegistry
from codex.sessions.session import Session
from codex.wire import COMPLETE, ERROR, FINISHED, RUNNING

log = logging.getLogger(__name__)

LOST = "lost"  # how a followed stream ends when the owner died (else FINISHED)
OWNER_CHECK = 1.0  # seconds of silence on a relay before the owner's lease is checked
QUERY_TIMEOUT = 5.0  # seconds an owner has to answer a Query


class SessionHandle(Protocol):
    """What a transport may do with a session, wherever it runs."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def creator(self) -> str | None:
        """With identity on, the subject the session belongs to (codex.identity)."""

    async def write(self, data: bytes) -> None:
        """Bytes as typed; SessionFinished once the program has finished."""

    async def send_input(self, text: str) -> None:
        """A line of input (a newline is added); SessionFinished as write."""

    async def resize(self, rows: int, cols: int, *, wait: bool = False) -> None: ...

    async def cancel(self, why: str | None = None) -> None: ...

    async def describe(self) -> dict[str, Any]:
        """GET /api/sessions/<id>."""

    async def display(self, index: int) -> tuple[str, bytes] | None:
        """(content type, bytes) of image ``index`` (from 1), if the session showed it."""

    async def file(self, name: str) -> bytes | None:
        """A file the program left (collected when it ended), if there is one."""

    async def follow(self, send: Send, *, include_echo: bool) -> str:
        """Deliver the session's entries to ``send`` (codex.sessions.follow) until it ends;
        FINISHED, or LOST if its owner died first."""


class LocalHandle:
    """A session this server runs."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.id = session.id

    @property
    def state(self) -> str:
        return self.session.state

    @property
    def creator(self) -> str | None:
        return self.session.creator

    async def write(self, data: bytes) -> None:
        await self.session.write(data)

    async def send_input(self, text: str) -> None:
        await self.session.send_input(text)

    async def resize(self, rows: int, cols: int, *, wait: bool = False) -> None:
        await self.session.resize(rows, cols, wait=wait)

    async def cancel(self, why: str | None = None) -> None:
        self.session.cancel(why)

    async def describe(self) -> dict[str, Any]:
        return self.session.describe()

    async def display(self, index: int) -> tuple[str, bytes] | None:
        return self.session.output.displays.image(index)

    async def file(self, name: str) -> bytes | None:
        return self.session.files.get(name)

    async def follow(self, send: Send, *, include_echo: bool) -> str:
        await follow(self.session, send, include_echo=include_echo)
        return FINISHED


class RemoteHandle:
    """A session another server owns, as its directory record described it.

    Commands go to the owner and are not awaited there. A failure comes back on the
    relay channel of the follow in progress, if any, as an error entry; with none,
    nobody hears of it (an HTTP DELETE, which has no one to tell)."""

    def __init__(
        self, cluster: Cluster, session_id: str, record: dict[str, Any], *, lost: bool
    ) -> None:
        self.cluster = cluster
        self.id = session_id
        self.record = record
        self.owner = str(record.get("owner"))
        self.lost = lost  # the owner's lease ran out (or the directory says so)
        self._ended = lost  # nothing more will come from the owner
        self._reply = ""  # the relay channel of the follow in progress

    @property
    def state(self) -> str:
        return FINISHED if self._ended else str(self.record.get("state", RUNNING))

    @property
    def creator(self) -> str | None:
        creator = self.record.get("creator")
        return creator if isinstance(creator, str) else None

    async def write(self, data: bytes) -> None:
        self._check_running()
        await self._send(Write(self.id, data, self._reply))

    async def send_input(self, text: str) -> None:
        self._check_running()
        await self._send(Input(self.id, text, self._reply))

    async def resize(self, rows: int, cols: int, *, wait: bool = False) -> None:
        # `wait` is the owner's business: it applies the size as soon as it can.
        await self._send(Resize(self.id, rows, cols, self._reply))

    async def cancel(self, why: str | None = None) -> None:
        await self._send(Cancel(self.id, why))

    async def describe(self) -> dict[str, Any]:
        """The owner's description; what the shared directory knows of the session
        when the owner cannot say (it died, or it no longer has the session)."""
        answer = await self._query(Query(self.id, DESCRIBE, ""))
        if answer:
            return {**answer, "owner": self.owner}
        return {
            "sessionId": self.id,
            "state": self.record.get("state", RUNNING),
            "owner": self.record.get("owner"),
            "result": self.record.get("result"),
        }

    async def display(self, index: int) -> tuple[str, bytes] | None:
        # Images stay with the owner, which sends the one asked for.
        answer = await self._query(Query(self.id, IMAGE, "", index))
        with contextlib.suppress(KeyError, TypeError, ValueError, binascii.Error):
            return str(answer["mime"]), base64.b64decode(answer["data"], validate=True)
        return None

    async def file(self, name: str) -> bytes | None:
        answer = await self._query(Query(self.id, FILE, "", name=name))
        with contextlib.suppress(KeyError, TypeError, ValueError, binascii.Error):
            return base64.b64decode(answer["data"], validate=True)
        return None

    async def _query(self, query: Query) -> dict[str, Any]:
        """The owner's answer, or {} when there is none within QUERY_TIMEOUT."""
        if self.lost:
            return {}
        channel = uuid.uuid4().hex
        async with self.cluster.subscription(channel) as subscription:
            await self._send(dataclasses.replace(query, reply=channel))
            message = await subscription.next(timeout=QUERY_TIMEOUT)
        return message.body if isinstance(message, Answer) else {}

    async def follow(self, send: Send, *, include_echo: bool) -> str:
        """Ask the owner to publish the log on a channel subscribed first, and pass
        what comes on to ``send``; after a second of silence, check the owner is alive."""
        if self.lost:
            await self._report_lost(send, self.record)
            return LOST
        channel = uuid.uuid4().hex
        async with self.cluster.subscription(channel) as subscription:
            self._reply = channel
            try:
                await self._send(Follow(self.id, channel, include_echo))
                while True:
                    message = await subscription.next(timeout=OWNER_CHECK)
                    if isinstance(message, End):
                        self._ended = True
                        return FINISHED
                    if isinstance(message, Entries):
                        await send(list(message.entries))
                    elif isinstance(message, Failed):
                        await send([Entry(-1, ERROR, payload=message.error)])
                    elif not await self.cluster.alive(self.owner):
                        return await self._owner_died(send)
            finally:
                if self._reply == channel:
                    self._reply = ""
                with contextlib.suppress(Exception):
                    await self._send(Leave(channel))

    async def _owner_died(self, send: Send) -> str:
        self.lost = self._ended = True
        record = await self.cluster.lookup(self.id) or {"owner": self.owner}
        if record.get("state") == FINISHED and not record.get("lost"):
            return FINISHED  # it ended before its owner did: nothing was lost
        await self._report_lost(send, record)
        return LOST

    async def _report_lost(self, send: Send, record: dict[str, Any]) -> None:
        error, result = await self.cluster.lost_ending(self.id, record)
        await send([Entry(-1, ERROR, payload=error), Entry(-1, COMPLETE, payload=result)])

    def _check_running(self) -> None:
        if self._ended:
            raise SessionFinished("The program has already finished.")

    async def _send(self, command: Command) -> None:
        await self.cluster.send(self.owner, command)


class SessionLocator:
    """The one place that knows whether a session is here or elsewhere."""

    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry

    async def find(self, session_id: str) -> SessionHandle:
        """The session's handle; SessionNotFound if no server has it."""
        try:
            return LocalHandle(self.registry.get(session_id))
        except SessionNotFound:
            record = await self.registry.remote_record(session_id)
        cluster = self.registry.cluster
        assert cluster is not None  # remote_record found a record, so there is one
        owner = str(record.get("owner"))
        lost = bool(record.get("lost")) or not await cluster.alive(owner)
        return RemoteHandle(cluster, session_id, record, lost=lost)

    def handle(self, session: Session) -> SessionHandle:
        """The handle of a session just created here."""
        return LocalHandle(session)


class CommandHandler:
    """The owner's side: commands from other servers, applied to this one's sessions."""

    def __init__(self, registry: SessionRegistry, cluster: Cluster) -> None:
        self.registry = registry
        self.cluster = cluster
        self._relays: dict[str, asyncio.Task[None]] = {}  # relay channel -> its follower

    async def __call__(self, command: Command) -> None:
        try:
            await self._apply(command)
        except CodexError as exc:
            reply = getattr(command, "reply", "")
            log.info("%s from another server: %s %s", command.op, exc.code, exc.message)
            if reply:
                error = {**exc.to_json(), "sessionId": getattr(command, "session_id", None)}
                await self.cluster.publish(reply, Failed(error))

    async def _apply(self, command: Command) -> None:
        if isinstance(command, Leave):
            task = self._relays.pop(command.channel, None)
            if task is not None:
                task.cancel()
        elif isinstance(command, Follow):
            await self._follow(command)
        elif isinstance(command, Query):
            await self.cluster.publish(command.reply, Answer(await self._answer(command)))
        else:
            session = self.registry.get(command.session_id)
            if isinstance(command, Cancel):
                session.cancel(command.reason)
            elif isinstance(command, Input):
                await session.send_input(command.text)
            elif isinstance(command, Write):
                await session.write(command.data)
            else:
                await session.resize(command.rows, command.cols)

    async def _answer(self, query: Query) -> dict[str, Any]:
        handle = LocalHandle(self.registry.get(query.session_id))
        if query.what == DESCRIBE:
            return await handle.describe()
        if query.what == FILE:
            data = await handle.file(query.name)
            return {} if data is None else {"data": base64.b64encode(data).decode("ascii")}
        shown = await handle.display(query.index) if query.what == IMAGE else None
        if shown is None:
            return {}
        return {"mime": shown[0], "data": base64.b64encode(shown[1]).decode("ascii")}

    async def _follow(self, command: Follow) -> None:
        channel = command.channel
        try:
            session = self.registry.get(command.session_id)
        except CodexError as exc:
            error = {**exc.to_json(), "sessionId": command.session_id}
            await self.cluster.publish(channel, Failed(error))
            await self.cluster.publish(channel, End())
            return
        old = self._relays.pop(channel, None)
        if old is not None:
            old.cancel()
        task = asyncio.ensure_future(self._relay(channel, session, command.echo))
        self._relays[channel] = task
        task.add_done_callback(lambda t: self._forget(channel, t))

    async def _relay(self, channel: str, session: Session, echo: bool) -> None:
        # Published, not awaited by the reader: a follower elsewhere never holds the
        # program back (no flow control across servers). One nobody receives any
        # more (its server died without a Leave) stops the relay.
        async def send(entries: list[Entry]) -> None:
            if not await self.cluster.publish(channel, Entries(tuple(entries))):
                raise _NobodyListens

        with contextlib.suppress(asyncio.CancelledError, _NobodyListens):
            await follow(session, send, include_echo=echo)
            await self.cluster.publish(channel, End())

    def _forget(self, channel: str, task: asyncio.Task[None]) -> None:
        if self._relays.get(channel) is task:
            del self._relays[channel]

    def stop(self) -> None:
        for task in self._relays.values():
            task.cancel()


class _NobodyListens(Exception):
    pass
