"""What the Redis hop costs: first output and input round trip for a client on the
instance that owns the session, and for one on another instance (scale-out).

    .venv/bin/python -m bench.cluster_hop [--runs 30]

Needs redis-server (Debian package); starts its own on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp
import socketio

from tests.servers import codex_process, redis_server

PROGRAM = (
    "import sys\n"
    "print('hi', flush=True)\n"
    "for line in sys.stdin:\n"
    "    print(line.strip(), flush=True)\n"
)


async def measure(creator: str, joiner: str, runs: int, answers: int) -> dict[str, Any]:
    first: list[float] = []
    round_trips: list[float] = []
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient()
        await sio.connect(joiner)
        for _ in range(runs):
            queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
            sio.handlers["/"] = {
                "output": lambda d, q=queue: q.put_nowait(("output", time.perf_counter())),
                "execution_complete": lambda d, q=queue: q.put_nowait(("end", 0.0)),
            }
            t0 = time.perf_counter()
            async with http.post(creator + "/api/execute", json={"code": PROGRAM}) as r:
                session_id = (await r.json())["sessionId"]
            await sio.emit("join", {"sessionId": session_id})
            _, t1 = await asyncio.wait_for(queue.get(), 20)
            first.append((t1 - t0) * 1000)
            for n in range(answers):
                t2 = time.perf_counter()
                await sio.emit("input", {"input": f"echo {n}"})
                _, t3 = await asyncio.wait_for(queue.get(), 20)
                round_trips.append((t3 - t2) * 1000)
            await sio.emit("eof", {})
            while (await asyncio.wait_for(queue.get(), 20))[0] != "end":
                pass
            await asyncio.sleep(0.3)  # let the pool refill: measure the hop, not misses
        await sio.disconnect()
    return {
        "first_output_ms_p50": round(statistics.median(first), 1),
        "input_round_trip_ms_p50": round(statistics.median(round_trips), 1),
        "runs": runs,
    }


async def main(runs: int) -> None:
    async with redis_server() as url:
        flags = ("--redis-url", url, "--rate-limit-execute", "", "--rate-limit-join", "")
        async with codex_process(*flags) as a, codex_process(*flags) as b:
            await measure(b.base_url, a.base_url, 3, 1)  # warm both paths up
            await measure(b.base_url, b.base_url, 3, 1)
            results: dict[str, list[dict[str, Any]]] = {"owner": [], "other": []}
            for _ in range(4):  # interleaved, so drift hits both alike
                results["owner"].append(await measure(b.base_url, b.base_url, runs // 4, 5))
                results["other"].append(await measure(b.base_url, a.base_url, runs // 4, 5))
    table = {
        name: {
            key: round(statistics.median(r[key] for r in rows), 1)
            for key in ("first_output_ms_p50", "input_round_trip_ms_p50")
        }
        for name, rows in (
            ("client on the owner", results["owner"]),
            ("client on another instance", results["other"]),
        )
    }
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
