"""Hostile programs and clients against one CodeX server: what they cost it, and what
they cost the sessions beside them.

    .venv/bin/python -m bench.hostile                 # everything, about 4 minutes
    .venv/bin/python -m bench.hostile --only bytes    # (a) CPU per MB of hostile output
    .venv/bin/python -m bench.hostile --only victims --attacks detector,resize

(a) ``bytes``: for each hostile byte pattern, a program prints ~1 MB of it (under the
default 1 MiB output limit) on the largest terminal the server accepts; server CPU
(its threads' schedstat, to the ns) per MB, for the run, for a GET of the finished
session (its snapshot), and for a variant ending in ``input()`` (the prompt is
computed). Each run is preceded by a second's pause and followed by an idle session as
long as it (``time.sleep``, and an ``input()`` for the variant), whose CPU is
subtracted: a session's start, the pool's refill and the detector's looks are no cost
of its bytes. A run that does not end within --deadline is cancelled and the server
restarted; its figure is then a lower bound. Target: <= 50 ms per MB.

(b) ``victims``: first output of ``print('hi')`` (POST to the first ``output`` event at
a Socket.IO client, as bench.py's first_output) while each attack runs, p95 against
the p95 without attack. Target: <= 3x.

bench/README.md ("Hostile programs and clients") says more. Every server and client
is on 127.0.0.1; every attack is bounded in count and time. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import random
import re
import resource
import socket
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench import serverproc
from bench.bench import Report, SioClient, metrics_text, ms, summary
from bench.serverproc import RESULTS, codex_server, machine_info, thread_cpu_seconds

MB = 1e6
# The attacker is another learner: its own address (X-Forwarded-For through the trusted
# proxy 127.0.0.1), not the victims' 127.0.0.1, which would make it one client with them
# for every per-client rule (the pool's share above all).
ATTACKER = {"X-Forwarded-For": "203.0.113.66"}
CHURN_SECONDS = 60  # the longest a churn attack lasts
CHURN_PER_ADDRESS = 2000  # and the most executions each of its addresses creates
# 0: every victim run from the bench's own address (a class behind one NAT, 3.3 runs a
# second from one network); N: each run from the next of N networks (--victim-networks).
VICTIM_NETWORKS = [0]
CHURN_RATE = [0.0]  # creates a second, all addresses together (0: back to back); --churn-rate
SIZE_CAP = 1000  # the size a hostile client asks for (rows and cols)
PAYLOAD = 1_000_000  # bytes a pattern writes: under the default 1 MiB output limit
SERVER_FLAGS = (
    "--time-limit", "60",
    "--max-sessions", "64",
    "--trusted-proxies", "127.0.0.1",
    "--session-ttl", "60",
)  # fmt: skip

# -- (a) the byte patterns ----------------------------------------------------------------
# Each is Python run in the sandbox: an expression for the bytes, and how they are written.
_RNG = "__import__('random').Random(7)"
PATTERNS: dict[str, str] = {
    "plain ASCII": "(b'x' * 99 + b'\\n') * 9900",
    "one-byte writes": "b'x' * 500_000",  # 0.5 MB, one write(2) per byte
    "DECALN ESC#8": "b'\\x1b#8' * 333_333",
    "clear ESC[2J": "b'\\x1b[2J' * 250_000",
    "combining U+0301": "(b'e' + '\\u0301'.encode() * 30_000) * 16",
    "alt screen on/off": "b'\\x1b[?1049h\\x1b[?1049l' * 62_500",
    "long CSI params": "(b'\\x1b[' + b';'.join([b'1'] * 5000) + b'm') * 100",
    "cursor to random": (
        f"b''.join(b'\\x1b[%d;%dHx' % (r.randrange(1, 1001), r.randrange(1, 1001))"
        f" for r in [{_RNG}] for _ in range(90_000))"
    ),
    "wide CJK": "'中'.encode() * 333_333",
    "invalid UTF-8": "bytes([0xff, 0xc3, 0x28, 0xe2, 0x82]) * 200_000",
    "OSC unterminated": "b'\\x1b]0;' + b'A' * 999_000",
    "CR overwrites": "(b'x' * 999 + b'\\r') * 1000",
    "insert/delete lines": "b'\\x1b[999L\\x1b[999M' * 62_500",
    "erase/repeat chars": "b'x\\x1b[999X\\x1b[999b\\x1b[999@' * 55_000",
}
WRITER = """import os, sys
data = {expr}
if {one_byte}:
    for i in range(len(data)):
        os.write(1, data[i:i + 1])
else:
    for i in range(0, len(data), 65536):
        os.write(1, data[i:i + 65536])
"""
BASELINE = "print('')"


def pattern_program(name: str, prompt: bool) -> str:
    code = WRITER.format(expr=PATTERNS[name], one_byte=name == "one-byte writes")
    return code + ("input('? ')\n" if prompt else "")


def pattern_bytes(name: str) -> int:
    return len(eval(PATTERNS[name], {"__import__": __import__}))  # our own constants


# Threads parked in select() on every descriptor (nfds 1024, nofile 256), none of them
# the terminal (tests/e2e/test_detector.py has the same program).
PARKER = r"""
import ctypes, os, threading, time
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
os.dup2(r, 0)
n = 0
try:
    while True:
        os.dup(r)
        n += 1
except OSError:
    pass
bits = bytearray([0xFF] * 128)
bits[0] &= ~0b110  # not 1, 2: the terminal
def park():
    libc.select(1024, ctypes.create_string_buffer(bytes(bits), 128), None, None, None)
threads = 0
for _ in range(60):
    try:
        threading.Thread(target=park, daemon=True).start()
        threads += 1
    except RuntimeError:
        break
print("ready", n, threads, flush=True)
time.sleep(50)
"""
SCREENFUL = "print(('y' * 999 + '\\n') * 999, end='', flush=True)\nimport time\ntime.sleep(50)\n"
LOUD = "import sys, time\nsys.stdout.write('z' * 900_000)\nsys.stdout.flush()\ntime.sleep(50)\n"


# -- the server ---------------------------------------------------------------------------


class Server:
    """A `python -m codex` that can be restarted (after a run it could not finish)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack = contextlib.ExitStack()
        self.base = ""
        self.pid = 0
        self.restarts = 0

    def start(self) -> None:
        self.base, self.pid = self.stack.enter_context(codex_server(*SERVER_FLAGS, name=self.name))

    def restart(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.restarts += 1
        self.start()

    def close(self) -> None:
        self.stack.close()

    def cpu(self) -> float:
        return thread_cpu_seconds(self.pid)


async def post(
    http: aiohttp.ClientSession,
    base: str,
    code: str,
    size: tuple[int, int] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"code": code, **(extra or {})}
    if size is not None:
        body["rows"], body["cols"] = size
    async with http.post(base + "/api/execute", json=body, headers=headers or {}) as r:
        try:
            data = await r.json()
        except (aiohttp.ContentTypeError, json.JSONDecodeError):
            data = {}
        return r.status, data


async def delete(http: aiohttp.ClientSession, base: str, session_id: str) -> None:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.delete(f"{base}/api/sessions/{session_id}") as r:
            await r.read()


async def largest_size(http: aiohttp.ClientSession, base: str) -> int:
    """The largest n such that a POST with rows = cols = n is accepted (a program that
    does not compile: no container is started)."""

    async def accepted(n: int) -> bool:
        status, _ = await post(http, base, "(", (n, n))
        return status == 201

    if await accepted(SIZE_CAP):
        return SIZE_CAP
    low, high = 1, SIZE_CAP  # accepted(low), not accepted(high)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if await accepted(mid) else (low, mid)
    return low


# -- (a) CPU per MB -----------------------------------------------------------------------


async def one_run(
    server: Server,
    size: int,
    code: str,
    deadline: float,
    answer: bool,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Server CPU for one program, from POST to `execution_complete`, then for a GET
    of the finished session. ``extra``: more of the request's body (`files`)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        client = SioClient()
        await client.connect(server.base)

        async def on_prompt(session_id: str, data: dict[str, Any]) -> None:
            if answer:
                await client.sio.emit("input", {"input": "x", "sessionId": session_id})

        client.on_prompt = on_prompt
        try:
            c0 = server.cpu()
            t0 = time.monotonic()
            status, body = await post(http, server.base, code, (size, size), extra=extra)
            if status != 201:
                return {"error": f"POST {status} {body}"}
            session_id = body["sessionId"]
            w = await client.join(session_id)
            try:
                await asyncio.wait_for(w.done.wait(), deadline)
                timed_out = False
            except TimeoutError:
                timed_out = True
            run_cpu = server.cpu() - c0
            run_seconds = time.monotonic() - t0
            out: dict[str, Any] = {
                "cpu_ms": round(run_cpu * 1000, 1),
                "seconds": round(run_seconds, 2),
                "timed_out": timed_out,
                "status": (w.result or {}).get("status"),
                "prompts": len(w.prompts),
                "chars_received": len(w.text),
            }
            if timed_out:
                await delete(http, server.base, session_id)
                return out
            c1 = server.cpu()
            t1 = time.monotonic()
            async with http.get(f"{server.base}/api/sessions/{session_id}") as r:
                raw = await r.read()
            out["get_cpu_ms"] = round((server.cpu() - c1) * 1000, 1)
            out["get_ms"] = round((time.monotonic() - t1) * 1000, 1)
            out["get_bytes"] = len(raw)
            with contextlib.suppress(ValueError):
                screen = json.loads(raw).get("screen") or {}
                out["screen_lines"] = len(screen.get("lines", []))
                out["screen_size"] = [screen.get("rows"), screen.get("cols")]
            return out
        finally:
            await client.close()


SETTLE = 1.0  # seconds before a measured run: the last run's removal and refill are done


def idle_program(seconds: float, prompt: bool = False) -> str:
    """A session as long as `seconds` that prints nothing, asking one `input()` at
    the end if `prompt` (the pattern's variant asks one too: its round trip is no
    cost of the bytes either)."""
    return f"import time\ntime.sleep({seconds:.2f})\n" + ("input('? ')\n" if prompt else "")


async def settled_run(
    server: Server, size: int, code: str, deadline: float, answer: bool = False
) -> dict[str, Any]:
    await asyncio.sleep(SETTLE)
    return await one_run(server, size, code, deadline, answer)


def part_bytes(args: argparse.Namespace, report: Report) -> None:
    server = Server("hostile-bytes")
    server.start()
    results: dict[str, Any] = {}
    report.data["bytes"] = results
    try:
        size = asyncio.run(_size(server))
        results["terminal_size"] = size
        print(f"   largest accepted terminal: {size} x {size}", flush=True)
        idle = [asyncio.run(settled_run(server, size, idle_program(2.0), 20)) for _ in range(3)]
        idle_ms = sorted(r.get("cpu_ms", 0.0) for r in idle)[1]
        results["idle_2s_cpu_ms"] = idle_ms
        report.row(
            f"(a) baseline: an idle session at {size}x{size} (time.sleep), server CPU",
            f"{idle_ms:.0f} ms for 2 s; one as long as each run is subtracted from it",
        )
        names = [n for n in PATTERNS if not args.patterns or n in args.patterns]
        for name in names:
            megabytes = pattern_bytes(name) / MB
            row: dict[str, Any] = {"bytes": round(megabytes * MB)}
            for variant, prompt in (("print", False), ("input", True)):
                runs = []
                for _ in range(args.repeat):
                    code = pattern_program(name, prompt)
                    run = asyncio.run(settled_run(server, size, code, args.deadline, True))
                    runs.append(run)
                    if run.get("timed_out") or "error" in run:
                        server.restart()  # a run it could not finish must not slow the next
                        break
                    # What the session costs however quiet it is (its start, the pool's
                    # refill, the detector's looks, the prompt's round trip): an idle
                    # one as long, right after.
                    quiet = idle_program(run["seconds"], prompt)
                    base = asyncio.run(settled_run(server, size, quiet, 20, True))
                    run["idle_cpu_ms"] = base.get("cpu_ms", 0.0)
                for r in runs:
                    net = max(0.0, r.get("cpu_ms", 0.0) - r.get("idle_cpu_ms", 0.0))
                    r["net_ms_per_mb"] = round(net / megabytes, 1)
                # The median run (by net CPU): one noisy neighbour's burst is not the figure.
                run = sorted(runs, key=lambda r: r["net_ms_per_mb"])[len(runs) // 2]
                if any(r.get("timed_out") for r in runs):
                    run = next(r for r in runs if r.get("timed_out"))
                row[variant] = run
                run["net_ms_per_mb_runs"] = [r["net_ms_per_mb"] for r in runs]
            results[name] = row
            worst = max(row["print"]["net_ms_per_mb"], row["input"]["net_ms_per_mb"])
            lower = any(row[v].get("timed_out") for v in ("print", "input"))
            get_ms = row["print"].get("get_cpu_ms")
            value = (
                f"{'>= ' if lower else ''}{worst:.0f} ms/MB"
                + (f"; GET {get_ms:.0f} ms CPU" if get_ms is not None else "")
                + (
                    f"; status {row['print'].get('status')}/{row['input'].get('status')}"
                    if not lower
                    else f"; not done in {args.deadline:g} s"
                )
            )
            met = not lower and worst <= 50 and (get_ms or 0) <= 50
            report.row(f"(a) {name} ({megabytes:.2f} MB)", value, "<= 50 ms/MB", met)
            print(f"   {name}: {value}", flush=True)
        results["server_restarts"] = server.restarts
    finally:
        server.close()


async def _size(server: Server) -> int:
    async with aiohttp.ClientSession() as http:
        return await largest_size(http, server.base)


# -- (b) the victims ----------------------------------------------------------------------


async def victims(base: str, runs: int, pace: float) -> dict[str, Any]:
    """First output of `print('hi')`, POST to the first `output` event, in ms; one run
    starting every `pace` seconds, never overlapping. Its two halves apart too: the
    POST's answer (the server's HTTP path) and from there to the output (the sandbox,
    the engine's stream, the Socket.IO path)."""
    times: list[float] = []
    posts: list[float] = []
    lost = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        client = SioClient()
        await client.connect(base)
        networks = VICTIM_NETWORKS[0]
        try:
            next_start = time.monotonic()
            for i in range(runs):
                await asyncio.sleep(max(0.0, next_start - time.monotonic()))
                next_start = time.monotonic() + pace
                t0 = time.perf_counter()
                learner = {"X-Forwarded-For": f"10.{i % networks}.0.1"} if networks else None
                try:
                    status, body = await post(http, base, "print('hi')", headers=learner)
                    t_post = time.perf_counter()
                    if status != 201:
                        lost += 1
                        continue
                    w = await client.join(body["sessionId"])
                    await asyncio.wait_for(w.got_output.wait(), 20)
                    await asyncio.wait_for(w.done.wait(), 20)
                except (TimeoutError, aiohttp.ClientError):
                    lost += 1
                    continue
                if w.first_output is None or "hi" not in w.text:
                    lost += 1
                    continue
                times.append((w.first_output - t0) * 1000)
                posts.append((t_post - t0) * 1000)
        finally:
            await client.close()
    after_post = [t - p for t, p in zip(times, posts, strict=True)]
    return {
        **summary(times),
        "lost": lost,
        "times_ms": [round(t, 1) for t in times],
        "post": summary(posts),
        "after_post": summary(after_post),
    }


@contextlib.asynccontextmanager
async def _two_at_a_time(
    base: str, request: Callable[[int], tuple[str, tuple[int, int] | None, dict[str, Any]]]
) -> AsyncIterator[dict[str, Any]]:
    """Two sessions at a time from the attacker's address, each loop running its next
    as soon as the last ended: ``request(i)`` is the i-th one's code, terminal size and
    more of its body. Bounded: at most 40 sessions a loop, 20 s each."""
    stats = {"sessions": 0}

    async def loop(http: aiohttp.ClientSession, client: SioClient, offset: int) -> None:
        for i in range(offset, offset + 40):
            code, size, extra = request(i)
            status, body = await post(http, base, code, size, headers=ATTACKER, extra=extra)
            if status != 201:
                await asyncio.sleep(0.5)
                continue
            stats["sessions"] += 1
            w = await client.join(body["sessionId"])
            try:
                await asyncio.wait_for(w.done.wait(), 20)
            except TimeoutError:
                await delete(http, base, body["sessionId"])

    async with _attack_clients(base) as (http, client):
        tasks = [asyncio.ensure_future(loop(http, client, k)) for k in (0, 2)]
        try:
            await asyncio.sleep(1)
            yield stats
        finally:
            await _cancel(tasks)


@contextlib.asynccontextmanager
async def attack_screen(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """Two sessions at a time printing the costliest patterns, one after another."""
    names = ["DECALN ESC#8", "combining U+0301", "alt screen on/off", "clear ESC[2J"]
    programs = [pattern_program(name, False) for name in names]
    async with _two_at_a_time(base, lambda i: (programs[i % 4], (size, size), {})) as stats:
        yield stats


@contextlib.asynccontextmanager
async def attack_resize(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """A terminado WebSocket swinging its session between size x size and size x 2,
    300 `set_size` a second."""
    stats = {"set_size": 0}
    async with _attack_clients(base) as (http, _client):
        status, body = await post(http, base, SCREENFUL, (size, size), headers=ATTACKER)
        assert status == 201, body
        session_id = body["sessionId"]
        ws = await http.ws_connect(base.replace("http", "ws", 1) + f"/ws/terminal/{session_id}")

        async def drain() -> None:
            async for _ in ws:
                pass

        async def storm() -> None:
            for _ in range(60):  # bounded: at most 60 bursts
                for i in range(300):
                    await ws.send_str(json.dumps(["set_size", size, size if i % 2 else 2]))
                    stats["set_size"] += 1
                await asyncio.sleep(1)

        tasks = [asyncio.ensure_future(drain()), asyncio.ensure_future(storm())]
        try:
            await asyncio.sleep(1)
            yield stats
        finally:
            await _cancel(tasks)
            await ws.close()
            await delete(http, base, session_id)


@contextlib.asynccontextmanager
async def attack_detector(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """Two sessions with 60 threads each parked in select() on every descriptor."""
    stats: dict[str, Any] = {"ready": []}
    async with _attack_clients(base) as (http, client):
        ids = []
        for _ in range(2):
            status, body = await post(http, base, PARKER, headers=ATTACKER)
            assert status == 201, body
            ids.append(body["sessionId"])
        watches = [await client.join(i) for i in ids]
        deadline = time.monotonic() + 30
        while not all("ready" in w.text for w in watches) and time.monotonic() < deadline:  # noqa: ASYNC110 (a bounded poll of what the client saw)
            await asyncio.sleep(0.1)
        stats["ready"] = [w.text.strip() for w in watches]
        await asyncio.sleep(1.5)  # the first polls, which see every descriptor once
        try:
            yield stats
        finally:
            for i in ids:
                await delete(http, base, i)


def _ws_frame(text: str) -> bytes:
    """One masked WebSocket text frame (RFC 6455) from a client."""
    payload = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@contextlib.asynccontextmanager
async def attack_sio_noread(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """20 Socket.IO clients (WebSocket transport, tiny receive buffers) joining a
    session that printed 900 kB, then never reading again."""
    stats: dict[str, Any] = {"clients": 0}
    host, port = base.split("//", 1)[1].split(":")
    socks: list[socket.socket] = []
    async with _attack_clients(base) as (http, _client):
        status, body = await post(http, base, LOUD, headers=ATTACKER)
        assert status == 201, body
        session_id = body["sessionId"]
        await asyncio.sleep(1.5)  # its output is in the session's log
        loop = asyncio.get_running_loop()
        for _ in range(20):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            try:
                await loop.run_in_executor(None, _sio_join, s, host, int(port), session_id)
                stats["clients"] += 1
            except OSError as exc:
                stats["error"] = repr(exc)
            socks.append(s)
        try:
            yield stats
        finally:
            for s in socks:
                s.close()
            await delete(http, base, session_id)


def _sio_join(s: socket.socket, host: str, port: int, session_id: str) -> None:
    """The handshake and a join, then nothing: the socket is never read again."""
    s.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed during the handshake")
        got += chunk
    if b" 101 " not in got.split(b"\r\n", 1)[0]:
        raise OSError(got.split(b"\r\n", 1)[0].decode(errors="replace"))
    s.sendall(_ws_frame("40"))
    time.sleep(0.05)
    s.sendall(_ws_frame("42" + json.dumps(["join", {"sessionId": session_id}])))


@contextlib.asynccontextmanager
async def attack_slow_http(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """500 connections whose request headers never end (a header line every 2 s)."""
    stats = {"open": 0, "closed_by_server": 0}
    host, port = base.split("//", 1)[1].split(":")
    writers: list[asyncio.StreamWriter] = []
    for _ in range(500):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        except (OSError, TimeoutError):
            continue
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
        writers.append(writer)
    stats["open"] = len(writers)

    async def trickle() -> None:
        for _ in range(60):  # bounded: at most 2 minutes
            await asyncio.sleep(2)
            for w in writers:
                if w.is_closing():
                    continue
                try:
                    w.write(b"X-Slow: 1\r\n")
                except (OSError, RuntimeError):
                    stats["closed_by_server"] += 1

    task = asyncio.ensure_future(trickle())
    try:
        yield stats
    finally:
        await _cancel([task])
        for w in writers:
            w.close()


READS_GIVEN = (
    "import os\nprint(os.path.getsize('given0.bin') if os.path.exists('given0.bin') else 0)"
)


def given_files(mib: float) -> list[dict[str, str]]:
    """Two files of ``mib`` MiB in all, base64 (incompressible bytes: no shortcut)."""
    half = int(mib * (1 << 20)) // 2
    return [
        {
            "name": f"given{i}.bin",
            "content": base64.b64encode(os.urandom(half)).decode(),
            "encoding": "base64",
        }
        for i in range(2)
    ]


@contextlib.asynccontextmanager
async def attack_uploads(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """Two sessions at a time, one after another, each given 2 MiB of files (the most
    one request may give): every other one does not compile (no container: the HTTP
    path alone), the others run and read a file."""
    files = {"files": given_files(2.0)}
    programs = [READS_GIVEN, "print("]
    async with _two_at_a_time(base, lambda i: (programs[i % 2], None, files)) as stats:
        yield stats


@contextlib.asynccontextmanager
async def attack_churn(base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """Create and at once DELETE executions, from 6 X-Forwarded-For addresses (the
    server trusts 127.0.0.1 as a proxy), back to back, until the victims are done."""
    stats: dict[str, int] = {}
    deadline = time.monotonic() + CHURN_SECONDS
    addresses = [f"198.51.100.{i}" for i in range(1, 7)]

    async def loop(http: aiohttp.ClientSession, address: str) -> None:
        # Bounded in count and time, but long enough to overlap every victim run: a
        # fast server got through a fixed 100 per address before the victims were
        # half done, and measured a quiet server.
        for _ in range(CHURN_PER_ADDRESS):
            if time.monotonic() > deadline:
                return
            status, body = await post(
                http, base, "print('x')", headers={"X-Forwarded-For": address}
            )
            stats[str(status)] = stats.get(str(status), 0) + 1
            if status == 201:
                await delete(http, base, body["sessionId"])
            else:
                await asyncio.sleep(0.2)
            if CHURN_RATE[0] > 0:  # an attacker keeping under a per-network threshold
                await asyncio.sleep(len(addresses) / CHURN_RATE[0])

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        tasks = [asyncio.ensure_future(loop(http, address)) for address in addresses]
        try:
            await asyncio.sleep(0.5)
            yield stats
        finally:
            await _cancel(tasks)


ATTACKS: dict[str, Callable[[str, int], contextlib.AbstractAsyncContextManager[Any]]] = {
    "screen": attack_screen,
    "resize": attack_resize,
    "detector": attack_detector,
    "sio_noread": attack_sio_noread,
    "slow_http": attack_slow_http,
    "churn": attack_churn,
    "uploads": attack_uploads,
}


@contextlib.asynccontextmanager
async def _attack_clients(base: str) -> AsyncIterator[tuple[aiohttp.ClientSession, SioClient]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        client = SioClient()
        await client.connect(base)
        try:
            yield http, client
        finally:
            await client.close()


async def _cancel(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


# The server's own histograms of what held its event loop (absent from a checkout
# before 2026-12-04 evening: then "not measured").
LOOP_LAG, GC_PAUSE = "codex_event_loop_lag_seconds", "codex_gc_pause_seconds"
BUCKET = re.compile(r'^(codex_\w+)_bucket\{le="([^"]+)"\} (\S+)$', re.M)
Histograms = dict[str, dict[float, float]]  # name -> cumulative count by upper bound


async def stall_histograms(base: str) -> Histograms:
    """Cumulative counts by upper bound, of each of LOOP_LAG and GC_PAUSE."""
    text = await metrics_text(base) or ""
    out: Histograms = {LOOP_LAG: {}, GC_PAUSE: {}}
    for name, le, n in BUCKET.findall(text):
        if name in out:
            out[name][float(le)] = float(n)
    return out


def histogram_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Observations during a window, and the bucket bounds under which 99 % and all of
    them fell (seconds)."""
    if not after:
        return {}
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    largest = max(le for le in counts if le != float("inf"))

    def bound(le: float) -> float | None:
        return None if le == float("inf") else le  # None: over the largest (JSON has no inf)

    below, spread = 0.0, {}
    for le, n in counts.items():  # cumulative to per bucket, the empty ones left out
        if n > below:
            spread["inf" if le == float("inf") else f"{le:g}"] = int(n - below)
        below = n
    return {
        "n": int(total),
        "p99_under_s": bound(next(le for le, n in counts.items() if n >= 0.99 * total)),
        "max_under_s": bound(next(le for le, n in counts.items() if n >= total)),
        "largest_s": largest,
        "by_bucket": spread,
    }


def stalls(before: Histograms, after: Histograms) -> dict[str, Any]:
    """What held the server's loop during a window: its lag, its full collections."""
    return {
        "loop_lag": histogram_summary(before[LOOP_LAG], after[LOOP_LAG]),
        "gc_pauses": histogram_summary(before[GC_PAUSE], after[GC_PAUSE]),
    }


def stalls_text(window: dict[str, Any]) -> str:
    lag, gc = window.get("loop_lag") or {}, window.get("gc_pauses") or {}
    if not lag:
        return "loop lag not measured"

    def bound(h: dict[str, Any], key: str) -> str:
        if h[key] is None:
            return f"over {ms(h['largest_s'] * 1000)}"
        return f"<= {ms(h[key] * 1000)}"

    text = f"loop lag p99 {bound(lag, 'p99_under_s')}, max {bound(lag, 'max_under_s')}"
    text += f" ({lag['n']} looks)"
    if not gc:
        return text + "; GC pauses not measured"
    if gc["n"]:
        return text + f"; {gc['n']} full GCs, max {bound(gc, 'max_under_s')}"
    return text + "; no full GC"


ATTACK_MAX_SECONDS = 180  # an attack process ends by itself after this, parent or not


@contextlib.asynccontextmanager
async def attack_elsewhere(name: str, base: str, size: int) -> AsyncIterator[dict[str, Any]]:
    """The attack, in a process of its own (``--mount-attack``): the victims' client then
    shares no event loop and no GIL with the attacker's, so the victims' figures are the
    server's, not the bench's. (In one loop, the churn's ~700 requests a second and the
    screen's megabytes of output delayed the victims' own responses.) The stats come
    back as JSON once the parent closes the child's stdin."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.hostile", "--mount-attack", name,
        "--base", base, "--size", str(size), "--churn-rate", str(CHURN_RATE[0]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=serverproc.ROOT,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    stats: dict[str, Any] = {}
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 90)
        if line.strip() != b"ready":
            raise RuntimeError(f"the {name} attack did not start (it said {line!r})")
        yield stats
    finally:
        proc.stdin.close()
        try:
            stats.update(json.loads(await asyncio.wait_for(proc.stdout.read(), 60) or b"{}"))
        except (TimeoutError, json.JSONDecodeError) as exc:
            stats["error"] = repr(exc)
            proc.kill()
        await proc.wait()


async def mount_attack(name: str, base: str, size: int) -> None:
    """The child's side: mount the attack, say ``ready``, run until stdin closes."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async with ATTACKS[name](base, size) as stats:
        print("ready", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stdin.read(), ATTACK_MAX_SECONDS)
    print(json.dumps(stats), flush=True)


async def victims_run(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        size = await largest_size(http, server.base)
    out["terminal_size"] = size
    await victims(server.base, 8, args.pace)  # warm-up: the pool fills, the page cache
    await asyncio.sleep(2)
    h0 = await stall_histograms(server.base)
    out["quiet"] = await victims(server.base, args.runs, args.pace)
    out["quiet"].update(stalls(h0, await stall_histograms(server.base)))
    q = out["quiet"]
    print(
        f"   quiet: p95 {ms(q.get('p95'))} (POST p50 {ms(q['post'].get('p50'))}, then to the "
        f"output p50 {ms(q['after_post'].get('p50'))}); {stalls_text(q)}",
        flush=True,
    )
    for name in args.attacks:
        c0, t0 = server.cpu(), time.monotonic()
        h0 = await stall_histograms(server.base)
        try:
            mount = (
                ATTACKS[name]
                if args.attacks_in_process
                else functools.partial(attack_elsewhere, name)
            )
            async with mount(server.base, size) as stats:
                during = await victims(server.base, args.runs, args.pace)
        except Exception as exc:  # an attack that could not be mounted
            traceback.print_exc()
            out[name] = {"error": repr(exc)}
            continue
        during["attack"] = stats
        during.update(stalls(h0, await stall_histograms(server.base)))
        during["server_cpu_share"] = round((server.cpu() - c0) / (time.monotonic() - t0), 3)
        out[name] = during
        print(
            f"   {name}: p95 {ms(during.get('p95'))} (POST p50 {ms(during['post'].get('p50'))}, "
            f"then to the output p50 {ms(during['after_post'].get('p50'))}), "
            f"lost {during['lost']}, server CPU "
            f"{during['server_cpu_share']:.0%} of a core; {stalls_text(during)}; "
            f"{stats}",
            flush=True,
        )
        await asyncio.sleep(2)  # what the attack left behind ends
    out["quiet_after"] = await victims(server.base, args.runs, args.pace)
    return out


def part_victims(args: argparse.Namespace, report: Report) -> None:
    server = Server("hostile-victims")
    server.start()
    try:
        data = asyncio.run(victims_run(args, server))
    finally:
        server.close()
    report.data["victims"] = data
    quiet = data["quiet"].get("p95")
    report.row(
        "(b) victims' first output, no attack: p50 / p95 (its loop's stalls)",
        f"{ms(data['quiet'].get('p50'))} / {ms(quiet)} ({stalls_text(data['quiet'])})",
    )
    for name in args.attacks:
        d = data.get(name, {})
        if "error" in d or not d.get("n"):
            report.row(f"(b) under {name}", d.get("error", "no run succeeded"), "3 x quiet", False)
            continue
        ratio = d["p95"] / quiet if quiet else float("nan")
        report.row(
            f"(b) under {name}: p50 / p95 (lost; server CPU; its loop's stalls)",
            f"{ms(d['p50'])} / {ms(d['p95'])} = {ratio:.1f}x "
            f"({d['lost']} lost; {d['server_cpu_share']:.0%}; {stalls_text(d)})",
            f"<= 3 x {ms(quiet)}",
            ratio <= 3 and d["lost"] == 0,
        )
    report.row("(b) victims, no attack, at the end: p95", ms(data["quiet_after"].get("p95")))


# -- the command --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n")[0])
    p.add_argument("--only", default="bytes,victims", help="bytes, victims (comma-separated)")
    p.add_argument(
        "--attacks", default=",".join(ATTACKS), help=f"of: {', '.join(ATTACKS)} (comma-separated)"
    )
    p.add_argument("--patterns", default="", help="byte patterns (comma-separated names); all")
    p.add_argument("--deadline", type=float, default=12, help="seconds one hostile run may take")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs per byte pattern and variant (median)"
    )
    p.add_argument("--runs", type=int, default=20, help="victim runs per attack")
    p.add_argument("--pace", type=float, default=0.3, help="seconds between victim starts")
    p.add_argument("--codex-dir", type=Path, help="run the server from this checkout")
    p.add_argument(
        "--churn-rate",
        type=float,
        default=0.0,
        help="churn's creates a second, its 6 addresses together (0: back to back)",
    )
    p.add_argument(
        "--victim-networks",
        type=int,
        default=0,
        help="victims: each run from the next of N networks (X-Forwarded-For 10.<k>.0.1), "
        "a class of learners each on their own; 0: all from one address, a class behind "
        "one NAT",
    )
    p.add_argument(
        "--attacks-in-process",
        action="store_true",
        help="run each attack in the victims' own process and event loop (as before "
        "2026-12-04), not in a process of its own",
    )
    # The child's side of attack_elsewhere: not for the command line.
    p.add_argument("--mount-attack", choices=list(ATTACKS), help=argparse.SUPPRESS)
    p.add_argument("--base", default="", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=SIZE_CAP, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.attacks = [a for a in args.attacks.split(",") if a]
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        p.error(f"unknown attacks: {sorted(unknown)}")
    args.patterns = [n for n in args.patterns.split(",") if n]
    return args


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    CHURN_RATE[0] = args.churn_rate
    VICTIM_NETWORKS[0] = args.victim_networks
    if args.codex_dir is not None:
        serverproc.CODEX_DIR[0] = args.codex_dir.resolve()
    _raise_nofile()  # 500 slow connections and the rest
    if args.mount_attack:
        asyncio.run(mount_attack(args.mount_attack, args.base, args.size))
        return 0
    random.seed(7)
    report = Report()
    report.data["machine"] = machine_info()
    report.data["codex_dir"] = str(serverproc.CODEX_DIR[0])
    report.data["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report.data["args"] = {k: v for k, v in vars(args).items()}
    t_all = time.monotonic()
    for part, run in (("bytes", part_bytes), ("victims", part_victims)):
        if part not in args.only.split(","):
            continue
        print(f"== {part}", flush=True)
        t0 = time.monotonic()
        try:
            run(args, report)
        except Exception:
            traceback.print_exc()
            report.failed.append(part)
            report.row(f"{part}: FAILED", "see the traceback above", "runs", False)
        print(f"   {time.monotonic() - t0:.0f} s", flush=True)
    report.data["total_seconds"] = round(time.monotonic() - t_all, 1)
    report.data["table"] = [vars(r) for r in report.rows]
    report.data["failed_parts"] = report.failed
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"hostile-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report.data, indent=2, default=str))
    print()
    print(report.table())
    print(f"\nJSON: {path}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
