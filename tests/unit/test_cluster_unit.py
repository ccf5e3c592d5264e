"""Cluster on an in-memory Redis stand-in: leases, the session directory, commands
between instances, relays, and how the registry uses the directory. No Redis server.
(tests/e2e/test_cluster.py runs real instances on a real Redis.)"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest

# -- codex, in one place (modules are about to move into packages) -----------------------
from codex.cluster import directory as cluster_module
from codex.cluster.commands import Cancel, Command, End, Entries, Leave
from codex.cluster.directory import SESSION_RECORD_TTL, Cluster
from codex.config import Settings
from codex.errors import SessionNotFound, Unavailable
from codex.sessions.input import watcher as input_watch
from codex.sessions.registry import ExecuteRequest, SessionRegistry
from tests.unit.fakes import WAIT, FakeRedis, FakeRuntime, eventually, run, settle


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeRedis.Server:
    """One Redis shared by every Cluster the test makes."""
    shared = FakeRedis.Server()
    urls: list[str] = []

    def from_url(url: str, **options: Any) -> FakeRedis:
        urls.append(url)
        assert options.get("decode_responses") is True  # Cluster reads strings
        return FakeRedis(shared)

    monkeypatch.setattr(cluster_module, "aioredis", SimpleNamespace(from_url=from_url))
    return shared


def instance(name: str, lease: float = 10.0) -> Cluster:
    return Cluster("redis://fake:6379/0", name, lease)


class Inbox:
    """A command handler that records what it gets."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.got: list[Command] = []
        self.fail_on = fail_on

    async def __call__(self, command: Command) -> None:
        if command.op == self.fail_on:
            raise RuntimeError("the handler failed")
        self.got.append(command)


def fake_of(cluster: Cluster) -> FakeRedis:
    assert isinstance(cluster.redis, FakeRedis)
    return cluster.redis


def sets_of(server: FakeRedis.Server, key: str) -> int:
    return sum(1 for command, k in server.calls if command == "set" and k == key)


# -- leases ---------------------------------------------------------------------------------


def test_an_instance_holds_a_lease_while_it_runs(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        await a.start(Inbox())
        assert await a.alive("a") and not await a.alive("b")
        await b.start(Inbox())
        assert await a.live_instances() == {"a", "b"}
        lease_ttl = fake_of(a).ttl_of("codex:instance:a")
        assert lease_ttl is not None and 9.0 < lease_ttl <= 10.0
        await b.stop()
        assert not await a.alive("b")  # gone at once, not after its lease
        assert await a.live_instances() == {"a"}
        assert fake_of(b).closed and not server.subscribers.get("codex:commands:b")
        await a.stop()

    run(scenario)


def test_the_lease_is_renewed_and_outlives_a_failed_renewal(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a = instance("a", lease=0.06)  # renewed every 20 ms
        await a.start(Inbox())
        server.fail["set"] = ConnectionError("Redis went away for a moment")
        await asyncio.sleep(0.15)  # two and a half leases
        assert await a.alive("a")
        assert sets_of(server, "codex:instance:a") >= 5
        await a.stop()

    run(scenario)


def test_a_lease_not_renewed_expires(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a, b = instance("a", lease=0.05), instance("b")
        await a.start(Inbox())
        await b.start(Inbox())
        for task in a._tasks:  # the instance hangs: nothing renews its lease
            task.cancel()
        await asyncio.sleep(0.08)
        assert not await b.alive("a") and await b.live_instances() == {"b"}
        await a.stop()
        await b.stop()

    run(scenario)


# -- the session directory ------------------------------------------------------------------


def test_the_directory_records_owner_and_state_and_forgets(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        await a.record("s1", {"state": "running"})
        assert await b.lookup("s1") == {"owner": "a", "state": "running"}
        ttl = fake_of(a).ttl_of("codex:session:s1")
        assert ttl is not None and SESSION_RECORD_TTL - 5 < ttl <= SESSION_RECORD_TTL
        await a.record("s1", {"state": "finished", "result": {"status": "ok"}})
        assert (await b.lookup("s1") or {})["result"] == {"status": "ok"}
        await a.forget("s1")
        assert await b.lookup("s1") is None
        assert await b.lookup("never") is None

    run(scenario)


def test_a_directory_entry_that_is_not_an_object_is_no_entry(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a = instance("a")
        await a.redis.set("codex:session:odd", json.dumps(["not", "a", "record"]))
        assert await a.lookup("odd") is None

    run(scenario)


def test_a_lost_session_is_marked_once_the_same_for_everyone(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        record = {"owner": "dead", "state": "running"}
        await a.redis.set("codex:session:s1", json.dumps(record))
        error, result = await a.lost_ending("s1", record)
        assert error == {
            "error": "The server running this program stopped; the program is lost.",
            "code": "internal_error",
            "sessionId": "s1",
        }
        assert result["status"] == "internal_error" and result["sessionId"] == "s1"
        stored = await b.lookup("s1")
        assert stored is not None and stored["lost"] is True
        assert stored["state"] == "finished" and stored["owner"] == "dead"
        writes = sets_of(server, "codex:session:s1")
        again = await b.lost_ending("s1", stored)  # another client, another instance
        assert again == (error, result)
        assert sets_of(server, "codex:session:s1") == writes  # not marked twice

    run(scenario)


# -- commands between instances -------------------------------------------------------------


def test_a_command_reaches_the_owner_and_no_one_else(server: FakeRedis.Server) -> None:
    async def scenario() -> None:
        a, b, c = instance("a"), instance("b"), instance("c")
        inbox_b, inbox_c = Inbox(), Inbox()
        await a.start(Inbox())
        await b.start(inbox_b)
        await c.start(inbox_c)
        await a.send("b", Cancel("s1"))
        await eventually(lambda: inbox_b.got, timeout=WAIT, what="the command")
        assert inbox_b.got == [Cancel("s1")]
        await settle()
        assert inbox_c.got == []
        for x in (a, b, c):
            await x.stop()

    run(scenario)


def test_bad_commands_and_failing_handlers_do_not_stop_the_listener(
    server: FakeRedis.Server,
) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        inbox = Inbox(fail_on="cancel")
        await b.start(inbox)
        await a.redis.publish("codex:commands:b", "not json")
        await a.redis.publish("codex:commands:b", json.dumps(["a", "list"]))
        await a.redis.publish("codex:commands:b", json.dumps({"op": "boom"}))
        await a.send("b", Cancel("s1"))  # the handler raises
        await a.send("b", Leave("x"))
        await eventually(lambda: inbox.got, timeout=WAIT, what="the good command")
        assert inbox.got == [Leave("x")]
        await b.stop()

    run(scenario)


def test_a_relay_channel_is_subscribed_before_the_owner_publishes(
    server: FakeRedis.Server,
) -> None:
    async def scenario() -> None:
        a, owner = instance("a"), instance("owner")
        async with a.subscription("term-1") as subscription:
            await owner.redis.publish("codex:relay:term-1", "not a message")  # skipped
            assert await owner.publish("term-1", End()) == 1
            assert await subscription.next(timeout=0.5) == End()
            assert await subscription.next(timeout=0.01) is None
        assert not server.subscribers.get("codex:relay:term-1")
        assert await owner.publish("term-1", Entries(())) == 0  # nobody listens

    run(scenario)


# -- the registry's use of the directory ----------------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    runtime = FakeRuntime()
    monkeypatch.setattr(input_watch, "ProcDetector", runtime.detector)
    return runtime


def clustered(runtime: FakeRuntime, cluster: Cluster, **overrides: Any) -> SessionRegistry:
    registry = SessionRegistry(dataclasses.replace(Settings(), **overrides), runtime)
    registry.cluster = cluster
    return registry


def test_the_registry_keeps_the_directory_current(
    server: FakeRedis.Server, fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        reg = clustered(fake, a, session_ttl=0.05)
        s = await reg.create(ExecuteRequest("print(1)"))
        assert await b.lookup(s.id) == {"owner": "a", "state": "running"}
        (await fake.next_execution()).exit(0)
        await asyncio.wait_for(s.wait(), WAIT)
        await eventually(lambda: s.id not in reg._sessions, what="expiry")
        await settle()
        assert await b.lookup(s.id) is None  # forgotten with the session
        # While it was finished it said how it ended.
        finished = [k for c, k in server.calls if c == "set" and k == f"codex:session:{s.id}"]
        assert len(finished) == 2

    run(scenario)


def test_the_directory_holds_the_verdict_of_a_finished_session(
    server: FakeRedis.Server, fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        reg = clustered(fake, a)
        s = await reg.create(ExecuteRequest("print(1)"))
        (await fake.next_execution()).exit(3)
        await asyncio.wait_for(s.wait(), WAIT)
        await settle()  # the registry writes it from a task of its own
        record = await b.lookup(s.id)
        assert record is not None and record["state"] == "finished"
        assert record["result"]["status"] == "runtime_error"
        assert record["result"]["exitCode"] == 3

    run(scenario)


def test_a_directory_failure_refuses_the_session_before_it_counts(
    server: FakeRedis.Server, fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        reg = clustered(fake, instance("a"))
        server.fail["set"] = ConnectionError("Redis is away")
        with pytest.raises(Unavailable, match="Redis is away"):
            await reg.create(ExecuteRequest("print(1)"))
        assert reg.running == 0 and fake.specs == []

    run(scenario)


def test_a_remote_record_is_another_instances_session(
    server: FakeRedis.Server, fake: FakeRuntime
) -> None:
    async def scenario() -> None:
        a, b = instance("a"), instance("b")
        reg_a = clustered(fake, a)
        await b.record("theirs", {"state": "running"})
        await a.record("mine", {"state": "running"})
        assert (await reg_a.remote_record("theirs"))["owner"] == "b"
        with pytest.raises(SessionNotFound):
            await reg_a.remote_record("mine")  # its own: it would know it
        with pytest.raises(SessionNotFound):
            await reg_a.remote_record("nobody's")
        with pytest.raises(SessionNotFound):
            await reg_a.remote_record(42)

    run(scenario)
