"""The fair queue beyond max_sessions, through the registry on a fake runtime: first
come first served across addresses, places told as they change, a cancel while queued
costs no container, the bound gives 503, shutdown empties it. No Docker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from codex.errors import NoCapacity, RateLimited
from codex.sessions.eventlog import COMPLETE
from codex.sessions.follow import follow
from codex.sessions.input import watcher as input_watch
from codex.sessions.registry import ExecuteRequest
from codex.sessions.session import Session
from codex.wire import CANCELLED, QUEUE_POSITION, QUEUED
from tests.unit.fakes import WAIT, FakeRuntime, eventually, run, settle
from tests.unit.test_session import CODE, finished, registry


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    runtime = FakeRuntime()
    monkeypatch.setattr(input_watch, "ProcDetector", runtime.detector)
    return runtime


def places(session: Session) -> list[int]:
    return [e.payload["position"] for e in session.log.since(0) if e.kind == QUEUE_POSITION]


def test_beyond_the_cap_executions_wait_in_line_and_start_in_arrival_order(
    fake: FakeRuntime,
) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_sessions=1, queue_max=3)
        a = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        b, c, d = [await reg.create(ExecuteRequest(CODE), client=f"10.0.{i}.1") for i in (2, 3, 4)]
        assert [s.state for s in (b, c, d)] == [QUEUED] * 3
        assert [places(s) for s in (b, c, d)] == [[1], [2], [3]]
        assert d.describe()["state"] == QUEUED and d.describe()["queuePosition"] == 3
        assert reg.running == 1  # queued ones hold no slot
        with pytest.raises(NoCapacity) as full:
            await reg.create(ExecuteRequest(CODE), client="10.0.9.1")
        assert full.value.retry_after
        (await fake.next_execution()).exit(0)
        await finished(a)
        await eventually(lambda: len(fake.specs) == 2, what="b started")
        assert b.state != QUEUED and b.describe()["queuePosition"] is None
        assert places(c) == [2, 1] and places(d) == [3, 2]
        c.cancel("changed my mind")  # while queued: done at once, no container
        result = await finished(c)
        assert result["status"] == CANCELLED
        assert places(d) == [3, 2, 1]
        (await fake.next_execution()).exit(0)
        await finished(b)
        await eventually(lambda: len(fake.specs) == 3, what="d started")
        assert [spec.session_id for spec in fake.specs] == [a.id, b.id, d.id]
        (await fake.next_execution()).exit(0)
        await finished(d)

    run(scenario)


def test_the_per_address_cap_counts_what_an_address_has_queued(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_sessions=1, max_sessions_per_ip=2, queue_max=10)
        a = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        b = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        assert b.state == QUEUED
        with pytest.raises(RateLimited):  # one address cannot fill the line
            await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        for s in (b, a):
            s.cancel()
            await finished(s)
        assert len(fake.specs) == 1

    run(scenario)


def test_a_refusal_of_the_runtime_creates_no_session_and_counts_nothing(
    fake: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def admit(client: str) -> None:
        if client.startswith("203.0.113."):  # a paced network whose queue is full
            raise RateLimited("Too many programs from your network.", retry_after=3)

    monkeypatch.setattr(fake, "admit", admit, raising=False)

    async def scenario() -> None:
        reg = registry(fake)
        with pytest.raises(RateLimited) as refused:
            await reg.create(ExecuteRequest(CODE), client="203.0.113.9")
        assert refused.value.retry_after == 3
        assert reg.running == 0 and reg.limiter.rejections == 1
        ok = await reg.create(ExecuteRequest(CODE), client="198.51.100.9")
        (await fake.next_execution()).exit(0)
        await finished(ok)
        assert [spec.client for spec in fake.specs] == ["198.51.100.9"]

    run(scenario)


def test_a_follower_gets_only_the_current_place_and_then_the_run(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_sessions=1, queue_max=5)
        a = await reg.create(ExecuteRequest(CODE))
        b = await reg.create(ExecuteRequest(CODE))
        c = await reg.create(ExecuteRequest(CODE))
        b.cancel()  # c moves up before anyone follows it
        await finished(b)
        seen: list[tuple[str, Any]] = []

        async def send(entries: list[Any]) -> None:
            seen.extend((e.kind, e.payload.get("position")) for e in entries)

        follower = asyncio.ensure_future(follow(c, send, include_echo=False))
        await settle()
        assert seen == [(QUEUE_POSITION, 1)]  # the replay: its place now, not its history
        (await fake.next_execution()).exit(0)
        await finished(a)
        (await fake.next_execution()).exit(0)
        await finished(c)
        await asyncio.wait_for(follower, WAIT)
        assert seen[-1][0] == COMPLETE and seen.count((QUEUE_POSITION, 1)) == 1

    run(scenario)


def test_a_drain_cancels_the_queue_at_once_and_starts_none_of_it(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_sessions=1, queue_max=5)
        a = await reg.create(ExecuteRequest(CODE))
        queued = [await reg.create(ExecuteRequest(CODE)) for _ in range(3)]
        drain = asyncio.ensure_future(reg.drain(grace=5))
        for s in queued:
            assert (await finished(s))["status"] == CANCELLED
        (await fake.next_execution()).exit(0)
        await finished(a)
        await asyncio.wait_for(drain, WAIT)
        assert len(fake.specs) == 1

    run(scenario)


def test_running_and_each_address_count_follow_sessions_in_and_out(fake: FakeRuntime) -> None:
    """Counted as sessions come and go, not by walking every session kept: the counts
    always equal what a walk would find, finished sessions kept or not."""

    def walked(reg: Any, client: str | None = None) -> int:
        return sum(
            1
            for s in reg._sessions.values()
            if not s.finished and (client is None or s.client == client)
        ) - (len(reg.waitlist) if client is None else 0)

    async def scenario() -> None:
        reg = registry(fake, max_sessions=2, max_sessions_per_ip=2, queue_max=10)
        for _ in range(30):  # churn: created and cancelled, each kept for replay
            s = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
            assert reg.running == walked(reg) and reg.running >= 1
            s.cancel()
            await finished(s)
            assert reg.running == walked(reg)
        broken = await reg.create(ExecuteRequest("def ("), client="10.0.0.1")
        assert broken.finished and reg.running == 0 == walked(reg)
        a = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        b = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        with pytest.raises(RateLimited):  # the address's two are live: the cap holds
            await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        c = await reg.create(ExecuteRequest(CODE), client="10.0.1.1")
        assert c.state == QUEUED and reg.running == 2 == walked(reg)
        assert reg._live_per_client["10.0.0.1"] == 2 == walked(reg, "10.0.0.1")
        for s in (a, b, c):
            s.cancel()
            await finished(s)
        assert reg.running == 0 and not reg._live_per_client
        last = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        assert reg.running == 1
        last.cancel()
        await finished(last)

    run(scenario)
