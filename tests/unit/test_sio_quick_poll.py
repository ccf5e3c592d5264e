"""codex.api.sio_server.QuickPollSocket: engine.io's poll without a task per wait,
with the original's contract (packets in order, None closes, QueueEmpty on timeout)."""

from __future__ import annotations

import asyncio

import engineio
import pytest
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from codex.api.sio_server import QuickPollSocket


def _socket(ping: float = 0.05) -> QuickPollSocket:
    server = engineio.AsyncServer(ping_interval=ping, ping_timeout=ping)
    return QuickPollSocket(server, "sid")


def test_poll_returns_what_is_queued_in_order() -> None:
    async def scenario() -> list[str]:
        sock = _socket()
        got = asyncio.ensure_future(sock.poll())
        await asyncio.sleep(0)
        for text in ("a", "b", "c"):
            await sock.queue.put(eio_packet.Packet(eio_packet.MESSAGE, text))
        packets = await asyncio.wait_for(got, 1)
        return [p.data for p in packets]

    assert asyncio.run(scenario()) == ["a", "b", "c"]  # put() of an unbounded queue never yields


def test_poll_takes_everything_ready_and_stops_at_the_close_marker() -> None:
    async def scenario() -> tuple[list[str], list[object]]:
        sock = _socket()
        for text in ("a", "b"):
            sock.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, text))
        sock.queue.put_nowait(None)
        first = [p.data for p in await sock.poll()]
        return first, await sock.poll()

    first, then = asyncio.run(scenario())
    assert first == ["a", "b"]
    assert then == []  # the marker: the writer ends


def test_poll_raises_queue_empty_when_nothing_comes_in_time() -> None:
    async def scenario() -> None:
        sock = _socket(ping=0.02)
        with pytest.raises(eio_exceptions.QueueEmpty):
            await sock.poll()
        assert sock.queue.qsize() == 0 and sock.queue._unfinished_tasks == 0

    asyncio.run(asyncio.wait_for(scenario(), 2))


def test_a_cancelled_poll_is_queue_empty_too() -> None:
    async def scenario() -> None:
        sock = _socket(ping=5)
        task = asyncio.ensure_future(sock.poll())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(eio_exceptions.QueueEmpty):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 2))
