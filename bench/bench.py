"""CodeX benchmarks: one command, a table on stdout, JSON in bench/results/.

    .venv/bin/python -m bench.bench [--runs 20] [--only first_output,detection,idle]

Not part of `make test`: timings are measurements, not pass/fail conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from typing import Any

import aiohttp
import socketio

from bench.serverproc import ROOT, codex_server, cpu_seconds, rss_bytes

RESULTS = ROOT / "bench" / "results"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": pct(values, 0.95),
        "min": min(values),
        "max": max(values),
    }


async def first_output(base: str, runs: int) -> list[float]:
    """ms from sending POST /api/execute to the first `output` event (the seed flow)."""
    times: list[float] = []
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient()
        await sio.connect(base)
        for _ in range(runs):
            got = asyncio.get_running_loop().create_future()
            done = asyncio.Event()
            sio.handlers["/"] = {
                "output": lambda d, f=got: f.done() or f.set_result(time.perf_counter()),
                "execution_complete": lambda d, e=done: e.set(),
            }
            t0 = time.perf_counter()
            async with http.post(base + "/api/execute", json={"code": 'print("hi")'}) as r:
                session_id = (await r.json())["sessionId"]
            await sio.emit("join", {"sessionId": session_id})
            t1 = await asyncio.wait_for(got, 20)
            await asyncio.wait_for(done.wait(), 20)
            times.append((t1 - t0) * 1000)
            await asyncio.sleep(0.05)
        await sio.disconnect()
    return times


DETECTION_PROGRAM = """
import time
for i in range({n}):
    time.sleep(0.02)
    input("%.6f> " % time.time())
"""


async def detection_latency(base: str, questions: int) -> list[float]:
    """ms from the program starting its read (its own clock, printed in the prompt) to
    the `input_required` event at the client. Same machine, same clock."""
    latencies: list[float] = []
    done = asyncio.Event()
    sio = socketio.AsyncClient()

    async def on_input(data: dict[str, Any]) -> None:
        now = time.time()
        latencies.append((now - float(data["prompt"].rstrip("> "))) * 1000)
        await sio.emit("input", {"input": "x"})

    sio.on("input_required", on_input)
    sio.on("execution_complete", lambda d: done.set())
    await sio.connect(base)
    async with aiohttp.ClientSession() as http:
        code = DETECTION_PROGRAM.format(n=questions)
        body = {"code": code}
        async with http.post(base + "/api/execute", json=body) as r:
            session_id = (await r.json())["sessionId"]
    await sio.emit("join", {"sessionId": session_id})
    await asyncio.wait_for(done.wait(), 120)
    await sio.disconnect()
    return latencies


async def idle_cost(
    base: str, pid: int, sessions: int, seconds: float, code: str
) -> dict[str, Any]:
    """Server CPU while `sessions` programs wait (blocked on input, or asleep)."""
    async with aiohttp.ClientSession() as http:
        ids = []
        for _ in range(sessions):
            async with http.post(base + "/api/execute", json={"code": code}) as r:
                ids.append((await r.json())["sessionId"])
        await asyncio.sleep(5)  # all started, settled, and the pool refilled
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        rss = rss_bytes(pid)
        for session_id in ids:
            await http.delete(f"{base}/api/sessions/{session_id}")
    cpu_percent = (c1 - c0) / (t1 - t0) * 100
    return {
        "sessions": sessions,
        "server_cpu_percent_of_one_core": round(cpu_percent, 2),
        "per_session_cpu_percent": round(cpu_percent / sessions, 3),
        "server_rss_mb": round(rss / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--idle-sessions", type=int, default=20)
    parser.add_argument("--only", default="first_output,detection,idle")
    args = parser.parse_args()
    only = set(args.only.split(","))
    out: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()}",
        "when": time.time(),
    }
    if "first_output" in only:
        with codex_server("--pool-size", "0") as (base, _):
            out["first_output_ms_pool_off"] = summary(asyncio.run(first_output(base, args.runs)))
    with codex_server("--max-sessions", "200", "--time-limit", "600") as (base, pid):
        if "first_output" in only:
            out["first_output_ms_pool_on"] = summary(asyncio.run(first_output(base, args.runs)))
        if "detection" in only:
            out["detection_ms"] = summary(asyncio.run(detection_latency(base, args.questions)))
        if "idle" in only:
            out["idle_waiting_input"] = asyncio.run(
                idle_cost(base, pid, args.idle_sessions, 10, "input('? ')")
            )
            out["idle_sleeping"] = asyncio.run(
                idle_cost(base, pid, args.idle_sessions, 10, "import time\ntime.sleep(600)")
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{int(time.time())}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
