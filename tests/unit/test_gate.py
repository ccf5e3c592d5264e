"""The engine gate and the pool's share rule, with fake operations: no Docker, fast."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from codex.runtime.docker.gate import EngineGate
from codex.runtime.docker.pool import ContainerPool


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 5))


class Engine:
    """Fake engine operations that finish when the test says so."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running: dict[str, asyncio.Future[str]] = {}

    def op(self, name: str) -> Callable[[], Awaitable[str]]:
        def start() -> asyncio.Future[str]:
            self.started.append(name)
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self.running[name] = fut
            return fut

        return start

    def finish(self, name: str) -> None:
        self.running.pop(name).set_result(name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_quiet_case_runs_at_once() -> None:
    async def scenario() -> None:
        gate = EngineGate(2)
        engine = Engine()
        task = asyncio.ensure_future(gate.run("a", engine.op("a1")))
        await settle()
        assert engine.started == ["a1"] and gate.busy == 1 and gate.waiting == 0
        engine.finish("a1")
        assert await task == "a1"
        assert gate.busy == 0

    run(scenario)


def test_concurrency_is_bounded_and_slots_are_reused() -> None:
    async def scenario() -> None:
        gate = EngineGate(4)  # one lane holds at most half: 2
        engine = Engine()
        tasks = [asyncio.ensure_future(gate.run("a", engine.op(f"a{i}"))) for i in range(5)]
        await settle()
        assert engine.started == ["a0", "a1"] and gate.waiting == 3
        engine.finish("a0")
        await settle()
        assert engine.started == ["a0", "a1", "a2"]  # first in, first out within a lane
        for name in ("a1", "a2", "a3", "a4"):
            await settle()
            engine.finish(name)
        assert [await t for t in tasks] == [f"a{i}" for i in range(5)]
        assert gate.busy == 0 and gate.waiting == 0

    run(scenario)


def test_lanes_are_served_in_turn_and_a_newcomer_goes_next() -> None:
    async def scenario() -> None:
        gate = EngineGate(1)
        engine = Engine()
        tasks = [asyncio.ensure_future(gate.run("attacker", engine.op("x0")))]
        await settle()
        # A burst from one address, then one operation from each of two others.
        tasks += [
            asyncio.ensure_future(gate.run("attacker", engine.op(f"x{i}"))) for i in (1, 2, 3)
        ]
        await settle()
        tasks.append(asyncio.ensure_future(gate.run("victim", engine.op("v0"))))
        tasks.append(asyncio.ensure_future(gate.run("other", engine.op("o0"))))
        await settle()
        order = []
        while len(order) < 6:
            (name,) = engine.running
            order.append(name)
            engine.finish(name)
            await settle()
        # The victim queued behind three of the attacker's, yet goes at the next turn.
        assert order == ["x0", "v0", "o0", "x1", "x2", "x3"]
        await asyncio.gather(*tasks)

    run(scenario)


def test_round_robin_between_busy_lanes() -> None:
    async def scenario() -> None:
        gate = EngineGate(1)
        engine = Engine()
        first = asyncio.ensure_future(gate.run("pool", engine.op("p0")))
        await settle()
        tasks = [first]
        for i in range(1, 4):
            tasks.append(asyncio.ensure_future(gate.run("a", engine.op(f"a{i}"))))
            tasks.append(asyncio.ensure_future(gate.run("b", engine.op(f"b{i}"))))
            tasks.append(asyncio.ensure_future(gate.run("pool", engine.op(f"p{i}"))))
        await settle()
        order = []
        while len(order) < 10:
            (name,) = engine.running
            order.append(name)
            engine.finish(name)
            await settle()
        assert order == ["p0", "a1", "b1", "p1", "a2", "b2", "p2", "a3", "b3", "p3"]
        await asyncio.gather(*tasks)

    run(scenario)


def test_cancelled_while_waiting_starts_nothing() -> None:
    async def scenario() -> None:
        gate = EngineGate(1)
        engine = Engine()
        first = asyncio.ensure_future(gate.run("a", engine.op("a0")))
        await settle()
        queued = [asyncio.ensure_future(gate.run("b", engine.op(f"b{i}"))) for i in range(3)]
        await settle()
        assert gate.waiting == 3
        for task in queued:
            task.cancel()
        await settle()
        assert gate.waiting == 0
        engine.finish("a0")
        await first
        await settle()
        assert engine.started == ["a0"]  # the cancelled ones never ran
        assert gate.busy == 0
        for task in queued:
            with pytest.raises(asyncio.CancelledError):
                await task
        # The gate still works.
        again = asyncio.ensure_future(gate.run("b", engine.op("b9")))
        await settle()
        engine.finish("b9")
        assert await again == "b9"

    run(scenario)


def test_cancelled_right_after_its_grant_gives_the_slot_back() -> None:
    async def scenario() -> None:
        gate = EngineGate(1)
        engine = Engine()
        first = asyncio.ensure_future(gate.run("a", engine.op("a0")))
        await settle()
        second = asyncio.ensure_future(gate.run("b", engine.op("b0")))
        third = asyncio.ensure_future(gate.run("c", engine.op("c0")))
        await settle()
        engine.finish("a0")  # grants b's turn; b is cancelled before it resumes
        second.cancel()
        await first
        await settle()
        assert engine.started == ["a0", "c0"]
        engine.finish("c0")
        assert await third == "c0"
        assert gate.busy == 0

    run(scenario)


def test_cancelled_while_running_holds_the_slot_and_undoes_the_result() -> None:
    async def scenario() -> None:
        gate = EngineGate(1)
        engine = Engine()
        undone: list[str] = []

        async def undo(made: str) -> None:
            undone.append(made)

        task = asyncio.ensure_future(gate.run("a", engine.op("a0"), orphan=undo))
        behind = asyncio.ensure_future(gate.run("b", engine.op("b0")))
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        # The operation cannot be interrupted: it keeps its slot until it ends.
        assert gate.busy == 1 and engine.started == ["a0"]
        engine.finish("a0")
        await settle()
        assert undone == ["a0"]
        assert engine.started == ["a0", "b0"]
        engine.finish("b0")
        assert await behind == "b0"

    run(scenario)


def test_a_failed_operation_releases_its_slot() -> None:
    async def scenario() -> None:
        gate = EngineGate(1)

        async def boom() -> None:
            raise OSError("engine said no")

        with pytest.raises(OSError):
            await gate.run("a", boom)
        assert gate.busy == 0

        def broken() -> Awaitable[None]:
            raise RuntimeError("could not even start")

        with pytest.raises(RuntimeError):
            await gate.run("a", broken)
        assert gate.busy == 0

    run(scenario)


# -- the pool's share rule --------------------------------------------------------------


class Warm:
    def alive(self) -> bool:
        return True


def pool_with(ready: int, size: int = 4, window: float = 10.0) -> ContainerPool:
    pool = ContainerPool(None, size, window)  # type: ignore[arg-type]
    for _ in range(ready):
        pool._ready.append(Warm())  # type: ignore[arg-type]
    return pool


def test_a_learner_alone_may_take_the_whole_pool() -> None:
    pool = pool_with(4)
    assert all(pool.take("10.0.0.1") is not None for _ in range(4))
    assert pool.refused == 0


def test_a_recent_taker_goes_cold_while_others_share_a_low_pool() -> None:
    pool = pool_with(4)  # an address's share: 2 takes per window
    assert pool.take("attacker") is not None
    assert pool.take("victim") is not None  # new to the pool: served
    assert pool.take("attacker") is not None  # its second: within its share
    assert pool.take("attacker") is None  # beyond it, 1 of 4 ready, others here: cold
    assert pool.refused == 1
    assert pool.take("newcomer") is not None
    assert pool.ready == 0


def test_a_recent_taker_may_take_from_a_pool_more_than_half_full() -> None:
    pool = pool_with(4)
    assert pool.take("a") is not None
    assert pool.take("a") is not None
    assert pool.take("b") is not None
    pool._ready.extend([Warm(), Warm(), Warm()])  # type: ignore[list-item]
    assert pool.ready == 4
    assert pool.take("a") is not None  # 4 ready > half: no one is short
    assert pool.take("a") is not None  # 3 ready: still more than half
    assert pool.take("a") is None  # 2 ready: it has had its share


def test_a_taker_waits_for_a_refill_in_flight() -> None:
    async def scenario() -> None:
        pool = pool_with(0)
        pool._starting = 1  # one refill on its way
        waiting = asyncio.ensure_future(pool.acquire("a"))
        await settle()
        cold = await pool.acquire("b")  # no second refill in flight: cold at once
        assert cold is None
        await settle()
        assert not waiting.done()
        warm = Warm()
        pool._deliver(warm)  # type: ignore[arg-type]
        assert await waiting is warm and pool.ready == 0

    run(scenario)


def test_a_cancelled_waiter_hands_its_sandbox_on() -> None:
    async def scenario() -> None:
        pool = pool_with(0)
        pool._starting = 2
        first = asyncio.ensure_future(pool.acquire("a"))
        second = asyncio.ensure_future(pool.acquire("b"))
        await settle()
        warm = Warm()
        pool._deliver(warm)  # type: ignore[arg-type]
        first.cancel()  # cancelled in the step it was handed one
        assert await second is warm
        with pytest.raises(asyncio.CancelledError):
            await first

    run(scenario)


def test_the_window_passes() -> None:
    pool = pool_with(4, window=0.05)
    assert pool.take("a") is not None
    assert pool.take("a") is not None
    assert pool.take("b") is not None
    assert pool.take("a") is None
    import time

    time.sleep(0.06)
    assert pool.take("a") is not None


def test_share_rule_off() -> None:
    pool = pool_with(4, window=0)
    assert pool.take("a") is not None
    assert pool.take("b") is not None
    assert pool.take("a") is not None


def test_one_lane_holds_at_most_half_the_slots_and_neighbours_share_a_lane() -> None:
    async def scenario() -> None:
        gate = EngineGate(4)
        engine = Engine()
        burst = [
            asyncio.ensure_future(gate.run(f"203.0.113.{i}", engine.op(f"x{i}"))) for i in range(6)
        ]
        await settle()
        assert engine.started == ["x0", "x1"]  # six addresses of one /24: one lane
        learner = asyncio.ensure_future(gate.run("198.51.100.7", engine.op("learner")))
        await settle()
        assert engine.started[-1] == "learner"  # a slot was free for someone else
        for name in ["x0", "x1", "learner", "x2", "x3", "x4", "x5"]:
            await settle()
            engine.finish(name)
        await asyncio.gather(*burst, learner)
        assert gate.busy == 0

    run(scenario)


def test_removals_wait_behind_starts_and_leave_a_slot() -> None:
    async def scenario() -> None:
        gate = EngineGate(2, unlimited="pool")
        engine = Engine()
        removals = [
            asyncio.ensure_future(gate.run(f"10.{i}.0.1", engine.op(f"rm{i}"), later=True))
            for i in range(3)
        ]
        await settle()
        assert engine.started == ["rm0"]  # never the last slot
        start = asyncio.ensure_future(gate.run("10.9.0.1", engine.op("start")))
        await settle()
        assert engine.started == ["rm0", "start"]
        for name in ["rm0", "start", "rm1", "rm2"]:
            await settle()
            engine.finish(name)
        await asyncio.gather(*removals, start)

    run(scenario)


def test_a_burst_from_one_network_leaves_the_last_sandbox_to_another() -> None:
    pool = pool_with(4)
    for i in range(3):  # three neighbours: one network, asking fast
        assert pool.take(f"203.0.113.{i}") is not None
    assert pool.take("198.51.100.7") is not None  # someone else asked once
    pool._ready.append(Warm())  # type: ignore[arg-type]
    assert pool.take("203.0.113.9") is None  # the last one: the burst has asked more
    assert pool.take("198.51.100.7") is not None


def test_settle_waits_for_an_abandoned_create_and_its_undo() -> None:
    """Shutdown's sweep comes after settle(): a create still running when its caller
    was cancelled has ended, and been undone, by then (no container outlives it)."""
    events: list[str] = []

    async def scenario() -> None:
        gate = EngineGate(2)
        release = asyncio.Event()

        async def create() -> str:
            await release.wait()
            events.append("created")
            return "c1"

        async def undo(made: str) -> None:
            await asyncio.sleep(0.02)
            events.append(f"removed {made}")

        caller = asyncio.ensure_future(gate.run("10.0.0.1", create, orphan=undo))
        await asyncio.sleep(0.01)
        caller.cancel()
        await asyncio.sleep(0)
        settled = asyncio.ensure_future(gate.settle(5))
        await asyncio.sleep(0.02)
        assert not settled.done()  # the create is still under way
        release.set()
        await settled
        assert events == ["created", "removed c1"]

    run(scenario)
