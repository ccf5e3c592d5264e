"""ContainerPool with a fake engine: filling, refilling, the headroom, a new image, a
failed refill, waiting for a refill in flight, stop (and its closes), and the share rule
per network.
(More share-rule cases: tests/unit/test_gate.py.)"""

from __future__ import annotations

import asyncio

import pytest

# -- codex, in one place (modules are about to move into packages) -----------------------
from codex.errors import SandboxError
from codex.runtime.docker import pool as pool_module
from codex.runtime.docker.demand import Demand
from codex.runtime.docker.pool import ContainerPool
from tests.unit.fakes import eventually, run, settle


class Sandbox:
    """A prepared sandbox, as the pool sees one (alive, close). With ``slow`` given, a
    close takes until it is set (a removal the engine is slow to do)."""

    def __init__(self, number: int, slow: asyncio.Event | None = None) -> None:
        self.number = number
        self.dead = False
        self.closes = 0  # closes begun
        self.closed = 0  # closes that ran to their end
        self.slow = slow

    footprint_bytes: int | None = None

    def alive(self) -> bool:
        return not self.dead and not self.closes

    def footprint(self) -> int | None:
        return self.footprint_bytes

    async def close(self) -> None:
        self.closes += 1
        if self.slow is not None:
            await self.slow.wait()
        self.closed += 1


class Engine:
    """The pool's backend: ``prepare(None)`` makes one sandbox. With ``hold`` set each
    preparation waits until the test finishes (or fails) it."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.asked = 0
        self.made: list[Sandbox] = []
        self.lanes: list[str] = []  # the engine gate's lane of each preparation
        self.pending: list[asyncio.Future[None]] = []
        self.fail_next = 0
        self.cancelled = 0
        self.slow_closes: asyncio.Event | None = None  # for the sandboxes made from now

    async def prepare(self, session_id: str | None, client: str = "") -> Sandbox:
        assert session_id is None  # a pooled sandbox belongs to no session yet
        self.asked += 1
        self.lanes.append(client)
        if self.fail_next:
            self.fail_next -= 1
            raise SandboxError("the engine could not create it")
        if self.hold:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.pending.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        sandbox = Sandbox(len(self.made), self.slow_closes)
        self.made.append(sandbox)
        return sandbox

    def finish(self, count: int = 1) -> None:
        for _ in range(count):
            self.pending.pop(0).set_result(None)

    def fail(self) -> None:
        self.pending.pop(0).set_exception(SandboxError("the engine failed midway"))


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "RECHECK", 0.02)  # the headroom is re-read this often
    monkeypatch.setattr(pool_module, "RETRY_AFTER_FAILURE", 0.02)


def pool_of(engine: Engine, size: int = 3, window: float = 0.0) -> ContainerPool[Sandbox]:
    return ContainerPool(engine, size, window)


def closed(engine: Engine) -> list[int]:
    return [s.number for s in engine.made if s.closes]


async def stop(pool: ContainerPool[Sandbox]) -> None:
    """Stop the pool once what woke it has been handled."""
    await settle()
    pool.stop()
    await settle()


def test_it_fills_to_its_size_and_no_further() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=3)
        pool.start()
        await eventually(lambda: pool.ready == 3, what="filled")
        await asyncio.sleep(0.06)  # a few rechecks
        assert engine.asked == 3 and pool.ready == 3
        await stop(pool)

    run(scenario)


def test_a_take_is_a_hit_and_is_refilled() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=2)
        pool.start()
        await eventually(lambda: pool.ready == 2, what="filled")
        first = pool.take("10.0.0.1")
        assert first is engine.made[0] and pool.hits == 1 and pool.misses == 0
        await eventually(lambda: pool.ready == 2, what="refilled")
        assert engine.asked == 3 and closed(engine) == []  # the taken one is the taker's
        assert pool.take() is engine.made[1]  # first prepared, first taken
        await stop(pool)

    run(scenario)


def test_an_empty_pool_is_a_miss() -> None:
    async def scenario() -> None:
        engine = Engine(hold=True)
        pool = pool_of(engine, size=1)
        assert pool.take() is None and pool.misses == 1 and pool.hits == 0
        assert await pool.acquire() is None  # no refill on its way: cold, at once
        assert pool.misses == 2 and engine.asked == 0  # never started: never prepares

    run(scenario)


def test_the_headroom_caps_the_pool_and_its_growth_is_noticed() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=3)
        room = [1]
        pool.headroom = lambda: room[0]
        pool.start()
        await eventually(lambda: pool.ready == 1, what="filled to the headroom")
        await asyncio.sleep(0.05)
        assert engine.asked == 1
        room[0] = 10  # executions ended: nothing wakes the pool but its recheck
        await eventually(lambda: pool.ready == 3, what="filled to its size")
        assert engine.asked == 3
        await stop(pool)

    run(scenario)


def test_a_tighter_headroom_gives_back_what_waits() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=3)
        room = [3]
        pool.headroom = lambda: room[0]
        pool.start()
        await eventually(lambda: pool.ready == 3, what="filled")
        room[0] = 1
        await eventually(lambda: pool.ready == 1, what="shrunk")
        await eventually(lambda: len(closed(engine)) == 2, what="closed")
        assert pool.take() is engine.made[0]  # the oldest stays, the newest go
        await stop(pool)

    run(scenario)


def test_a_sandbox_that_died_waiting_is_dropped_and_closed() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=2)
        pool.start()
        await eventually(lambda: pool.ready == 2, what="filled")
        engine.made[0].dead = True
        assert pool.take() is engine.made[1]
        await eventually(lambda: engine.made[0].closes == 1, what="closed")
        assert pool.hits == 1 and pool.misses == 0
        await stop(pool)

    run(scenario)


def test_a_failed_preparation_is_retried() -> None:
    async def scenario() -> None:
        engine = Engine()
        engine.fail_next = 1
        pool = pool_of(engine, size=2)
        pool.start()
        await eventually(lambda: pool.ready == 2, what="filled")
        assert engine.asked == 3 and len(engine.made) == 2
        await stop(pool)

    run(scenario)


def test_a_taker_waits_for_the_refill_in_flight() -> None:
    async def scenario() -> None:
        engine = Engine(hold=True)
        pool = pool_of(engine, size=1)
        pool.start()
        await eventually(lambda: engine.pending, what="a refill under way")
        waiting = asyncio.ensure_future(pool.acquire("10.0.0.1"))
        await settle()
        assert not waiting.done()
        assert await pool.acquire("10.0.1.1") is None  # one waiter per refill: cold
        engine.finish()
        got = await asyncio.wait_for(waiting, 1.0)
        assert got is engine.made[0] and pool.hits == 1 and pool.ready == 0
        await stop(pool)

    run(scenario)


def test_a_failed_refill_sends_its_waiter_cold_at_once() -> None:
    async def scenario() -> None:
        engine = Engine(hold=True)
        pool = pool_of(engine, size=1)
        pool.start()
        await eventually(lambda: engine.pending, what="a refill under way")
        waiting = asyncio.ensure_future(pool.acquire())
        await settle()
        engine.fail()
        assert await asyncio.wait_for(waiting, 0.5) is None
        assert pool.misses == 1
        await stop(pool)

    run(scenario)


def test_a_new_image_replaces_what_waits() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=2)
        pool.note_image("sha256:one")  # the first image seen: nothing is stale
        pool.start()
        await eventually(lambda: pool.ready == 2, what="filled")
        pool.note_image("sha256:one")
        await asyncio.sleep(0.03)
        assert closed(engine) == [] and engine.asked == 2
        pool.note_image("sha256:two")
        await eventually(lambda: closed(engine) == [0, 1], what="stale ones closed")
        await eventually(lambda: pool.ready == 2, what="refilled")
        assert pool.take() is engine.made[2]
        await stop(pool)

    run(scenario)


def test_stop_cancels_refills_sends_waiters_cold_and_prepares_nothing_more() -> None:
    async def scenario() -> None:
        engine = Engine(hold=True)
        pool = pool_of(engine, size=2)
        pool.start()
        await eventually(lambda: len(engine.pending) == 2, what="refills under way")
        waiting = asyncio.ensure_future(pool.acquire())
        await settle()
        pool.stop()
        assert await asyncio.wait_for(waiting, 0.5) is None
        await settle()
        assert engine.cancelled == 2 and engine.made == []
        pool.take()  # a take after stop wakes nothing
        await asyncio.sleep(0.05)
        assert engine.asked == 2

    run(scenario)


def test_the_share_rule_counts_an_ipv6_network_as_one_taker() -> None:
    async def scenario() -> None:
        engine = Engine(hold=True)
        pool = pool_of(engine, size=4, window=10.0)  # a network's share: 2 per window
        pool.start()
        await eventually(lambda: len(engine.pending) == 4, what="refills under way")
        engine.finish(4)
        await eventually(lambda: pool.ready == 4, what="filled")
        # Refills from here on are held: the ready count is the test's.
        assert pool.take("2001:db8:0:1::1") is not None
        assert pool.take("198.51.100.7") is not None
        assert pool.take("2001:db8:0:2::1") is not None  # same /56: its second take
        assert pool.take("2001:db8:0:3::1") is None  # its third, with 1 left: cold
        assert pool.refused == 1 and pool.misses == 1
        assert pool.take("2001:db8:0:100::1") is not None  # another /56: served
        assert pool.ready == 0
        await stop(pool)

    run(scenario)


def test_stop_right_after_a_take_stops_the_pool() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=2)
        pool.start()
        await eventually(lambda: pool.ready == 2, what="filled")
        await settle()
        pool.take()  # wakes the pool...
        pool.stop()  # ...which is stopped in the same step (a shutdown)
        await asyncio.sleep(0.1)
        assert engine.asked == 2  # nothing prepared after stop

    run(scenario)


def test_stop_closes_what_waits_ready() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool = pool_of(engine, size=3)
        pool.start()
        await eventually(lambda: pool.ready == 3, what="filled")
        taken = pool.take()
        await eventually(lambda: pool.ready == 3, what="refilled")
        pool.stop()
        assert pool.ready == 0
        await asyncio.wait_for(pool.closed(), 1.0)
        assert closed(engine) == [1, 2, 3]  # the taken one is its taker's to close
        assert taken is engine.made[0] and taken.closes == 0

    run(scenario)


def test_stop_lets_closes_under_way_finish_and_closed_waits_for_them() -> None:
    async def scenario() -> None:
        engine = Engine()
        engine.slow_closes = asyncio.Event()
        pool = pool_of(engine, size=3)
        room = [3]
        pool.headroom = lambda: room[0]
        pool.start()
        await eventually(lambda: pool.ready == 3, what="filled")
        room[0] = 2
        await eventually(lambda: engine.made[2].closes == 1, what="a close under way")
        pool.stop()  # the two still ready are closed too
        done = asyncio.ensure_future(pool.closed())
        await settle()
        assert not done.done()  # the removals take their time
        engine.slow_closes.set()
        await asyncio.wait_for(done, 1.0)
        assert [s.closed for s in engine.made] == [1, 1, 1]  # none was cut short

    run(scenario)


def paged_pool(
    engine: Engine, linger: float, pages: int = 0
) -> tuple[ContainerPool[Sandbox], list[int]]:
    """A started pool of floor 2 and ceiling 6 that follows the pages open: the list's
    one number, which the test sets."""
    demand = Demand(2, 6, linger=linger)
    idle = [pages]
    demand.idle_clients = lambda: idle[0]
    pool = ContainerPool(engine, 2, 0.0, demand)
    pool.headroom = lambda: 64
    pool.start()
    return pool, idle


def test_pages_open_grow_the_pool_to_its_ceiling_and_it_shrinks_after_the_linger() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool, idle = paged_pool(engine, linger=0.1)
        await eventually(lambda: pool.ready == 2, what="the floor")
        idle[0] = 10  # a class opened its pages: more than the ceiling
        await eventually(lambda: pool.ready == 6, what="grown to the ceiling")
        await settle()
        assert len(engine.made) == 6
        # Up to the floor first in the gate; the growth waits its turn like anyone.
        assert engine.lanes[:2] == [pool_module.POOL_LANE] * 2
        assert engine.lanes[2:] == [pool_module.GROWTH_LANE] * 4
        idle[0] = 0  # they left
        await eventually(lambda: pool.ready == 2, timeout=2, what="back to the floor")
        await eventually(lambda: len(closed(engine)) == 4, what="the extra ones closed")
        pool.stop()

    run(scenario)


def test_a_pool_back_at_its_floor_counts_the_closes_still_under_way_as_in_flight() -> None:
    async def scenario() -> None:
        engine = Engine()
        pool, idle = paged_pool(engine, linger=0.0, pages=4)
        await eventually(lambda: pool.ready == 4 and pool.in_flight == 0, what="grown")
        engine.slow_closes = asyncio.Event()
        for sandbox in engine.made:
            sandbox.slow = engine.slow_closes  # the engine is slow to remove them
        idle[0] = 0
        await eventually(lambda: pool.ready == 2, what="back to the floor")
        # At its floor, but the two it let go still hold what a container holds.
        assert pool.in_flight == 2
        engine.slow_closes.set()
        await eventually(lambda: pool.in_flight == 0, what="the closes done")
        pool.stop()

    run(scenario)


def test_asks_the_share_rule_refuses_do_not_grow_the_pool() -> None:
    """Churn from one network grows the pool no further than its share did: each
    sandbox it took and threw away was a whole container life for the engine."""

    async def scenario() -> None:
        engine = Engine()
        demand = Demand(4, 48)
        pool = ContainerPool(engine, 4, 10.0, demand)
        pool.headroom = lambda: 64
        pool.start()
        await eventually(lambda: pool.ready == 4, what="the floor")
        assert pool.take("192.0.2.1") is not None  # a learner elsewhere, once
        await settle()
        took = 0
        for _ in range(60):  # a burst of creates from one network
            took += pool.take("198.51.100.9") is not None
        assert pool.refused >= 55 and took <= 5
        await settle()
        # Only its granted asks (and the learner's) count: 2 s of ~1/s, not of 12/s.
        assert pool.target_size <= 4 + took
        pool.stop()

    run(scenario)


def test_the_memory_budget_caps_growth_at_the_measured_footprint() -> None:
    async def scenario() -> None:
        engine = Engine()
        demand = Demand(1, 20, budget_bytes=100 << 20)
        demand.footprint = 20 << 20
        demand.idle_clients = lambda: 20
        pool = ContainerPool(engine, 1, 0.0, demand)
        pool.headroom = lambda: 64
        pool.start()
        await eventually(lambda: pool.ready == 5, what="what 100 MiB holds at 20 MiB each")
        await settle()
        assert pool.ready == 5
        pool.stop()

    run(scenario)


def test_a_measured_footprint_is_learned_from_the_sandboxes() -> None:
    async def scenario() -> None:
        engine = Engine()
        demand = Demand(3, 3)
        pool = ContainerPool(engine, 3, 0.0, demand)
        before = demand.footprint
        Sandbox.footprint_bytes = 4 << 20
        try:
            pool.start()
            await eventually(lambda: pool.ready == 3, what="filled")
        finally:
            Sandbox.footprint_bytes = None
        assert demand.footprint < before
        pool.stop()

    run(scenario)
