"""Soak: a few thousand sessions against one `python -m codex`, bounded in count and
time, with the server's cyclic GC off; prints its fds and RSS (and dockerd's fds) at
the baseline and at the end.

    .venv/bin/python -m bench.soak                       # 2000 sessions, 8 at a time
    .venv/bin/python -m bench.soak --sessions 5000 --concurrency 16 --max-seconds 900

Resources a session holds must be released when it ends, explicitly: with the GC off
a leaked exec stream shows as one fd per session in the server and one in dockerd.
The server runs in its own process (its numbers are not blurred by the clients), on a
free loopback port, started by its pid and stopped by it (SIGTERM: it removes its
containers). Exit status 1 when the end is more than 10 % (fds: 10 % or 8) above
the baseline or a session failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

import aiohttp
import socketio

from bench.serverproc import BENCH_ENV, LOOPBACK, ROOT, _stop, free_port

# The server with its cyclic collector off from the first line.
LAUNCH = (
    "import gc, runpy, sys; gc.disable(); sys.argv[0] = 'codex'; "
    "runpy.run_module('codex', run_name='__main__', alter_sys=True)"
)
PROGRAMS: list[tuple[str, list[str], str]] = [
    ("print('hi')", [], "hi"),
    ("name = input('name? ')\nprint('hello', name)", ["ada"], "hello ada"),
    ("import sys\nsys.stdout.write('x' * 5000)\nraise SystemExit(3)", [], "xxxx"),
]


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def dockerd_fds() -> int:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, timeout=10)
    pids = out.stdout.split()
    try:
        return fds(int(pids[0])) if pids else -1
    except OSError:  # not ours to read
        return -1


def measure(pid: int) -> dict[str, int]:
    return {"fds": fds(pid), "rss_kb": rss_kb(pid), "dockerd_fds": dockerd_fds()}


def wait_quiet(base: str, seconds: float) -> None:
    """Until no session runs and the pool is full (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                body = json.loads(r.read() or b"{}")
        except (OSError, ValueError):
            body = {}
        if not body or (body.get("running", 0) == 0):
            break
        time.sleep(0.2)
    time.sleep(2.0)  # finished sessions expire (session_ttl 1 s), removals land


async def run_sessions(base: str, count: int, concurrency: int, deadline: float) -> list[str]:
    failures: list[str] = []
    next_k = iter(range(count))
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(http: aiohttp.ClientSession) -> None:
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(base, wait_timeout=10)
        try:
            for k in next_k:
                if time.monotonic() > deadline:
                    return
                code, answers, expected = PROGRAMS[k % len(PROGRAMS)]
                pending = list(answers)
                out: list[str] = []
                done = asyncio.Event()

                async def on_any(
                    event: str,
                    data: Any = None,
                    out: list[str] = out,
                    pending: list[str] = pending,
                    done: asyncio.Event = done,
                ) -> None:
                    if event == "output":
                        out.append(data["output"])
                    elif event == "input_required" and pending:
                        await sio.emit("input", {"input": pending.pop(0)})
                    elif event == "execution_complete":
                        done.set()

                sio.on("*", on_any)
                async with http.post(
                    base + "/api/execute", json={"code": code, "language": "python"}
                ) as resp:
                    body = await resp.json()
                if resp.status != 201:
                    failures.append(f"{k}: HTTP {resp.status} {body}")
                    continue
                await sio.emit("join", {"sessionId": body["sessionId"]})
                try:
                    await asyncio.wait_for(done.wait(), 30)
                except TimeoutError:
                    failures.append(f"{k}: no execution_complete")
                    continue
                if expected not in "".join(out):
                    failures.append(f"{k}: output {''.join(out)[:80]!r}")
        finally:
            await sio.disconnect()

    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--max-seconds", type=float, default=600.0, help="stop the soak then")
    args = ap.parse_args()

    port = free_port()
    env = {
        **os.environ,
        **BENCH_ENV,
        "CODEX_SESSION_TTL": "1",
        "CODEX_MAX_SESSIONS": str(max(64, 2 * args.concurrency + 8)),
    }
    cmd = [sys.executable, "-c", LAUNCH, "--port", str(port), "--host", LOOPBACK]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        loop_deadline = time.monotonic() + args.max_seconds
        failures = asyncio.run(run_sessions(base, args.warmup, args.concurrency, loop_deadline))
        wait_quiet(base, 30)
        before = measure(proc.pid)
        t0 = time.monotonic()
        failures += asyncio.run(run_sessions(base, args.sessions, args.concurrency, loop_deadline))
        elapsed = time.monotonic() - t0
        wait_quiet(base, 30)
        after = measure(proc.pid)
    finally:
        _stop(proc)
    print(f"sessions: {args.sessions} requested, {elapsed:.1f} s, failures {len(failures)}")
    for name in ("fds", "rss_kb", "dockerd_fds"):
        b, a = before[name], after[name]
        change = f"{(a - b) / b * 100:+.1f} %" if b > 0 else "n/a"
        print(f"  {name:12} baseline {b:>8}  end {a:>8}  ({change})")
    for line in failures[:10]:
        print("  failure:", line)
    ok = (
        not failures
        and after["fds"] <= max(before["fds"] * 1.10, before["fds"] + 8)
        and after["rss_kb"] <= before["rss_kb"] * 1.10
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
