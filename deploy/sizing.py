"""Measure what N concurrent sessions cost on one host (the numbers in
docs/deployment.md, "Sizing").

    .venv/bin/python deploy/sizing.py --base http://127.0.0.1:8000 --server-pid PID [-n 100]

Starts N sessions of a program that waits for input (the common idle state of a
learner's program), waits until every one is running and waiting, then samples for
10 s: the server's CPU and RSS (from /proc/PID; with a containerized server, its host
PID is `docker inspect -f '{{.State.Pid}}' NAME`), the sandbox containers' memory as
their cgroups count it, and the RSS of the engine's processes (dockerd, containerd,
one containerd-shim per container). Then it deletes the sessions. Run it on the
engine's host, as root, on a machine where nothing else starts containers meanwhile
(the engine numbers are differences). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

PROGRAMS = {
    "input": "name = input('Your name? ')\nprint('hi', name)\n",
    "sleep": "import time\nprint('working', end='', flush=True)\ntime.sleep(600)\n",
    "pandas": "import pandas, matplotlib.pyplot\nname = input('Your name? ')\n",
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (the shim binary) split between sharers."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return rss_kib(pid)


def engine_rss_mib() -> dict[str, float]:
    """Memory (PSS) of the engine's processes by name (MiB), and how many shims."""
    totals: dict[str, float] = {"dockerd": 0.0, "containerd": 0.0, "shims": 0.0, "shim_count": 0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            rss = pss_kib(int(entry.name)) / 1024
        except OSError:
            continue
        if comm == "dockerd":
            totals["dockerd"] += rss
        elif comm == "containerd":
            totals["containerd"] += rss
        elif comm.startswith("containerd-shim"):
            totals["shims"] += rss
            totals["shim_count"] += 1
    return totals


def container_memory_mib(session_ids: list[str]) -> list[float]:
    """Memory each session's container uses, as `docker stats` reports it."""
    names = [f"codex-{s}" for s in session_ids]
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    values = []
    for line in out.splitlines():
        match = re.match(r"\S+ ([\d.]+)([KMG]iB|B)", line)  # "codex-x 9.3MiB / 256MiB"
        if match:
            scale = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[match.group(2)]
            values.append(float(match.group(1)) * scale)
    return values


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--program", choices=sorted(PROGRAMS), default="input")
    args = parser.parse_args()
    result: dict[str, Any] = {"sessions": args.n, "program": args.program}
    code = PROGRAMS[args.program]
    before = engine_rss_mib()
    server_rss_before = rss_kib(args.server_pid) / 1024
    ids: list[str] = []
    async with aiohttp.ClientSession() as http:
        t0 = time.monotonic()
        for _ in range(args.n):
            async with http.post(args.base + "/api/execute", json={"code": code}) as r:
                body = await r.json()
                if r.status != 201:
                    raise SystemExit(f"execute: {r.status} {body}")
                ids.append(body["sessionId"])
        pending = set(ids)
        ended: dict[str, Any] = {}
        while pending and time.monotonic() - t0 < 300:
            for sid in list(pending):
                async with http.get(f"{args.base}/api/sessions/{sid}") as r:
                    state = await r.json()
                if state.get("state") == "finished":  # failed to start, or ended early
                    ended[sid] = state.get("result")
                    pending.discard(sid)
                    continue
                if state.get("waitingForInput") or (  # input and pandas: at input()
                    args.program == "sleep" and "working" in json.dumps(state.get("screen"))
                ):
                    pending.discard(sid)
            await asyncio.sleep(0.5)
        result["all_started_after_s"] = round(time.monotonic() - t0, 1)
        result["not_started"] = len(pending)
        result["ended_early"] = list(ended.values())
        ids = [i for i in ids if i not in ended]
        await asyncio.sleep(3)
        c0, w0 = cpu_seconds(args.server_pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        c1, w1 = cpu_seconds(args.server_pid), time.monotonic()
        after = engine_rss_mib()
        memory = container_memory_mib(ids)
        result["server_cpu_percent_of_one_core"] = round((c1 - c0) / (w1 - w0) * 100, 1)
        result["server_rss_mib"] = round(rss_kib(args.server_pid) / 1024, 1)
        result["server_rss_mib_before"] = round(server_rss_before, 1)
        if memory:
            result["container_memory_mib_mean"] = round(sum(memory) / len(memory), 1)
            result["container_memory_mib_max"] = round(max(memory), 1)
        result["engine_pss_mib_added"] = {
            k: round(after[k] - before[k], 1) for k in ("dockerd", "containerd", "shims")
        }
        result["shims_added"] = int(after["shim_count"] - before["shim_count"])
        t1 = time.monotonic()
        for sid in ids:
            await http.delete(f"{args.base}/api/sessions/{sid}")
        result["delete_all_s"] = round(time.monotonic() - t1, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
