"""The pace of cold starts for a network the share rule turns away (pace.py), on a
clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from codex.errors import RateLimited
from codex.runtime.docker import pace
from codex.runtime.docker import pool as pool_module
from codex.runtime.docker.pace import Pacer
from codex.runtime.docker.pool import ContainerPool
from tests.unit.test_gate import Warm


class Time:
    """A clock that moves only when a sleeper is woken by `advance`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + seconds, woken))
        await woken

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, woken in list(self.sleepers):
            if due <= self.now + 1e-9 and not woken.done():
                woken.set_result(None)
                self.sleepers.remove((due, woken))
        for _ in range(5):  # let the woken ones take their turns
            await asyncio.sleep(0)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def pacer(t: Time, rate: float = 2.0, burst: int = 3) -> Pacer:
    return Pacer(rate, burst, clock=t.clock, sleep=t.sleep)


def test_a_full_bucket_never_waits_then_the_rate_holds() -> None:
    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=2.0, burst=3)
        for _ in range(3):
            assert await p.turn("203.0.113.0/24") == 0.0
        fourth = asyncio.ensure_future(p.turn("203.0.113.0/24"))
        await asyncio.sleep(0)
        assert not fourth.done() and p.paced == 1
        await t.advance(0.25)
        assert not fourth.done()  # half a token
        await t.advance(0.25)
        assert await fourth == pytest.approx(0.5)

    run(scenario())


def test_a_network_paced_does_not_pace_another() -> None:
    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=1.0, burst=1)
        await p.turn("churn")
        held = asyncio.ensure_future(p.turn("churn"))
        await asyncio.sleep(0)
        assert not held.done()
        assert await p.turn("learner") == 0.0  # a bucket of its own, full
        await t.advance(1.0)
        assert await held == pytest.approx(1.0)

    run(scenario())


def test_starts_that_wait_go_in_order_at_the_rate() -> None:
    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=4.0, burst=1)
        done: list[int] = []

        async def start(k: int) -> None:
            await p.turn("churn")
            done.append(k)

        tasks = [asyncio.ensure_future(start(k)) for k in range(6)]
        await asyncio.sleep(0)
        assert done == [0]
        for expected in range(1, 6):
            await t.advance(0.25)
            assert done == list(range(expected + 1))
        await asyncio.gather(*tasks)

    run(scenario())


def test_a_start_cancelled_while_it_waits_costs_no_token() -> None:
    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=1.0, burst=1)
        await p.turn("churn")
        doomed = [asyncio.ensure_future(p.turn("churn")) for _ in range(5)]
        await asyncio.sleep(0)
        assert p.waiting("churn") == 5
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        assert p.waiting("churn") == 0
        await t.advance(1.0)
        # One token came back in that second; the five cancelled starts took none.
        assert await p.turn("churn") == 0.0

    run(scenario())


def test_no_pace_at_rate_zero() -> None:
    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=0.0, burst=1)
        for _ in range(100):
            assert await p.turn("churn") == 0.0
        assert p.paced == 0

    run(scenario())


def test_buckets_refilled_are_forgotten_and_their_count_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pace, "REMEMBERED", 50)

    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=1.0, burst=2)
        for k in range(200):
            await p.turn(f"10.0.{k}.0/24")  # each leaves a bucket not yet full
        assert len(p._buckets) <= 51
        await t.advance(2.0)
        await p.turn("one more")
        # Every bucket has refilled: a full bucket is the same as none.
        assert list(p._buckets) == ["one more"]

    run(scenario())


# -- the pool paces a network asking far more than a class would -------------------------


def paced_pool(t: Time, after: float, window: float = 10.0, ready: int = 0) -> ContainerPool[Any]:
    """A pool of `ready` sandboxes whose pacer runs on `t`: 1 start a second, one saved."""
    pool: ContainerPool[Any] = ContainerPool(None, 4, window)  # type: ignore[arg-type]
    pool.pacer = pacer(t, rate=1.0, burst=1)
    pool.paced_after = lambda client: after
    pool._ready.extend(Warm() for _ in range(ready))
    return pool


def test_a_network_asking_far_more_than_others_waits_for_its_pace() -> None:
    async def scenario() -> None:
        t = Time()
        pool = paced_pool(t, after=3, ready=4)
        assert await pool.acquire("198.51.100.9") is not None  # another network asks
        # Until its score reaches paced_after it is not paced; then its one saved token
        # lets one more through, hit or cold; then a start waits, whatever the pool has.
        passed = 0
        while True:
            pool._ready.append(Warm())
            held = asyncio.ensure_future(pool.acquire(f"203.0.113.{passed + 1}"))
            for _ in range(3):
                await asyncio.sleep(0)
            if not held.done():
                break
            passed += 1
            assert passed <= 10
        assert 3 <= passed <= 5, passed
        assert pool.pacer.waiting("203.0.113.0/24") == 1
        # A learner of another network is not paced.
        assert await pool.acquire("198.51.100.9") is not None
        await t.advance(1.0)
        await held
        assert pool.pacer.paced == 1

    run(scenario())


def test_a_paced_network_with_its_queue_full_is_refused_until_a_start_leaves_it() -> None:
    async def scenario() -> None:
        t = Time()
        pool = paced_pool(t, after=1)
        pool.pacer.queue = 2
        await pool.acquire("198.51.100.9")  # another network asks
        churn = "203.0.113.5"
        # Heavy from its first ask (score 1); its saved token lets that one through.
        await asyncio.wait_for(pool.acquire(churn), 1)
        pool.admit(churn)  # nobody waits yet
        held = [asyncio.ensure_future(pool.acquire(churn)) for _ in range(2)]
        await asyncio.sleep(0)
        assert pool.pacer.waiting("203.0.113.0/24") == 2
        with pytest.raises(RateLimited) as refused:  # any address of that network
            pool.admit("203.0.113.77")
        assert refused.value.retry_after == 2  # two waiting at one a second
        assert refused.value.status == 429
        pool.admit("198.51.100.9")  # another network is not refused
        held[1].cancel()  # a DELETE while it waits: its place is free again
        await asyncio.sleep(0)
        pool.admit(churn)
        await t.advance(1.0)
        assert await held[0] is None

    run(scenario())


def test_a_pacer_that_paces_nobody_refuses_nobody() -> None:
    t = Time()
    idle = Pacer(0.0, 1, queue=1, clock=t.clock, sleep=t.sleep)
    assert idle.crowded("203.0.113.0/24") is None


def test_a_learner_never_waits_nor_a_class_nor_a_network_alone() -> None:
    async def scenario() -> None:
        t = Time()
        pool = paced_pool(t, after=40)  # the default of pool_paced_after
        for _ in range(60):  # alone on the server: nobody to be fair to
            assert await asyncio.wait_for(pool.acquire("203.0.113.1"), 1) is None
        for _ in range(4):  # another network's learner, now and then
            await asyncio.wait_for(pool.acquire("198.51.100.9"), 1)
        # A class of 40 behind one address pressing Run in the same instant.
        for _ in range(40):
            assert await asyncio.wait_for(pool.acquire("192.0.2.7"), 1) is None
        assert pool.pacer.paced == 0

    run(scenario())


def test_no_pace_without_a_share_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every ask in the same instant: with no window, every network stays "asking now",
    # and a score (time constant window / 5 = 0) must never be computed.
    monkeypatch.setattr(pool_module, "time", SimpleNamespace(monotonic=lambda: 1000.0))

    async def scenario() -> None:
        t = Time()
        pool = paced_pool(t, after=1, window=0.0)
        for k in range(20):
            await asyncio.wait_for(pool.acquire("198.51.100.9"), 1)
            await asyncio.wait_for(pool.acquire(f"203.0.113.{k}"), 1)
        assert pool.pacer.paced == 0

    run(scenario())


def test_a_paced_network_is_logged_once_a_bout(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        t = Time()
        p = pacer(t, rate=2.0, burst=1)
        tasks = [asyncio.ensure_future(p.turn("203.0.113.0/24")) for _ in range(5)]
        for _ in range(5):
            await t.advance(0.5)
        await asyncio.gather(*tasks)

    with caplog.at_level("WARNING", logger="codex.runtime.docker.pace"):
        run(scenario())
    assert [r.getMessage() for r in caplog.records] == ["pacing 203.0.113.0/24: 2 starts a second"]
