"""Faults (real Docker): the engine restarted during a run, and the server killed and
started again. Marked ``fault``: tests/conftest.py runs them after every other test, as
one of them restarts the engine."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.harness import running_app
from tests.servers import codex_process

pytestmark = [pytest.mark.docker, pytest.mark.fault, pytest.mark.gen_test(timeout=240)]

ROOT = Path(__file__).resolve().parents[2]


def _dockerd_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _stop_engine() -> None:
    for pid in _dockerd_pids():
        subprocess.run(["kill", "-TERM", str(pid)], check=False)
    for _ in range(300):
        if not _dockerd_pids():
            return
        subprocess.run(["sleep", "0.1"], check=False)
    raise AssertionError("dockerd did not stop")


def _start_engine() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], check=True, timeout=120)


async def test_the_engine_restarted_during_a_run() -> None:
    if not _dockerd_pids():
        pytest.skip("this engine is not a dockerd of this machine that the test may restart")
    loop = asyncio.get_running_loop()
    async with running_app(pool_size=0) as h:
        session_id = await h.execute("import time\nprint('up', flush=True)\ntime.sleep(120)\n")
        assert await containers_of_soon(session_id)
        await asyncio.sleep(0.5)
        try:
            await loop.run_in_executor(None, _stop_engine)
            state = await h.wait_finished(session_id, timeout=60)
            assert state["result"]["status"] == "internal_error"
            await asyncio.sleep(2.5)  # past the readiness cache
            down = await h.request("GET", "/readyz")
            assert down.status == 503 and "Docker engine" in down.body["reason"]
            refused = await h.request("POST", "/api/execute", {"code": "print(1)"})
            assert refused.status == 503
            assert (await h.request("GET", "/healthz")).status == 200
        finally:
            await loop.run_in_executor(None, _start_engine)
        for _ in range(100):
            if (await h.request("GET", "/readyz")).status == 200:
                break
            await asyncio.sleep(0.2)
        t = await h.run("print('back')")  # the server recovered with the engine
        assert t.complete["status"] == "ok" and t.output == "back\r\n"
        await assert_gone_soon(session_id, within=10)  # the dead run's container too


async def test_a_killed_server_leaves_nothing_after_its_next_start() -> None:
    async with codex_process("--pool-size", "2") as first:
        h = first.harness
        session_id = await h.execute("import time\ntime.sleep(120)\n")
        assert await containers_of_soon(session_id)
        first.kill()  # no cleanup at all
        await first.proc.wait()
    assert await containers_of_soon(session_id)  # still there: nobody removed it
    async with codex_process("--pool-size", "0"):
        await assert_gone_soon(session_id, within=5)
