"""Class start: N learners press Run within one second; and sustained executions per
second with a few clients running back to back, beside bare `docker run` throughput
measured in the same run.

    python -m bench.burst [--learners 40] [--spread 1.0] [--sustain-seconds 20]

Each learner has its own address (X-Forwarded-For through a trusted proxy: the
server is told 127.0.0.1 is one), its own Socket.IO connection, opened before the
burst as a page is (``--connect-in-burst``: opened at the moment of Run), and runs a
program that prints a line and asks one ``input()``. Times are from the POST to the
first ``output`` and to ``input_required``; a failure is any learner that did not get
201, its line, its prompt and an ``ok`` verdict after answering.

Every wait is bounded; all traffic goes to loopback. Results: a table on stdout and
JSON in bench/results/burst-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench import engine
from bench.serverproc import RESULTS, CpuMeter, codex_server

PROGRAM = 'print("hello", flush=True)\nname = input("name? ")\nprint("bye", name)\n'
HELLO = 'print("hi")'
WAIT = 60.0  # seconds any one learner may take, end to end, before it counts as failed


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "max": max(values) if values else None,
    }


def address(i: int) -> str:
    """Learner i's address: each in its own /24, as learners at home are."""
    return f"10.{i // 250}.{i % 250}.7"


class Learner:
    def __init__(self, base: str, addr: str) -> None:
        self.base = base
        self.headers = {"X-Forwarded-For": addr}
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.session_id = ""
        self.first_output: float | None = None
        self.prompt: float | None = None
        self.queued: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.result: dict[str, Any] | None = None
        self.failure = ""
        self._prompted = asyncio.Event()
        self._done = asyncio.Event()
        self.sio.on("output", self._output)
        self.sio.on("input_required", self._input_required)
        self.sio.on("execution_complete", self._complete)
        self.sio.on("queued", self.queued.append)

    async def connect(self) -> None:
        await self.sio.connect(self.base, headers=self.headers, wait_timeout=20)

    async def _output(self, data: dict[str, Any]) -> None:
        if self.first_output is None:
            self.first_output = time.perf_counter()
        self.text.append(str(data.get("output", "")))

    async def _input_required(self, data: dict[str, Any]) -> None:
        if self.prompt is None:
            self.prompt = time.perf_counter()
        self._prompted.set()

    async def _complete(self, data: dict[str, Any]) -> None:
        self.result = data
        self._done.set()

    async def run(self, http: aiohttp.ClientSession, connect: bool) -> float:
        """Press Run; returns when the POST was sent (the times count from it)."""
        if connect:
            await self.connect()
        t0 = time.perf_counter()
        async with http.post(
            self.base + "/api/execute", json={"code": PROGRAM}, headers=self.headers
        ) as r:
            body = await r.json()
        if r.status != 201:
            self.failure = f"POST {r.status} {body.get('code')}"
            return t0
        self.session_id = body["sessionId"]
        await self.sio.emit("join", {"sessionId": self.session_id})
        await asyncio.wait_for(self._prompted.wait(), WAIT)
        await self.sio.emit("input", {"sessionId": self.session_id, "input": "ada"})
        await asyncio.wait_for(self._done.wait(), WAIT)
        text = "".join(self.text)
        status = (self.result or {}).get("status")
        if status != "ok" or "hello" not in text or "bye ada" not in text:
            self.failure = f"status {status}, output {text[-80:]!r}"
        return t0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.disconnect(), 10)


async def burst(
    base: str, pid: int, n: int, spread: float, connect_in_burst: bool, warning: float
) -> dict[str, Any]:
    rng = random.Random(15)
    learners = [Learner(base, address(i)) for i in range(n)]
    if not connect_in_burst:
        await asyncio.gather(*(lr.connect() for lr in learners))
        await asyncio.sleep(warning)  # pages open; then the teacher says "Run"
    ready = await asyncio.to_thread(engine.containers_of, engine.api(), pid)
    offsets = sorted(rng.uniform(0, spread) for _ in learners)
    timeout = aiohttp.ClientTimeout(total=WAIT)
    starts: dict[int, float] = {}
    async with aiohttp.ClientSession(timeout=timeout) as http:
        t_burst = time.perf_counter()

        async def one(i: int, lr: Learner) -> None:
            await asyncio.sleep(offsets[i])
            t0 = time.perf_counter()
            starts[i] = t0
            try:
                starts[i] = await lr.run(http, connect_in_burst)
            except Exception as exc:  # a timeout, a refused connection: a failure
                lr.failure = lr.failure or repr(exc)

        await asyncio.wait_for(asyncio.gather(*(one(i, lr) for i, lr in enumerate(learners))), 300)
        span = time.perf_counter() - t_burst
    first = [
        (lr.first_output - starts[i]) * 1000
        for i, lr in enumerate(learners)
        if lr.first_output is not None and not lr.failure
    ]
    prompt = [
        (lr.prompt - starts[i]) * 1000
        for i, lr in enumerate(learners)
        if lr.prompt is not None and not lr.failure
    ]
    failures = [lr.failure for lr in learners if lr.failure]
    queued = sum(1 for lr in learners if lr.queued)
    for lr in learners:
        await lr.close()
    return {
        "learners": n,
        "spread_seconds": spread,
        "warning_seconds": 0 if connect_in_burst else warning,
        "ready_at_burst": ready,
        "connect_in_burst": connect_in_burst,
        "first_output_ms": summary(first),
        "input_required_ms": summary(prompt),
        "failures": len(failures),
        "failure_examples": failures[:5],
        "queued": queued,
        "seconds_to_all_done": round(span, 2),
    }


async def sustained(base: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` clients, each running HELLO back to back for `seconds`."""
    done = 0
    lost = 0
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=WAIT)

    async def loop(i: int) -> None:
        nonlocal done, lost
        headers = {"X-Forwarded-For": address(1000 + i)}
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        ended: dict[str, asyncio.Future[dict[str, Any]]] = {}

        async def complete(data: dict[str, Any]) -> None:
            fut = ended.get(str(data.get("sessionId")))
            if fut is not None and not fut.done():
                fut.set_result(data)

        sio.on("execution_complete", complete)
        await sio.connect(base, headers=headers, wait_timeout=20)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while time.monotonic() < deadline:
                try:
                    async with http.post(
                        base + "/api/execute", json={"code": HELLO}, headers=headers
                    ) as r:
                        body = await r.json()
                    if r.status != 201:
                        lost += 1
                        await asyncio.sleep(0.1)
                        continue
                    fut = ended[body["sessionId"]] = asyncio.get_running_loop().create_future()
                    await sio.emit("join", {"sessionId": body["sessionId"]})
                    result = await asyncio.wait_for(fut, WAIT)
                    if result.get("status") == "ok":
                        done += 1
                    else:
                        lost += 1
                except (TimeoutError, aiohttp.ClientError):
                    lost += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.disconnect(), 10)

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(loop(i) for i in range(clients))), seconds + 120)
    span = time.monotonic() - t0
    return {
        "clients": clients,
        "seconds": round(span, 1),
        "executions_ok": done,
        "lost": lost,
        "per_second": round(done / span, 2),
    }


def docker_run_throughput(clients: int, seconds: float) -> dict[str, Any]:
    """Bare `docker run --rm` of print("hi"), `clients` threads back to back."""
    client = engine.api()
    engine.remove_bench_containers(client)
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    def loop(i: int) -> None:
        c = engine.api()
        while time.monotonic() < deadline:
            engine.docker_run_ms(c)
            counts[i] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    span = time.monotonic() - t0
    single = [engine.docker_run_ms(client) for _ in range(5)]
    return {
        "clients": clients,
        "runs": sum(counts),
        "per_second": round(sum(counts) / span, 2),
        "single_run_ms_median": round(statistics.median(single), 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", type=int, default=40)
    p.add_argument("--spread", type=float, default=1.0, help="seconds over which they press Run")
    p.add_argument("--bursts", type=int, default=3, help="bursts, a fresh server each")
    p.add_argument("--connect-in-burst", action="store_true", help="no page open before Run")
    p.add_argument("--warning", type=float, default=10.0, help="seconds between pages open and Run")
    p.add_argument("--sustain-clients", type=int, default=4)
    p.add_argument("--sustain-seconds", type=float, default=20.0)
    p.add_argument("--only", default="burst,sustained,floor")
    p.add_argument(
        "--server-flag", action="append", default=[], help="extra `python -m codex` flag"
    )
    args = p.parse_args(argv)
    parts = set(args.only.split(","))
    flags = ["--trusted-proxies", "127.0.0.1", *args.server_flag]
    out: dict[str, Any] = {"args": vars(args)}
    if "burst" in parts:
        out["bursts"] = []
        for k in range(args.bursts):
            with codex_server(*flags, name="burst") as (base, pid):
                time.sleep(8)  # the pool filled, the server idle: a lesson about to start
                meter = CpuMeter(pid)
                res = asyncio.run(
                    burst(
                        base, pid, args.learners, args.spread, args.connect_in_burst, args.warning
                    )
                )
                res["server_cpu"] = meter.stop()
            out["bursts"].append(res)
            fo, ir = res["first_output_ms"], res["input_required_ms"]
            print(
                f"burst {k + 1}: {args.learners} learners in {args.spread:g} s: first output"
                f" p50 {fo['p50'] or 0:.0f} ms p95 {fo['p95'] or 0:.0f} ms; input_required"
                f" p50 {ir['p50'] or 0:.0f} ms p95 {ir['p95'] or 0:.0f} ms; failures"
                f" {res['failures']} {res['failure_examples'][:2]}; queued {res['queued']};"
                f" ready at the burst {res['ready_at_burst']}",
                flush=True,
            )
    if "sustained" in parts:
        with codex_server(*flags, name="sustained") as (base, pid):
            time.sleep(8)
            meter = CpuMeter(pid)
            out["sustained"] = asyncio.run(
                sustained(base, args.sustain_clients, args.sustain_seconds)
            )
            out["sustained"]["server_cpu"] = meter.stop()
        s = out["sustained"]
        print(
            f"sustained: {s['per_second']:.1f} executions/s with {s['clients']} clients"
            f" ({s['executions_ok']} ok, {s['lost']} lost)",
            flush=True,
        )
    if "floor" in parts:
        out["docker_run"] = docker_run_throughput(args.sustain_clients, args.sustain_seconds)
        d = out["docker_run"]
        print(
            f"floor: bare docker run {d['per_second']:.1f}/s with {d['clients']} threads;"
            f" one run {d['single_run_ms_median']:.0f} ms",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = Path(RESULTS) / f"burst-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
