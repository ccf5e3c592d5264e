"""RunClock: running time counts against the limit, waiting for input does not (but
CPU used meanwhile does), and one wait has a limit of its own."""

from __future__ import annotations

import asyncio
import weakref

import pytest

# -- codex, in one place (modules are about to move into packages) -----------------------
from codex.sessions.clock import RunClock
from codex.sessions.input import sweep as input_sweep
from tests.unit.fakes import eventually, run


class Calls:
    def __init__(self) -> None:
        self.timeouts = 0
        self.abandoned = 0
        self.cpu: float | None = None
        self.cpu_asked = 0

    def timeout(self) -> None:
        self.timeouts += 1

    def abandon(self) -> None:
        self.abandoned += 1

    def cpu_seconds(self) -> float | None:
        self.cpu_asked += 1
        return self.cpu


def clock(calls: Calls, limit: float = 0.1, wait_limit: float = 0.1) -> RunClock:
    return RunClock(limit, wait_limit, calls.timeout, calls.abandon, calls.cpu_seconds)


def test_the_limit_fires_after_that_much_running_time() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=0.05)
        c.start()
        await asyncio.sleep(0.03)
        assert calls.timeouts == 0 and 0.025 <= c.elapsed < 0.05
        await eventually(lambda: calls.timeouts == 1, timeout=0.5, what="timeout")
        assert c.elapsed >= 0.05 and calls.abandoned == 0

    run(scenario)


def test_nothing_counts_before_start() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=0.02)
        await asyncio.sleep(0.05)
        assert c.elapsed == 0.0 and calls.timeouts == 0
        c.pause()  # a wait before the start is no wait
        await asyncio.sleep(0.05)
        assert calls.abandoned == 0

    run(scenario)


def test_a_wait_does_not_count_and_the_rest_of_the_limit_remains() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=0.08, wait_limit=1.0)
        c.start()
        await asyncio.sleep(0.03)
        c.pause()
        ran = c.elapsed
        await asyncio.sleep(0.1)  # longer than what was left of the limit
        assert calls.timeouts == 0 and c.elapsed == ran
        c.resume()
        await asyncio.sleep(0.02)
        assert calls.timeouts == 0  # ~0.05 s of running time so far
        await eventually(lambda: calls.timeouts == 1, timeout=0.5, what="timeout")
        assert 0.08 <= c.elapsed < 0.2

    run(scenario)


def test_a_wait_longer_than_the_wait_limit_is_abandoned() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=5.0, wait_limit=0.05)
        c.start()
        c.pause()
        await eventually(lambda: calls.abandoned == 1, timeout=0.5, what="abandoned")
        assert calls.timeouts == 0

    run(scenario)


def test_an_answer_in_time_cancels_the_wait_limit() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=5.0, wait_limit=0.05)
        c.start()
        c.pause()
        await asyncio.sleep(0.03)
        c.resume()
        await asyncio.sleep(0.06)
        c.pause()  # a second wait starts its own limit afresh
        await asyncio.sleep(0.03)
        assert calls.abandoned == 0
        await eventually(lambda: calls.abandoned == 1, timeout=0.5, what="abandoned")

    run(scenario)


def test_cpu_used_during_a_wait_is_charged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)

    async def scenario() -> None:
        calls = Calls()
        calls.cpu = 10.0
        c = clock(calls, limit=1.0, wait_limit=5.0)
        c.start()
        c.pause()
        await asyncio.sleep(0.03)
        assert calls.cpu_asked >= 2 and calls.timeouts == 0  # looked, nothing used
        calls.cpu = 10.4  # a thread computes while another waits
        await eventually(lambda: c.elapsed >= 0.4, timeout=0.5, what="charged")
        assert calls.timeouts == 0
        calls.cpu = 11.5
        await eventually(lambda: calls.timeouts == 1, timeout=0.5, what="timeout")
        assert calls.abandoned == 0

    run(scenario)


def test_no_cpu_figure_means_no_charge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)

    async def scenario() -> None:
        calls = Calls()  # cpu_seconds() says None: the runtime cannot tell
        c = clock(calls, limit=0.05, wait_limit=5.0)
        c.start()
        c.pause()
        await asyncio.sleep(0.1)
        assert calls.cpu_asked == 1 and calls.timeouts == 0 and c.elapsed < 0.05

    run(scenario)


def test_resume_stops_charging_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)

    async def scenario() -> None:
        calls = Calls()
        calls.cpu = 0.0
        c = clock(calls, limit=5.0, wait_limit=5.0)
        c.start()
        c.pause()
        await asyncio.sleep(0.03)
        c.resume()
        asked = calls.cpu_asked
        calls.cpu = 100.0  # running now: wall time counts, CPU is not charged on top
        await asyncio.sleep(0.05)
        assert calls.cpu_asked == asked and c.elapsed < 1.0 and calls.timeouts == 0

    run(scenario)


def test_stop_freezes_the_time_and_silences_the_limits() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=0.05, wait_limit=0.05)
        c.start()
        await asyncio.sleep(0.02)
        c.stop()
        frozen = c.elapsed
        await asyncio.sleep(0.08)
        assert c.elapsed == frozen and calls.timeouts == 0
        c.resume()  # stopped for good
        c.pause()
        await asyncio.sleep(0.08)
        assert c.elapsed == frozen and calls.timeouts == calls.abandoned == 0

    run(scenario)


def test_pause_and_resume_are_idempotent() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=0.06, wait_limit=1.0)
        c.start()
        c.start()
        await asyncio.sleep(0.02)
        c.pause()
        c.pause()
        ran = c.elapsed
        c.resume()
        c.resume()  # must not restart the count nor re-arm the full limit
        assert c.elapsed >= ran
        await eventually(lambda: calls.timeouts == 1, timeout=0.5, what="timeout")
        assert c.elapsed < 0.15
        await asyncio.sleep(0.05)
        assert calls.timeouts == 1

    run(scenario)


def test_release_drops_the_callbacks() -> None:
    async def scenario() -> None:
        calls = Calls()
        c = clock(calls, limit=0.02)
        c.start()
        c.pause()
        c.release()
        await asyncio.sleep(0.05)
        assert calls.timeouts == calls.abandoned == 0
        owner = weakref.ref(calls)
        del calls
        assert owner() is None  # nothing in the clock points back at its owner
        assert c.elapsed < 0.02

    run(scenario)
