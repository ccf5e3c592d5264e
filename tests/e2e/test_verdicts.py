"""Every verdict from facts (real Docker): memory from the kernel's OOM count, time
without input waits, output budget, an engine failure, and the figures that come
with them."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.harness import running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]


async def test_memory_limit_from_the_oom_kill() -> None:
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(8 * 1024 * 1024))\n"
    async with running_app(memory_limit_mb=96) as h:
        t = await h.run(code)
        await assert_gone_soon(t.session_id)
    assert t.complete["status"] == "memory_limit", t.events
    assert t.complete["signal"] == "SIGKILL"
    assert t.complete["memoryPeakBytes"] >= 80 * 1024 * 1024
    assert t.named("error")[0]["code"] == "memory_limit"


async def test_exit_137_without_an_oom_is_not_memory_limit() -> None:
    code = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    async with running_app() as h:
        t = await h.run(code)
    assert t.complete["status"] == "runtime_error"
    assert (t.complete["exitCode"], t.complete["signal"]) == (137, "SIGKILL")


async def test_figures_come_with_the_verdict() -> None:
    code = (
        "import time\n"
        "end = time.process_time() + 0.4\n"
        "while time.process_time() < end:\n"
        "    pass\n"
        "print('done')\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    done = t.complete
    assert done["status"] == "ok"
    assert 300 <= done["cpuMs"] < 3000, done
    assert done["memoryPeakBytes"] > 1024 * 1024
    assert done["durationMs"] >= 400
    assert done["outputBytes"] == len("done\r\n") and done["truncated"] is False


async def test_time_waiting_for_input_does_not_count() -> None:
    code = "import time\nx = input('answer? ')\ntime.sleep(0.5)\nprint('got', x)\n"

    async def slow_learner(event: str, data: Any) -> None:
        if event == "input_required":
            await asyncio.sleep(2.0)  # thinking for longer than the time limit

    async with running_app(time_limit=1.2) as h:
        session_id = await h.execute(code)
        t = await h.follow(session_id, ["42"], on_event=slow_learner)
    assert t.complete["status"] == "ok", t.events
    assert 500 <= t.complete["durationMs"] < 1200  # running time only


async def test_an_abandoned_input_wait_ends_the_session() -> None:
    async with running_app(input_wait_limit=1.0) as h:
        t = await h.run("input('anyone? ')\n")  # nobody answers
    assert t.complete["status"] == "timeout"
    assert "No input came for 1 s" in t.named("error")[0]["error"]


async def test_output_limit_stops_forwarding_and_says_so() -> None:
    async with running_app(output_limit_bytes=10_000) as h:
        t = await h.run("while True:\n    print('x' * 99)\n")
        await assert_gone_soon(t.session_id)
    assert t.complete["status"] == "output_limit"
    assert t.complete["truncated"] is True
    assert t.complete["outputBytes"] == 10_000
    assert "[output limit of 10000 bytes reached: program stopped]" in t.output
    assert len(t.output) < 10_200


async def test_container_killed_from_outside_is_an_internal_error() -> None:
    async with running_app() as h:
        session_id = await h.execute("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
        (container,) = await containers_of_soon(session_id)
        await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: subprocess.run(["docker", "kill", container], check=True, timeout=30)
        )
        state = await h.wait_finished(session_id, timeout=20)
        assert state["result"]["status"] == "internal_error"
        await assert_gone_soon(session_id)
        t = await h.run("print('next')")  # the server carries on
        assert t.complete["status"] == "ok"


async def test_a_wait_in_one_thread_does_not_hide_work_in_another() -> None:
    code = (
        "import threading, time\n"
        "threading.Thread(target=input, args=('? ',), daemon=True).start()\n"
        "end = time.time() + 5\n"
        "while time.time() < end:\n"
        "    pass\n"
        "print('escaped the limit')\n"
    )
    async with running_app(time_limit=1.5) as h:
        t = await h.run(code)  # nobody answers: the thread waits, the main thread works
    assert t.complete["status"] == "timeout", t.events
    assert "escaped" not in t.output
