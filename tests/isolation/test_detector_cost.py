"""Two sessions parking 60 threads each in select() on every descriptor they can open
(nfds 1024, nofile 256) must not cost the server: it stays under a quarter of a core,
and sessions beside them (`print('hi')`, an `input()` answered by the client) are right
and about as fast as without them. Reported before the bound: 93 % CPU, victims 30x
slower (one poll of such a session took ~430 ms of the event loop)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import pytest

from tests.e2e.test_detector import PARKER
from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=240)]

TICKS = os.sysconf("SC_CLK_TCK")
VICTIMS = 6  # runs of each victim, before and during the attack
ATTACKER = 'import sys\nsys.argv[1:] = ["60", "none"]\n' + PARKER


def _process_cpu() -> float:
    """CPU seconds of this process, every thread: the server runs in it."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def _first_output(h: Harness, code: str, answers: list[str]) -> tuple[float, Any]:
    """Seconds from POST to the first output at a client that joined right after it,
    and the transcript."""
    first: list[float] = []

    async def on_event(event: str, data: Any) -> None:
        if event == "output" and not first:
            first.append(time.monotonic())

    async with h.client() as sio:
        t0 = time.monotonic()
        session_id = await h.execute(code)
        transcript = await h.follow(session_id, answers, sio=sio, timeout=60, on_event=on_event)
    assert first, transcript.events
    return first[0] - t0, transcript


async def _victims(h: Harness) -> list[float]:
    latencies = []
    for _ in range(VICTIMS):
        seconds, t = await _first_output(h, "print('hi')", [])
        assert t.complete["status"] == "ok", t.events
        assert "hi" in t.output
        latencies.append(seconds)
        seconds, t = await _first_output(h, "x = input('name? ')\nprint('got', x)", ["bob"])
        assert [e["prompt"] for e in t.named("input_required")] == ["name? "], t.events
        assert t.complete["status"] == "ok", t.events
        assert "got bob" in t.output
        latencies.append(seconds)
    return latencies


async def test_threads_parked_in_select_do_not_slow_the_server() -> None:
    async with running_app(time_limit=120, rate_limit_execute="", rate_limit_join="") as h:
        await _victims(h)  # warm-up: the pool, the image's page cache
        quiet = await _victims(h)

        attackers = []
        attacker_ids = []
        readiness = []
        for _ in range(2):
            ready = asyncio.Event()
            readiness.append(ready)

            async def on_event(event: str, data: Any, ready: asyncio.Event = ready) -> None:
                if event == "output" and "ready" in data["output"]:
                    ready.set()

            session_id = await h.execute(ATTACKER)
            attacker_ids.append(session_id)
            attackers.append(
                asyncio.ensure_future(h.follow(session_id, on_event=on_event, timeout=200))
            )
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readiness)), 60)
        for session_id in attacker_ids:
            state = (await h.request("GET", f"/api/sessions/{session_id}")).body
            assert state["state"] == "running", state
            lines = " ".join(state["screen"]["lines"])
            threads = int(lines.split("ready", 1)[1].split()[1])
            assert threads >= 55, lines  # pids_limit 64: supervisor, main, ~60 parked
            assert not state["waitingForInput"], state
        await asyncio.sleep(1.5)  # past the first polls, which resolve every descriptor

        t0, c0 = time.monotonic(), _process_cpu()
        await asyncio.sleep(4)
        share = (_process_cpu() - c0) / (time.monotonic() - t0)
        attacked = await _victims(h)

        for session_id in attacker_ids:
            await h.request("DELETE", f"/api/sessions/{session_id}")
        done = await asyncio.wait_for(asyncio.gather(*attackers), 60)
        assert all(t.complete["status"] == "cancelled" for t in done)

    base = statistics.median(quiet)
    during = statistics.median(attacked)
    print(
        f"server CPU {share:.1%} of a core; first output {base * 1000:.0f} ms quiet, "
        f"{during * 1000:.0f} ms under attack (medians); runs (ms): "
        f"{[round(x * 1000) for x in quiet]} / {[round(x * 1000) for x in attacked]}"
    )
    assert share < 0.25, share
    # Wide margins for a shared machine (before the bound: 30x); bench/hostile.py
    # measures the 3x target.
    assert during <= 3 * base + 0.5, (quiet, attacked)
    assert max(attacked) <= 3 * max(quiet) + 1.0, (quiet, attacked)
