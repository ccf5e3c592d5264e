"""Execution.output(): a program writing a few bytes at a time costs a bounded number
of trips through the pipeline, and a keystroke's echo after a quiet spell is never
held back (codex/runtime/base.py: BATCH, SMALL_READ, COALESCE_DELAY, COALESCE_MAX)."""

from __future__ import annotations

import asyncio
import time

import pytest

from codex.runtime import base
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
