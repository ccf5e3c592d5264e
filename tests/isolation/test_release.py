"""What a session holds is released when it ends, by the code, not by the cyclic GC.

A bounded soak through the real HTTP + Socket.IO path with the cyclic collector off for
its whole duration: the server's file descriptors, the Docker engine's descriptors
serving it, and its RSS end where they began.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import time
from typing import Any

import pytest

from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=600)]

SESSIONS = 300
CONCURRENCY = 4
PROGRAMS: list[tuple[str, list[str], str]] = [
    ("print('hi')", [], "hi\r\n"),
    ("name = input('name? ')\nprint('hello', name)", ["ada"], "hello ada"),
    ("import sys\nsys.stdout.write('x' * 5000)\nraise SystemExit(3)", [], "x" * 100),
]


def fd_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def dockerd_pid() -> int | None:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, timeout=10)
    pids = out.stdout.split()
    return int(pids[0]) if pids else None


def dockerd_fds_serving_us() -> int:
    """dockerd's descriptors whose peer is a socket of this process: the engine's half
    of every API connection and exec stream we hold."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            ours.add(m.group(1))
    out = subprocess.run(["ss", "-xpn"], capture_output=True, text=True, timeout=20).stdout
    count = 0
    for line in out.splitlines():
        if '"dockerd"' not in line:
            continue
        fields = line.split()
        # Netid State Recv-Q Send-Q Local Port Peer Port Process
        if len(fields) >= 8 and fields[7] in ours:
            count += 1
    return count


def snapshot() -> dict[str, int]:
    pid = dockerd_pid()
    return {
        "fds": fd_count(),
        "rss_kb": rss_kb(),
        "dockerd_fds": fd_count(pid) if pid else -1,
        "dockerd_fds_for_us": dockerd_fds_serving_us(),
    }


async def soak(h: Harness, count: int, concurrency: int) -> list[str]:
    """`count` sessions, `concurrency` at a time, each on a long-lived Socket.IO client
    (so the client's own churn does not blur the server's)."""
    failures: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for k in range(count):
        queue.put_nowait(k)

    async def worker() -> None:
        async with h.client() as sio:
            while not queue.empty():
                k = queue.get_nowait()
                code, answers, expected = PROGRAMS[k % len(PROGRAMS)]
                session_id = await h.execute(code)
                t = await h.follow(session_id, list(answers), sio=sio)
                if expected not in t.output or not t.named("execution_complete"):
                    failures.append(f"{k}: {t.output!r} {t.events[-1:]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


async def settle(h: Harness, timeout: float = 20) -> None:
    """Until every session has ended and the pool is back at its floor, full (it grew
    with the soak's rate of Run: its shrinking must release what it held too), with
    nothing the pool or the runtime starts or removes still in flight. (Without the
    last, a pool shrinking from its growth was "at its floor" while the containers it
    let go were still being removed: up to 9 descriptors over the baseline, which no
    leak was.)"""
    assert h.app is not None
    registry: Any = h.app.registry
    runtime: Any = h.app.runtime
    pool = runtime.pool
    deadline = time.monotonic() + timeout

    def busy() -> bool:
        if registry.running or len(runtime.tasks):
            return True
        return pool is not None and (pool.ready != pool.size or pool.in_flight > 0)

    while busy():
        assert time.monotonic() < deadline, "sessions did not end"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # finished sessions expire (session_ttl)


async def test_a_soak_ends_at_the_baseline_without_the_cyclic_gc() -> None:
    async with running_app(
        rate_limit_execute="",
        rate_limit_join="",
        max_sessions_per_ip=1000,
        session_ttl=1.0,  # finished sessions are forgotten quickly: what stays is a leak
        pool_linger=0.0,  # the pool grows with the soak's rate, and is back at once after
    ) as h:
        # Warm up: threads, the engine's connection pool, lazily built tables.
        failures = await soak(h, 40, CONCURRENCY)
        assert not failures, failures
        await settle(h)
        gc.collect()
        gc.disable()
        try:
            before = snapshot()
            t0 = time.monotonic()
            failures = await soak(h, SESSIONS, CONCURRENCY)
            elapsed = time.monotonic() - t0
            await settle(h)
            after = snapshot()
        finally:
            gc.enable()
        print(f"\n{SESSIONS} sessions in {elapsed:.1f} s, gc off: {before} -> {after}")
        assert not failures, failures[:5]
        # A leaked exec stream is one fd here and one in dockerd per session: 300 of
        # each. A few connections may come and go in the engine's client pool.
        assert after["fds"] <= before["fds"] + 6, (before, after)
        assert after["dockerd_fds_for_us"] <= before["dockerd_fds_for_us"] + 6, (before, after)
        assert after["rss_kb"] <= before["rss_kb"] * 1.10, (before, after)
        # dockerd's total also counts other clients of the same engine; it is checked
        # loosely (a leak would add about one per session).
        if before["dockerd_fds"] > 0:
            assert after["dockerd_fds"] <= before["dockerd_fds"] + SESSIONS // 4, (before, after)
