"""SIGTERM: stop taking work at once, let running programs finish for a while, then
cancel them with a clear verdict and leave no sandbox behind."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.servers import codex_process

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]


async def test_sigterm_drains_then_cancels_with_a_verdict() -> None:
    async with codex_process("--shutdown-grace", "3", "--pool-size", "1") as server:
        h = server.harness
        short = await h.execute("import time\ntime.sleep(1.5)\nprint('finished in time')\n")
        long = await h.execute("import time\ntime.sleep(60)\n")
        for session_id in (short, long):
            assert await containers_of_soon(session_id)
        watchers = asyncio.gather(h.follow(short, timeout=60), h.follow(long, timeout=60))
        await asyncio.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        ready = await h.request("GET", "/readyz")
        assert ready.status == 503 and ready.body["reason"] == "shutting down"
        refused = await h.request("POST", "/api/execute", {"code": "print(1)"})
        assert refused.status == 503
        short_run, long_run = await watchers
        assert short_run.complete["status"] == "ok"
        assert "finished in time" in short_run.output
        assert long_run.complete["status"] == "cancelled"
        assert long_run.named("error")[0]["error"] == "The server is shutting down."
        assert await asyncio.wait_for(server.proc.wait(), 30) == 0
        for session_id in (short, long):
            await assert_gone_soon(session_id)
