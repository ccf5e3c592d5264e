"""What one finished session holds until it expires: heap and objects for the cyclic
collector to walk, in process, on the real engine.

    .venv/bin/python -m bench.finished_cost [--sessions 40]

Runs `--sessions` programs that ask for input (answered) through a SessionRegistry
and the Docker runtime in this process, waits for their removals, then reads
tracemalloc and gc.get_objects() before and after expiring them all: the difference
per session is what a finished session costs beyond what expiry leaves (the engine
client's connection pool and threads stay, warm). Bounded: each session at most 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import tracemalloc

from codex.config import Settings
from codex.runtime.docker.runtime import DockerRuntime
from codex.sessions.registry import ExecuteRequest, SessionRegistry
from codex.sessions.session import Session

PROGRAM = "name = input('name? ')\nprint('hello', name)"


async def one(reg: SessionRegistry) -> Session:
    s = await reg.create(ExecuteRequest(PROGRAM))
    for _ in range(600):
        if s.waiting is not None or s.finished:
            break
        await asyncio.sleep(0.01)
    if not s.finished:
        await s.send_input("ada")
    await asyncio.wait_for(s.wait(), 60)
    return s


def expire_all(reg: SessionRegistry, ids: list[str]) -> None:
    for sid in ids:
        reg._expire(sid)
    reg._finished_order.clear()


async def measure(n: int) -> None:
    settings = dataclasses.replace(Settings(), session_ttl=3600, max_finished_sessions=n + 10)
    runtime = DockerRuntime(settings)
    await runtime.startup()
    try:
        reg = SessionRegistry(settings, runtime)
        warm = [(await one(reg)).id for _ in range(3)]  # imports, connections, threads
        expire_all(reg, warm)
        await asyncio.sleep(2)
        gc.collect()
        tracemalloc.start()
        sessions = [await one(reg) for _ in range(n)]
        statuses = sorted({str((s.result or {}).get("status")) for s in sessions})
        await asyncio.sleep(2)  # the last removals
        gc.collect()
        held_objects = len(gc.get_objects())  # counted before a snapshot adds its own
        held = tracemalloc.take_snapshot()
        ids = [s.id for s in sessions]
        del sessions
        expire_all(reg, ids)
        await asyncio.sleep(0.5)
        gc.collect()
        left_objects = len(gc.get_objects())
        left = tracemalloc.take_snapshot()
        per = sum(st.size_diff for st in held.compare_to(left, "filename")) / n
        print(
            f"{n} finished sessions ({statuses}): each holds {per / 1000:.1f} KB of heap and "
            f"{(held_objects - left_objects) / n:.0f} GC-tracked objects until it expires"
        )
    finally:
        await runtime.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=40)
    asyncio.run(measure(p.parse_args().sessions))


if __name__ == "__main__":
    main()
