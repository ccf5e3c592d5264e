"""Execution.output(): a program writing a few bytes at a time costs a bounded number
of trips through the pipeline, and a keystroke's echo after a quiet spell is never
held back, and a sustained stream keeps to its budget of trips (codex/runtime/reads.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from codex.runtime import base, reads
from codex.runtime.base import ExecSpec
from codex.runtime.protocol import RESULT_END, RESULT_OSC
from tests.unit.fakes import FakeExecution

SPEC = ExecSpec(code="", rows=24, cols=80, session_id="s")


async def started() -> FakeExecution:
    ex = FakeExecution(SPEC)
    ex.ready()
    ex.go()
    return ex


def test_a_byte_by_byte_stream_costs_about_ten_trips_a_second() -> None:
    async def scenario() -> tuple[int, bytes]:
        ex = await started()
        trips, got = 0, bytearray()

        async def writer() -> None:
            deadline = time.monotonic() + 1.0
            i = 0
            while time.monotonic() < deadline:
                ex.emit(b"%d," % i)
                i += 1
                await asyncio.sleep(0.001)
            ex.emit(b"end")
            ex.end()

        task = asyncio.ensure_future(writer())
        async for chunk in ex.output():
            trips += 1
            got += chunk
        await task
        return trips, bytes(got)

    trips, got = asyncio.run(asyncio.wait_for(scenario(), 10))
    # Several hundred writes in a second; one trip per write would be that many.
    assert trips <= 25, trips
    numbers = got.removesuffix(b"end").rstrip(b",").split(b",")
    assert numbers == [b"%d" % i for i in range(len(numbers))]  # all of it, in order


def test_a_stream_relayed_in_bursts_a_few_ms_apart_costs_about_ten_trips_a_second() -> None:
    """The engine relays a byte-at-a-time program in small bursts a few ms apart: each
    read waits a little, which is no quiet spell (QUIET_GAP)."""

    async def scenario() -> int:
        ex = await started()
        trips = 0

        async def writer() -> None:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                ex.emit(b"x")
                await asyncio.sleep(0.005)
            ex.end()

        task = asyncio.ensure_future(writer())
        async for _ in ex.output():
            trips += 1
        await task
        return trips

    trips = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert trips <= 25, trips  # ~200 bursts; one trip per burst would be that many


def test_an_echo_after_a_quiet_spell_is_not_held_back() -> None:
    """The reader asks again as soon as it has handled a chunk (as Session's run
    does), so after a quiet spell its read has waited: no pause."""

    async def scenario() -> list[float]:
        ex = await started()
        arrived: list[float] = []
        came = asyncio.Event()

        async def reader() -> None:
            async for _ in ex.output():
                arrived.append(time.monotonic())
                came.set()

        task = asyncio.ensure_future(reader())
        delays = []
        for _ in range(5):
            await asyncio.sleep(0.05)  # quiet
            sent = time.monotonic()
            came.clear()
            ex.emit(b"k")
            await came.wait()
            delays.append(arrived[-1] - sent)
        ex.end()
        await task
        return delays

    delays = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert max(delays) < 0.008, delays  # below COALESCE_DELAY: no pause at all


def test_echoes_of_keys_typed_back_to_back_are_not_held_back() -> None:
    """The next key goes as soon as the last echo is in: no read waits, yet each is
    an echo of input just sent, never held for a pause."""

    async def scenario() -> list[float]:
        ex = await started()
        echoes: asyncio.Queue[bytes] = asyncio.Queue()

        async def reader() -> None:
            async for chunk in ex.output():
                echoes.put_nowait(chunk)

        task = asyncio.ensure_future(reader())
        await ex.begin(SPEC)  # the job goes first: what follows is typed
        await asyncio.sleep(0.05)  # the records before it are read; the reader waits
        delays = []
        for _ in range(20):
            sent = time.monotonic()
            await ex.write(b"k")
            assert await echoes.get() == b"k"
            delays.append(time.monotonic() - sent)
        ex.end()
        await task
        return delays

    delays = sorted(asyncio.run(asyncio.wait_for(scenario(), 10)))
    # Held, they would take 10, 20, 40 ... 100 ms; a slow moment may cost one a few ms.
    assert delays[len(delays) // 2] < 0.005 and delays[-1] < 0.05, delays


def test_the_first_output_is_not_held_when_the_go_record_came_in_two_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "COALESCE_DELAY", 0.1)  # held, it would take 100 ms

    async def scenario() -> float:
        ex = FakeExecution(SPEC)
        ex.ready()
        arrived: list[float] = []

        async def reader() -> None:
            async for chunk in ex.output():
                if b"hi" in chunk:
                    arrived.append(time.monotonic())

        task = asyncio.ensure_future(reader())
        await asyncio.sleep(0.3)  # the ready record is read; the reader waits for more
        go = RESULT_OSC + ex.nonce.encode() + b";go" + RESULT_END
        ex.emit(go[:5])
        await asyncio.sleep(0.003)  # the rest of the record a moment later, and output
        sent = time.monotonic()
        ex.emit(go[5:] + b"hi\r\n")
        await asyncio.sleep(0.05)
        ex.end()
        await task
        return arrived[0] - sent

    delay = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert delay < 0.05, delay  # not held for COALESCE_DELAY


def test_what_is_ready_is_taken_in_one_trip() -> None:
    async def scenario() -> list[bytes]:
        ex = await started()
        for _ in range(50):
            ex.emit(b"x" * 1000)  # all there before the first read
        ex.end()
        return [chunk async for chunk in ex.output()]

    chunks = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert sum(map(len, chunks)) == 50_000
    assert len(chunks) <= 2, [len(c) for c in chunks]


def test_a_sustained_stream_settles_to_the_trip_rate() -> None:
    """Bytes 20 ms apart: each read has waited a quiet spell, so only the budget
    spaces the trips: TRIP_BURST at once, then TRIP_RATE a second. The watcher is told
    the program is busy writing (`streaming`), except by the trip after which the
    stream stopped: that one may end with a prompt."""

    async def scenario() -> tuple[int, bool, bool]:
        ex = await started()
        trips, streaming, last = 0, False, True
        trip = asyncio.Event()

        async def writer() -> None:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                ex.emit(b"x")
                await asyncio.sleep(0.02)
            trip.clear()
            await trip.wait()  # the prompt right after a trip: early in the next hold
            ex.emit(b"? ")
            await asyncio.sleep(0.5)  # at the prompt
            ex.end()

        task = asyncio.ensure_future(writer())
        async for chunk in ex.output():
            trips += 1
            trip.set()
            streaming = streaming or ex.streaming
            if chunk.endswith(b"? "):
                last = ex.streaming
        await task
        return trips, streaming, last

    trips, streaming, last = asyncio.run(asyncio.wait_for(scenario(), 10))
    # ~75 writes; the budget allows 4 + 1.5 x 4 = 10, and the first three are free.
    assert trips <= reads.TRIP_BURST + 1.5 * reads.TRIP_RATE + reads.ANSWER_READS + 2, trips
    assert streaming and not last


def test_a_held_trip_goes_at_once_when_a_sync_is_asked() -> None:
    """The input detector asks for a sync when the program may be at a prompt: the
    output held for the budget comes now, and the sync with it."""

    async def scenario() -> float:
        ex = await started()

        async def reader() -> None:
            async for _ in ex.output():
                pass

        task = asyncio.ensure_future(reader())
        for _ in range(40):  # spend the budget
            ex.emit(b"x")
            await asyncio.sleep(0.02)
        ex.emit(b"? ")  # the prompt, held for the budget's next trip
        t0 = time.monotonic()
        assert await ex.sync(timeout=1.0)
        took = time.monotonic() - t0
        ex.end()
        await task
        return took

    took = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert took < 0.1, took  # not the budget's 1 / TRIP_RATE


def test_input_sent_during_a_hold_brings_its_echo_at_once() -> None:
    async def scenario() -> float:
        ex = await started()
        await ex.begin(SPEC)  # the job goes first: what follows is typed
        echoed = asyncio.Event()

        async def reader() -> None:
            async for chunk in ex.output():
                if b"k" in chunk:
                    echoed.set()

        task = asyncio.ensure_future(reader())
        for _ in range(40):  # spend the budget
            ex.emit(b"x")
            await asyncio.sleep(0.02)
        ex.emit(b"x")  # held
        await asyncio.sleep(0.01)
        t0 = time.monotonic()
        await ex.write(b"k")  # the fake terminal echoes it
        await echoed.wait()
        took = time.monotonic() - t0
        ex.end()
        await task
        return took

    took = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert took < 0.1, took


def test_a_flood_is_never_held_for_the_budget() -> None:
    """Full trips (FULL_TRIP) are worth their cost: a program writing 64 KiB every
    10 ms is read as fast as it writes, budget or not."""

    async def scenario() -> float:
        ex = await started()
        got = 0

        async def writer() -> None:
            for _ in range(60):
                ex.emit(b"y" * reads.FULL_TRIP)
                await asyncio.sleep(0.01)
            ex.end()

        t0 = time.monotonic()
        task = asyncio.ensure_future(writer())
        async for chunk in ex.output():
            got += len(chunk)
        await task
        assert got == 60 * reads.FULL_TRIP
        return time.monotonic() - t0

    took = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert took < 1.5, took  # written in ~0.6 s; held for the budget, 60 / 4 = 15 s


def test_the_budget_refills_at_its_rate_and_keeps_no_more_than_its_burst() -> None:
    budget = reads.TripBudget(rate=10.0, burst=2)
    assert budget.wait() == 0.0
    budget.take()
    budget.take()
    assert 0.05 < budget.wait() <= 0.1  # empty: the next token in 1 / rate
    budget.take()  # one hurried ahead of its turn: still empty, not in debt
    assert budget.wait() <= 0.1
    time.sleep(0.35)
    assert budget.wait() == 0.0 and budget.tokens == 2.0


def test_a_held_trip_goes_once_the_stream_stops() -> None:
    """A program that stops writing may be at a prompt: what it wrote last is not
    kept for the budget's next turn (250 ms) once PAUSE_GAP passed without a byte."""

    async def scenario() -> float:
        ex = await started()
        arrived, trip = asyncio.Event(), asyncio.Event()

        async def reader() -> None:
            async for chunk in ex.output():
                trip.set()
                if chunk.endswith(b"? "):
                    arrived.set()

        task = asyncio.ensure_future(reader())
        for _ in range(40):  # spend the budget
            ex.emit(b"x")
            await asyncio.sleep(0.02)
        trip.clear()
        await trip.wait()
        ex.emit(b"x? ")  # just after a trip: the next waits ~250 ms for the budget
        t0 = time.monotonic()
        await asyncio.wait_for(arrived.wait(), 2)
        took = time.monotonic() - t0
        ex.end()
        await task
        return took

    took = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert took < 0.15, took  # QUIET_GAP, then PAUSE_GAP without a byte
