"""The one sweep over announced waits: it wakes only the waits that ended, bounds its
work per tick, and leaves no timer behind once nothing waits. No processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from codex.sessions.input import sweep as input_sweep
from codex.sessions.input.sweep import WaitSweep
from tests.unit.fakes import eventually, run


def test_only_the_waits_that_ended_are_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)

    async def scenario() -> None:
        waits = WaitSweep()
        waiting = {k: True for k in range(5)}
        ended: list[int] = []
        for k in waiting:
            waits.add(k, lambda k=k: waiting[k], lambda k=k: ended.append(k))
        await asyncio.sleep(0.05)
        assert ended == [] and len(waits) == 5
        waiting[3] = False
        await eventually(lambda: ended == [3], timeout=1, what="the ended wait told")
        assert len(waits) == 4
        for k in (0, 1, 2, 4):
            waits.discard(k)
        assert len(waits) == 0 and waits._timer is None  # nothing left scheduled

    run(scenario)


def test_a_tick_stops_at_its_budget_and_the_next_goes_on_from_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)
    monkeypatch.setattr(input_sweep, "TICK_BUDGET", 0.002)

    async def scenario() -> None:
        waits = WaitSweep()
        seen: list[int] = []

        def slow(k: int) -> bool:
            seen.append(k)
            t0 = time.thread_time()
            while time.thread_time() - t0 < 0.001:  # a costly wait: 1 ms of CPU each
                pass
            return True

        for k in range(10):
            waits.add(k, lambda k=k: slow(k), lambda: None)
        await eventually(lambda: waits.ticks >= 1, timeout=1, what="a tick")
        first = waits.checks
        assert first <= 3, "one tick looked at more waits than its budget allows"
        await eventually(lambda: set(seen) == set(range(10)), timeout=2, what="every wait seen")
        for k in range(10):
            waits.discard(k)

    run(scenario)


def test_a_failing_check_ends_that_wait_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)

    async def scenario() -> None:
        waits = WaitSweep()
        ended: list[str] = []

        def broken() -> bool:
            raise OSError("gone")

        waits.add("bad", broken, lambda: ended.append("bad"))
        waits.add("good", lambda: True, lambda: ended.append("good"))
        await eventually(lambda: ended == ["bad"], timeout=1, what="the failing wait ended")
        await asyncio.sleep(0.03)
        assert ended == ["bad"] and len(waits) == 1
        waits.discard("good")

    run(scenario)


def test_each_loop_has_its_own_sweep() -> None:
    async def get() -> WaitSweep:
        return input_sweep.sweep()

    first, second = asyncio.run(get()), asyncio.run(get())
    assert first is not second
