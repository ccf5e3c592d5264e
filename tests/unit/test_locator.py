"""SessionLocator, the handles it gives and the owner's CommandHandler, on the in-memory
Redis and the fake runtime: a session here is driven directly; one elsewhere through
typed commands, its log relayed back; a dead owner's session ends as lost."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from codex.cluster import directory as cluster_module
from codex.cluster import locator as locator_module
from codex.cluster.commands import Follow
from codex.cluster.directory import Cluster
from codex.cluster.locator import (
    LOST,
    CommandHandler,
    LocalHandle,
    RemoteHandle,
    SessionHandle,
    SessionLocator,
)
from codex.config import Settings
from codex.errors import SessionFinished, SessionNotFound
from codex.runtime.protocol import RESULT_END, RESULT_OSC, stream_token
from codex.sessions.eventlog import Entry
from codex.sessions.input import watcher as input_watch
from codex.sessions.registry import ExecuteRequest, SessionRegistry
from codex.wire import (
    COMPLETE,
    DISPLAY,
    ERROR,
    FINISHED,
    INTERNAL_ERROR,
    OUTPUT,
    RUNNING,
    STDERR,
)
from tests.unit.fakes import WAIT, FakeRedis, FakeRuntime, eventually, run
from tests.unit.test_displays import MARK, display_record, png


@pytest.fixture(autouse=True)
def redis(monkeypatch: pytest.MonkeyPatch) -> FakeRedis.Server:
    shared = FakeRedis.Server()
    fake = SimpleNamespace(from_url=lambda url, **options: FakeRedis(shared))
    monkeypatch.setattr(cluster_module, "aioredis", fake)
    monkeypatch.setattr(locator_module, "OWNER_CHECK", 0.05)  # a dead owner is heard of soon
    return shared


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    runtime = FakeRuntime()
    monkeypatch.setattr(input_watch, "ProcDetector", runtime.detector)
    return runtime


@dataclasses.dataclass
class Server:
    registry: SessionRegistry
    cluster: Cluster
    commands: CommandHandler
    locator: SessionLocator


async def server(name: str, runtime: FakeRuntime, **overrides: Any) -> Server:
    """One instance as CodexApp wires it: registry, cluster, command handler, locator."""
    registry = SessionRegistry(dataclasses.replace(Settings(), **overrides), runtime)
    cluster = Cluster("redis://fake:6379/0", name, 10.0)
    commands = CommandHandler(registry, cluster)
    await cluster.start(commands)
    registry.cluster = cluster
    return Server(registry, cluster, commands, SessionLocator(registry))


@dataclasses.dataclass
class Follower:
    """A transport's side of handle.follow: what it was sent, and how it ended."""

    entries: list[Entry] = dataclasses.field(default_factory=list)
    task: asyncio.Task[str] | None = None

    def start(self, handle: SessionHandle, *, echo: bool = False) -> Follower:
        async def send(batch: list[Entry]) -> None:
            self.entries.extend(batch)

        self.task = asyncio.ensure_future(handle.follow(send, include_echo=echo))
        return self

    def output(self) -> str:
        return "".join(e.text for e in self.entries if e.kind == OUTPUT)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.entries if e.kind != OUTPUT]

    def payloads(self, kind: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.entries if e.kind == kind]

    async def ending(self) -> str:
        assert self.task is not None
        return await asyncio.wait_for(self.task, WAIT)


@pytest.fixture
def two(fake: FakeRuntime) -> Callable[..., Any]:
    """`async with two() as (here, owner)`: two instances on one Redis, stopped after."""

    @contextlib.asynccontextmanager
    async def both(**owner_settings: Any) -> AsyncIterator[tuple[Server, Server]]:
        here = await server("here", fake)
        owner = await server("owner", fake, **owner_settings)
        try:
            yield here, owner
        finally:
            for s in (here, owner):
                s.commands.stop()
                await s.registry.shutdown()
                await s.cluster.stop()

    return both


# -- here -----------------------------------------------------------------------------------


def test_a_session_of_this_server_is_its_local_handle(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        registry = SessionRegistry(Settings(), fake)  # no cluster at all
        locator = SessionLocator(registry)
        session = await registry.create(ExecuteRequest("input()"))
        handle = await locator.find(session.id)
        assert isinstance(handle, LocalHandle) and handle.session is session
        assert handle.id == session.id and handle.state == session.state
        assert await handle.describe() == session.describe()
        ex = await fake.next_execution()
        await handle.send_input("Ada")
        assert await ex.typed_line() == b"Ada\n"
        follower = Follower().start(handle)
        ex.emit(b"bye\r\n")
        ex.exit(0)
        assert await follower.ending() == FINISHED
        assert "bye" in follower.output() and follower.kinds()[-1] == COMPLETE
        with pytest.raises(SessionFinished):
            await handle.write(b"x")
        with pytest.raises(SessionNotFound):
            await locator.find("nobody")

    run(scenario)


def test_a_session_no_server_has_is_not_found(two: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with two() as (here, _):
            with pytest.raises(SessionNotFound):
                await here.locator.find("nobody")
            # Its own directory entry without the session (expiring): not found either.
            await here.cluster.record("gone", {"state": RUNNING})
            with pytest.raises(SessionNotFound):
                await here.locator.find("gone")

    run(scenario)


# -- elsewhere ----------------------------------------------------------------------------


def test_a_session_elsewhere_is_driven_through_its_owner(
    two: Callable[..., Any], fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            ex = await fake.next_execution()
            handle = await here.locator.find(session.id)
            assert isinstance(handle, RemoteHandle) and handle.owner == "owner"
            assert handle.state == RUNNING
            # As the owner has it, and which server that is.
            assert await handle.describe() == {**session.describe(), "owner": "owner"}
            ex.emit(b"Who? ")
            follower = Follower().start(handle)
            await eventually(lambda: "Who? " in follower.output(), what="the relayed output")
            await handle.send_input("Ada")
            assert await ex.typed_line() == b"Ada\n"
            await handle.write(b"\xff\x03")  # not UTF-8: carried as it is
            await eventually(lambda: bytes(ex.typed) == b"\xff\x03", what="the bytes")
            await handle.resize(30, 100, wait=True)
            await eventually(lambda: (30, 100) in ex.resizes, what="the resize")
            assert len(owner.commands._relays) == 1
            ex.exit(0)
            assert await follower.ending() == FINISHED
            assert follower.kinds()[-1] == COMPLETE
            assert follower.payloads(COMPLETE)[0]["status"] == "ok"
            assert handle.state == FINISHED
            with pytest.raises(SessionFinished):  # known here: nothing is sent
                await handle.send_input("late")
            await eventually(lambda: not owner.commands._relays, what="the relay's end")

    run(scenario)


def test_the_echo_is_relayed_only_to_terminal_views(
    two: Callable[..., Any], fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            ex = await fake.next_execution()
            events = Follower().start(await here.locator.find(session.id), echo=False)
            terminal = Follower().start(await here.locator.find(session.id), echo=True)
            await eventually(lambda: len(session.presence.followers) == 2, what="two relays")
            await session.send_input("Ada")  # the fake terminal echoes it
            ex.emit(b"Hello Ada\r\n")
            ex.exit(0)
            await events.ending()
            await terminal.ending()
            assert events.output() == "Hello Ada\r\n"
            assert terminal.output() == "Ada\r\nHello Ada\r\n"

    run(scenario)


def test_a_failed_command_is_reported_on_the_follow_in_progress(
    two: Callable[..., Any], fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        async with two(max_session_input_bytes=4) as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            await fake.next_execution()
            handle = await here.locator.find(session.id)
            follower = Follower().start(handle)
            await eventually(lambda: owner.commands._relays, what="the relay")
            await handle.write(b"too much input")
            await eventually(lambda: follower.payloads(ERROR), what="the error")
            error = follower.payloads(ERROR)[0]
            assert error["code"] == "payload_too_large" and error["sessionId"] == session.id

    run(scenario)


def test_leaving_stops_the_owners_relay(two: Callable[..., Any], fake: FakeRuntime) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            await fake.next_execution()
            follower = Follower().start(await here.locator.find(session.id))
            await eventually(lambda: session.presence.followers, what="the owner's follower")
            assert follower.task is not None
            follower.task.cancel()
            await eventually(lambda: not owner.commands._relays, what="the relay to stop")
            assert not session.presence.followers

    run(scenario)


def test_a_relay_nobody_receives_stops(two: Callable[..., Any], fake: FakeRuntime) -> None:
    async def scenario() -> None:
        async with two() as (_, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            ex = await fake.next_execution()
            # Its follower's server died before it could say Leave.
            await owner.commands(Follow(session.id, "nobody-listens", echo=False))
            await eventually(lambda: session.presence.followers, what="the owner's follower")
            ex.emit(b"anyone?")
            await eventually(lambda: not owner.commands._relays, what="the relay to stop")
            assert not session.presence.followers

    run(scenario)


def test_following_a_session_its_owner_no_longer_has(two: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            await owner.cluster.record("expired", {"state": RUNNING})
            follower = Follower().start(await here.locator.find("expired"))
            assert await follower.ending() == FINISHED
            assert [p["code"] for p in follower.payloads(ERROR)] == ["session_not_found"]

    run(scenario)


def test_cancel_and_a_cancel_reason_reach_the_owner(
    two: Callable[..., Any], fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            await fake.next_execution()
            await (await here.locator.find(session.id)).cancel("Stopped by the teacher.")
            await asyncio.wait_for(session.wait(), WAIT)
            assert session.result is not None and session.result["status"] == "cancelled"
            errors = [e.payload for e in session.log.since(0) if e.kind == ERROR]
            assert errors and errors[0]["error"] == "Stopped by the teacher."

    run(scenario)


# -- a dead owner -------------------------------------------------------------------------


def test_a_session_of_a_dead_owner_is_lost_the_same_for_everyone(
    two: Callable[..., Any], redis: FakeRedis.Server
) -> None:
    async def scenario() -> None:
        async with two() as (here, _):
            await here.cluster.redis.set(
                "codex:session:s1", json.dumps({"owner": "dead", "state": RUNNING})
            )
            handle = await here.locator.find("s1")
            assert handle.state == FINISHED
            follower = Follower().start(handle)
            assert await follower.ending() == LOST
            assert follower.kinds() == [ERROR, COMPLETE]
            assert follower.payloads(COMPLETE)[0]["status"] == INTERNAL_ERROR
            again = Follower().start(await here.locator.find("s1"))
            assert await again.ending() == LOST
            assert again.payloads(COMPLETE) == follower.payloads(COMPLETE)
            record = await here.cluster.lookup("s1")
            assert record is not None and record["lost"] is True
            with pytest.raises(SessionFinished):
                await handle.write(b"x")

    run(scenario)


def test_an_owner_that_dies_while_followed_is_heard_of(
    two: Callable[..., Any], fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            await fake.next_execution()
            follower = Follower().start(await here.locator.find(session.id))
            await eventually(lambda: session.presence.followers, what="the owner's follower")
            await owner.cluster.redis.delete("codex:instance:owner")  # its lease ran out
            assert await follower.ending() == LOST
            assert follower.payloads(COMPLETE)[0]["status"] == INTERNAL_ERROR

    run(scenario)


def test_a_session_that_ended_before_its_owner_died_is_not_lost(
    two: Callable[..., Any],
) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            await owner.cluster.record("s1", {"state": RUNNING})
            handle = await here.locator.find("s1")
            # The owner no longer answers (its relay never starts), then its lease ends
            # after it recorded the verdict.
            owner.commands.stop()
            await owner.cluster.stop()
            await here.cluster.redis.set(
                "codex:session:s1",
                json.dumps({"owner": "owner", "state": FINISHED, "result": {"status": "ok"}}),
            )
            follower = Follower().start(handle)
            assert await follower.ending() == FINISHED
            assert follower.entries == []
            assert (await here.cluster.lookup("s1") or {}).get("lost") is None

    run(scenario)


def test_images_stderr_and_the_description_come_from_the_owner(
    two: Callable[..., Any], fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        async with two() as (here, owner):
            session = await owner.registry.create(ExecuteRequest("input()"))
            ex = await fake.next_execution()
            image = png(32, 24)
            follower = Follower().start(await here.locator.find(session.id))
            switch = RESULT_OSC + stream_token(ex.nonce).encode() + b";stderr:"
            ex.emit(switch + b"on" + RESULT_END + b"Traceback\r\n" + switch + b"off" + RESULT_END)
            ex.record(display_record(image)[len(MARK) : -1])
            ex.emit(b"after\r\n")
            await eventually(lambda: "after" in follower.output(), what="the relayed output")
            streams = [(e.text, e.stream) for e in follower.entries if e.kind == OUTPUT]
            assert ("Traceback\r\n", STDERR) in streams
            [shown] = follower.payloads(DISPLAY)
            assert shown["metadata"]["image/png"] == {"width": 32, "height": 24}
            handle = await here.locator.find(session.id)
            assert await handle.display(1) == ("image/png", image)  # byte-exact
            assert await handle.display(2) is None
            described = await handle.describe()
            assert described["displays"] == [
                {"index": 1, "mime": "image/png", "width": 32, "height": 24, "bytes": len(image)}
            ]
            ex.exit(0)
            assert await follower.ending() == FINISHED

    run(scenario)


def test_a_description_falls_back_to_the_directory_when_the_owner_cannot_say(
    two: Callable[..., Any],
) -> None:
    async def scenario() -> None:
        async with two() as (here, _):
            await here.cluster.record("expired", {"state": RUNNING, "owner": "owner"})
            handle = await here.locator.find("expired")
            assert await handle.describe() == {
                "sessionId": "expired",
                "state": RUNNING,
                "owner": "owner",
                "result": None,
            }
            assert await handle.display(1) is None

    run(scenario)
