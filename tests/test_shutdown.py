"""SIGTERM: stop taking work at once, let running programs finish for a while, then
cancel them with a clear verdict and leave no sandbox behind."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.harness import Harness
from tests.servers import codex_process

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]


async def collect(h: Harness, session_id: str, into: list[tuple[str, Any]]) -> None:
    done = asyncio.Event()
    async with h.client() as sio:

        async def on_any(event: str, data: Any = None) -> None:
            into.append((event, data))
            if event == "execution_complete":
                done.set()

        sio.on("*", on_any)
        await sio.call("join", {"sessionId": session_id})
        await asyncio.wait_for(done.wait(), 60)


async def test_sigterm_drains_then_cancels_with_a_verdict() -> None:
    async with codex_process("--shutdown-grace", "3", "--pool-size", "1") as server:
        h = Harness(None, server.base_url)
        short = await h.execute("import time\ntime.sleep(1.5)\nprint('finished in time')\n")
        long = await h.execute("import time\ntime.sleep(60)\n")
        for session_id in (short, long):
            assert await containers_of_soon(session_id)
        short_events: list[tuple[str, Any]] = []
        long_events: list[tuple[str, Any]] = []
        watchers = [
            asyncio.ensure_future(collect(h, short, short_events)),
            asyncio.ensure_future(collect(h, long, long_events)),
        ]
        await asyncio.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        ready = await h.request("GET", "/readyz")
        assert ready.status == 503 and ready.body["reason"] == "shutting down"
        refused = await h.request("POST", "/api/execute", {"code": "print(1)"})
        assert refused.status == 503
        await asyncio.gather(*watchers)
        assert short_events[-1][1]["status"] == "ok"
        assert "finished in time" in "".join(d["output"] for e, d in short_events if e == "output")
        assert long_events[-1][1]["status"] == "cancelled"
        errors = [d for e, d in long_events if e == "error"]
        assert errors[0]["error"] == "The server is shutting down."
        assert await asyncio.wait_for(server.proc.wait(), 30) == 0
        for session_id in (short, long):
            await assert_gone_soon(session_id)
