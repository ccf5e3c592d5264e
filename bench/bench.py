"""CodeX benchmarks: one command, a table on stdout, JSON in bench/results/.

    .venv/bin/python -m bench.bench                  # everything (about 7 minutes)
    .venv/bin/python -m bench.bench --quick          # a short smoke run of every part
    .venv/bin/python -m bench.bench --only echo,throughput
    .venv/bin/python -m bench.bench --only concurrency --profile concurrency

Parts: first_output (and its floors), detection, echo, throughput, concurrency, idle,
retention.
bench/README.md says what each measures and how. Not part of `make test`: timings are
measurements, the targets are checked in the table, the exit status is 0 either way
(1 only when a part failed to run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench import engine, programs, serverproc
from bench.serverproc import (
    RESULTS,
    CpuMeter,
    EngineMeter,
    MachineMeter,
    codex_server,
    cpu_seconds,
    loadavg,
    machine_info,
    peak_rss_bytes,
    rss_bytes,
    terminado_server,
)

PARTS = (
    "first_output",
    "detection",
    "echo",
    "throughput",
    "concurrency",
    "idle",
    "retention",
)
MB = 1e6  # throughput is in MB/s, 10^6 bytes


# -- statistics -------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2),
        "p95": round(pct(values, 0.95), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


# -- the table ----------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def row(self, metric: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(metric, value, target, met))

    def table(self) -> str:
        head = ("metric", "value", "target", "met?")
        cells = [
            (r.metric, r.value, r.target, "" if r.met is None else ("yes" if r.met else "NO"))
            for r in self.rows
        ]
        widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(4)]
        lines = [
            "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
            "| " + " | ".join("-" * w for w in widths) + " |",
        ]
        for c in cells:
            lines.append(
                "| " + " | ".join(str(v).ljust(w) for v, w in zip(c, widths, strict=True)) + " |"
            )
        return "\n".join(lines)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


# -- a profile of the server while a part runs (py-spy) -----------------------------------


class Profiler:
    """`py-spy record` of the server during a window, when that part was asked for with
    --profile. Samples at 100 Hz without stopping the process (--nonblocking), only the
    thread holding the GIL (--gil): the profile is where the server's Python CPU went,
    not where its threads wait."""

    def __init__(self, wanted: set[str], report: Report, gil: bool = True, rate: int = 100) -> None:
        self.wanted = wanted
        self.report = report
        self.gil = gil
        self.rate = rate

    @contextlib.contextmanager
    def window(self, part: str, label: str, pid: int) -> Iterator[None]:
        if part not in self.wanted:
            yield
            return
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"profile-{label}-{int(time.time())}.txt"
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                "--rate", str(self.rate), "--nonblocking", "--format", "raw", "--output", str(out),
                *(["--gil"] if self.gil else []),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        t0 = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - t0
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if out.exists():
                summary_ = summarize_profile(out)
                # Samples over what 100 Hz would give: the share of one core the
                # server's Python held the GIL.
                summary_["window_seconds"] = round(seconds, 1)
                summary_["mode"] = "gil" if self.gil else "active threads"
                summary_["sampled_share_percent"] = round(
                    summary_["samples"] / (self.rate * seconds) * 100, 1
                )
                self.report.data.setdefault("profiles", {})[label] = summary_
                print(f"  profile of {label}: {out}")
            else:
                print(f"  py-spy failed: {err.decode(errors='replace')[-500:]}")


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks ("frame;frame;... count") to the functions with the most
    samples: on CPU themselves (self) and anywhere on the stack (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_short_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for f in set(frames):
            total[f] += count
    return {
        "file": str(path),
        "samples": samples,
        "self": [(f, n, round(n / samples * 100, 1)) for f, n in own.most_common(top)]
        if samples
        else [],
        "total": [(f, n, round(n / samples * 100, 1)) for f, n in total.most_common(top)]
        if samples
        else [],
    }


def _short_frame(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = Path(path).parts
    for anchor in ("codex", "site-packages", "python3.11", "lib"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            path = "/".join(parts[i + 1 :] if anchor != "codex" else parts[i:])
            break
    return f"{name} ({path})"


# -- Socket.IO client that records events per session ------------------------------------


class Watch:
    """What one client saw of one session."""

    def __init__(self) -> None:
        self.first_output: float | None = None
        self.output: list[str] = []
        self.prompts: list[float] = []
        self.prompt_payloads: list[dict[str, Any]] = []
        self.prompted = asyncio.Event()
        self.got_output = asyncio.Event()
        self.result: dict[str, Any] | None = None
        self.done = asyncio.Event()
        self.completions = 0
        self.errors: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return "".join(self.output)


class SioClient:
    """A Socket.IO client (socket.io-client's default transports: polling, then
    WebSocket) following any number of sessions."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.watches: dict[str, Watch] = {}
        self.disconnects = 0
        self.on_prompt: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
        self.sio.on("output", self._output)
        self.sio.on("input_required", self._prompt)
        self.sio.on("execution_complete", self._complete)
        self.sio.on("error", self._error)
        self.sio.on("disconnect", self._disconnect)

    def watch(self, session_id: str) -> Watch:
        return self.watches.setdefault(session_id, Watch())

    async def connect(self, base: str) -> None:
        await self.sio.connect(base, wait_timeout=10)

    async def join(self, session_id: str) -> Watch:
        w = self.watch(session_id)
        await self.sio.emit("join", {"sessionId": session_id})
        return w

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.disconnect(), 10)

    async def _output(self, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        w = self.watch(data.get("sessionId", ""))
        if w.first_output is None:
            w.first_output = now
        w.output.append(data.get("output", ""))
        w.got_output.set()

    async def _prompt(self, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        session_id = data.get("sessionId", "")
        w = self.watch(session_id)
        w.prompts.append(now)
        w.prompt_payloads.append(data)
        w.prompted.set()
        if self.on_prompt is not None:
            await self.on_prompt(session_id, data)

    async def _complete(self, data: dict[str, Any]) -> None:
        w = self.watch(data.get("sessionId", ""))
        w.completions += 1
        w.result = data
        w.done.set()

    async def _error(self, data: dict[str, Any]) -> None:
        if isinstance(data, dict):
            self.watch(data.get("sessionId", "")).errors.append(data)

    async def _disconnect(self, *args: Any) -> None:
        self.disconnects += 1


async def post_execute(http: aiohttp.ClientSession, base: str, code: str) -> str:
    for _ in range(50):  # 503 no_capacity: wait as Retry-After says, a bounded number of times
        async with http.post(base + "/api/execute", json={"code": code}) as r:
            body = await r.json()
            if r.status == 201:
                return str(body["sessionId"])
            if r.status != 503:
                raise RuntimeError(f"POST /api/execute: {r.status} {body}")
            await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    raise RuntimeError("POST /api/execute: no capacity after 50 tries")


async def running_count(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(base + "/readyz") as r:
        return int((await r.json()).get("running", -1))


async def metrics_text(base: str) -> str | None:
    """GET /metrics if the server has it (not relied upon)."""
    timeout = aiohttp.ClientTimeout(total=5)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(base + "/metrics") as r:
            if r.status == 200:
                return await r.text()
    except (aiohttp.ClientError, TimeoutError):
        pass
    return None


def pool_counters(text: str | None) -> dict[str, float]:
    """Pool hit/miss counters from a Prometheus text exposition, whatever their exact
    names (any sample whose name mentions pool and hit or miss; not the counters'
    ``_created`` timestamps)."""
    out: dict[str, float] = {}
    for line in (text or "").splitlines():
        if line.startswith("#") or "pool" not in line.lower():
            continue
        name, _, value = line.rpartition(" ")
        low = name.lower()
        if ("hit" in low or "miss" in low) and not low.endswith("_created"):
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


async def wait_pool(pid: int, size: int, seconds: float = 60) -> int:
    """Wait until the server has `size` idle containers ready (no session runs)."""
    client = engine.api()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n = await asyncio.to_thread(engine.containers_of, client, pid)
        if n >= size:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)  # the last one's supervisor gets to `ready`
    return n


# -- 1. first output, and its floors ----------------------------------------------------


class FirstOutput:
    """Runs of one configuration: CodeX (POST /api/execute, then a Socket.IO join, to
    the first `output` event: the seed frontend's flow) or a floor (the docker SDK, to
    the first byte of output)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.post_times: list[float] = []
        self.ids: list[str] = []
        self.lost = 0

    async def codex_run(self, http: aiohttp.ClientSession, client: SioClient, base: str) -> None:
        t0 = time.perf_counter()
        session_id = await post_execute(http, base, programs.HELLO)
        t_post = time.perf_counter()
        w = await client.join(session_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.got_output.wait(), 30)
            await asyncio.wait_for(w.done.wait(), 30)
        ok = w.first_output is not None and "hi" in w.text
        ok = ok and (w.result or {}).get("status") == "ok" and w.completions == 1
        self.ids.append(session_id)
        if not ok or w.first_output is None:
            self.lost += 1
            self.times.append(math.nan)
            return
        self.times.append((w.first_output - t0) * 1000)
        self.post_times.append((t_post - t0) * 1000)


async def paced(runs: int, pace: float, run: Callable[[], Awaitable[None]]) -> None:
    """`runs` runs, one starting every `pace` seconds (or as soon as the previous one
    ended, when it took longer): one at a time, never overlapping."""
    next_start = time.monotonic()
    for _ in range(runs):
        delay = next_start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        next_start = time.monotonic() + pace
        await run()


async def first_output_rounds(
    args: argparse.Namespace, off: tuple[str, int], on: tuple[str, int], prof: Profiler
) -> tuple[dict[str, FirstOutput], list[str | None]]:
    """Rounds of blocks: docker run, docker exec, CodeX without pool, CodeX with pool.
    Within a block runs are paced (one every args.pace s); the rounds spread every
    configuration over the same stretch of time, so a busy spell on the machine hits
    them all alike."""
    docker = engine.api()
    left = await asyncio.to_thread(engine.remove_bench_containers, docker)
    if left:
        print(f"  removed {left} container(s) left by an earlier benchmark")
    target = await asyncio.to_thread(engine.ExecTarget, docker)
    series = {k: FirstOutput() for k in ("docker_run", "docker_exec", "pool_off", "pool_on")}
    metrics: list[str | None] = [None, None]  # the pool-on server's /metrics, if any
    clients = {"pool_off": SioClient(), "pool_on": SioClient()}
    bases = {"pool_off": off[0], "pool_on": on[0]}
    rounds = args.rounds
    codex_block = math.ceil(args.runs / rounds)
    floor_block = math.ceil(args.floor_runs / rounds)

    def floor(kind: str, sink: FirstOutput | None) -> Callable[[], Awaitable[None]]:
        fn = (lambda: engine.docker_run_ms(docker)) if kind == "docker_run" else target.exec_ms

        async def run() -> None:
            value = await asyncio.to_thread(fn)
            if sink is not None:
                sink.times.append(value)

        return run

    def codex(name: str, sink: FirstOutput) -> Callable[[], Awaitable[None]]:
        return lambda: sink.codex_run(http, clients[name], bases[name])

    try:
        async with aiohttp.ClientSession() as http:
            for name, c in clients.items():
                await c.connect(bases[name])
            # Warm-up, not recorded: the first runs of a fresh server or engine path.
            await paced(1, args.pace, floor("docker_run", None))
            await paced(1, args.pace, floor("docker_exec", None))
            for name in clients:
                await paced(2, args.pace, codex(name, FirstOutput()))
            await wait_pool(on[1], 4)
            metrics[0] = await metrics_text(on[0])
            with (
                prof.window("first_output", "first_output_pool_off", off[1]),
                prof.window("first_output", "first_output_pool_on", on[1]),
            ):
                for r in range(rounds):
                    done = {k: len(v.times) for k, v in series.items()}
                    for kind in ("docker_run", "docker_exec"):
                        n = min(floor_block, args.floor_runs - done[kind])
                        await paced(n, args.pace, floor(kind, series[kind]))
                    for name in clients:
                        n = min(codex_block, args.runs - done[name])
                        await paced(n, args.pace, codex(name, series[name]))
                    print(f"  round {r + 1}/{rounds}", flush=True)
            metrics[1] = await metrics_text(on[0])
            for c in clients.values():
                await c.close()
    finally:
        await asyncio.to_thread(target.close)
    return series, metrics


def part_first_output(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    flags = ("--time-limit", "300")
    with (
        codex_server("--pool-size", "0", *flags, name="pool-off") as off,
        codex_server("--pool-size", "4", *flags, name="pool-on") as on,
    ):
        asyncio.run(wait_pool(on[1], 4))
        with engine.PoolWatch(engine.api(), on[1]) as watch:
            meters = {"pool_off": CpuMeter(off[1]), "pool_on": CpuMeter(on[1])}
            series, (before, after) = asyncio.run(first_output_rounds(args, off, on, prof))
            cpu = {k: m.stop() for k, m in meters.items()}
    data: dict[str, Any] = {
        "pace_seconds": args.pace,
        "rounds": args.rounds,
    }
    for kind, ser in series.items():
        good = [t for t in ser.times if not math.isnan(t)]
        entry: dict[str, Any] = {"ms": summary(good), "raw_ms": [round(t, 1) for t in ser.times]}
        if kind.startswith("pool"):
            entry["lost"] = ser.lost
            entry["post_answered_ms"] = summary(ser.post_times)
            entry["server_cpu"] = cpu[kind]
        if kind == "pool_on":
            kinds = [watch.kind(i) for i in ser.ids]
            pairs = list(zip(ser.times, kinds, strict=True))
            entry["pool_observed_from_engine_events"] = watch.classify(ser.ids)
            entry["ms_pool_hits"] = summary([t for t, k in pairs if k == "hit" and t == t])
            entry["ms_pool_misses"] = summary([t for t, k in pairs if k == "miss" and t == t])
            entry["raw_kind"] = kinds
            if before is not None or after is not None:
                b, a = pool_counters(before), pool_counters(after)
                entry["metrics_pool_delta"] = {k: a[k] - b.get(k, 0.0) for k in a}
        data[kind] = entry
    report.data["first_output"] = data
    run, ex, on_, off_ = (
        data[k]["ms"] for k in ("docker_run", "docker_exec", "pool_on", "pool_off")
    )
    report.row("floor: bare `docker run --rm` p50 / p95", f"{ms(run['p50'])} / {ms(run['p95'])}")
    report.row("floor: bare `docker exec` p50 / p95", f"{ms(ex['p50'])} / {ms(ex['p95'])}")
    obs = data["pool_on"]["pool_observed_from_engine_events"]
    hits = f"; pool hits {obs['hits']}, misses {obs['misses']}"
    if obs["unknown"]:
        hits += f", unknown {obs['unknown']}"
    delta = data["pool_on"].get("metrics_pool_delta") or {}
    if delta:
        hits += " (/metrics: " + ", ".join(f"{k} +{v:g}" for k, v in sorted(delta.items())) + ")"
    report.row(
        "first output p50, pool on",
        ms(on_["p50"]) + hits,
        f"< 80 ms and <= 0.5 x docker run = {ms(0.5 * run['p50'])}",
        on_["p50"] < min(80.0, 0.5 * run["p50"]),
    )
    report.row(
        "first output p95, pool on",
        ms(on_["p95"])
        + f" (p50 of hits {ms(data['pool_on']['ms_pool_hits'].get('p50'))},"
        + f" of misses {ms(data['pool_on']['ms_pool_misses'].get('p50'))})",
    )
    report.row(
        "first output p50, pool off",
        ms(off_["p50"]),
        f"<= docker run + 30 ms = {ms(run['p50'] + 30)}",
        off_["p50"] <= run["p50"] + 30,
    )
    report.row(
        "first output p95, pool off",
        ms(off_["p95"])
        + f" (POST answered in p50 {ms(data['pool_off']['post_answered_ms'].get('p50'))})",
    )
    lost = data["pool_on"]["lost"] + data["pool_off"]["lost"]
    report.row("first output runs without output or `ok`", str(lost), "0", lost == 0)


# -- 3. detection -------------------------------------------------------------------------


async def detection_series(base: str, code: str, questions: int) -> dict[str, Any]:
    """Latency from the moment the program blocks in read() to `input_required` at the
    client. The client answers each prompt with the wall-clock time at which the
    program must block next (after a think time); the program sleeps until then and
    reads. Both run on this machine's clock."""
    latencies: list[float] = []
    by_think: dict[str, list[float]] = {str(t): [] for t in programs.THINK_TIMES}
    client = SioClient()
    state: dict[str, Any] = {"asked": 0, "target": None, "think": None}
    finished = asyncio.Event()

    async def on_prompt(session_id: str, data: dict[str, Any]) -> None:
        now = time.time()
        if state["target"] is not None:
            lat = (now - float(state["target"])) * 1000
            latencies.append(lat)
            by_think[str(state["think"])].append(lat)
        if state["asked"] >= questions:
            state["target"] = None
            await client.sio.emit("input", {"input": "-1", "sessionId": session_id})
            finished.set()
            return
        think = programs.THINK_TIMES[state["asked"] % len(programs.THINK_TIMES)]
        state["asked"] += 1
        state["think"] = think
        state["target"] = time.time() + think
        await client.sio.emit("input", {"input": repr(state["target"]), "sessionId": session_id})

    client.on_prompt = on_prompt
    await client.connect(base)
    async with aiohttp.ClientSession() as http:
        session_id = await post_execute(http, base, code)
    w = await client.join(session_id)
    budget = 30 + questions * (max(programs.THINK_TIMES) + 1)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), budget)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(w.done.wait(), 30)
    await client.close()
    return {
        "ms": summary(latencies),
        "ms_by_think_seconds": {k: summary(v) for k, v in by_think.items()},
        "raw_ms": [round(v, 1) for v in latencies],
        "missed": questions - len(latencies),
        "status": (w.result or {}).get("status"),
        "detector": (w.prompt_payloads[-1] if w.prompt_payloads else {}).get("detector"),
    }


def part_detection(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    with (
        codex_server("--time-limit", "300", name="detection") as (base, pid),
        prof.window("detection", "detection", pid),
    ):
        prompted = asyncio.run(detection_series(base, programs.DETECTION_PROMPTED, args.questions))
        bare = asyncio.run(detection_series(base, programs.DETECTION_BARE, args.questions))
    report.data["detection_prompted"] = prompted
    report.data["detection_no_prompt"] = bare
    think = "/".join(f"{t:g}" for t in programs.THINK_TIMES)
    for name, d in (('input("> ")', prompted), ("input(), no prompt", bare)):
        p95 = d["ms"].get("p95")
        worst = max((s.get("p95", 0) for s in d["ms_by_think_seconds"].values()), default=0)
        report.row(
            f"detection p50 / p95, {name}, think {think} s",
            f"{ms(d['ms'].get('p50'))} / {ms(p95)} (worst think-time p95 {ms(worst)})"
            + (f"; {d['missed']} missed" if d["missed"] else "")
            + f"; detector {d['detector']}",
            "p95 < 100 ms, none missed",
            p95 is not None and p95 < 100 and d["missed"] == 0,
        )


# -- 4 and 5. terminal WebSockets: echo and throughput -------------------------------------


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1)


class TermWS:
    """A terminado-protocol client: ["stdin", text] out, ["stdout", text] in."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.stdout: list[str] = []
        self.messages: Counter[str] = Counter()

    async def next_stdout(self, timeout: float) -> str:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the terminal closed: {msg.type} {msg.data}")
            kind, *rest = json.loads(msg.data)
            self.messages[kind] += 1
            if kind == "stdout":
                self.stdout.append(rest[0])
                return str(rest[0])

    async def until(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = ""
        while text not in seen:
            seen = (seen + await self.next_stdout(max(0.1, deadline - time.monotonic())))[-4096:]

    async def send(self, keys: str) -> None:
        await self.ws.send_str(json.dumps(["stdin", keys]))

    async def key_rtt(self) -> float:
        t0 = time.perf_counter()
        await self.send("x")
        while "x" not in await self.next_stdout(5):
            pass
        return (time.perf_counter() - t0) * 1000

    async def newline(self) -> None:
        await self.send("\r")
        await self.until("\n", 5)

    async def finish(self, timeout: float = 20) -> None:
        """End the echo program (Enter, then Ctrl-D at the start of a line) and read
        until the server closes."""
        with contextlib.suppress(Exception):
            await self.send("\r")
            await self.send("\x04")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = await asyncio.wait_for(self.ws.receive(), deadline - time.monotonic())
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
        await self.ws.close()


class ExecTTY:
    """The same keystrokes over a bare `docker exec -it` socket (no CodeX): how much of
    CodeX's round trip is the container hop itself."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.loop = asyncio.get_running_loop()

    async def _until(self, marker: bytes, timeout: float) -> None:
        seen = b""
        while marker not in seen:
            data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 4096), timeout)
            if not data:
                raise RuntimeError("the exec stream ended")
            seen = (seen + data)[-4096:]

    async def until(self, text: str, timeout: float) -> None:
        await self._until(text.encode(), timeout)

    async def key_rtt(self) -> float:
        t0 = time.perf_counter()
        await self.loop.sock_sendall(self.sock, b"x")
        await self._until(b"x", 5)
        return (time.perf_counter() - t0) * 1000

    async def newline(self) -> None:
        await self.loop.sock_sendall(self.sock, b"\r")
        await self._until(b"\n", 5)

    async def finish(self) -> None:
        with contextlib.suppress(Exception):
            await self.loop.sock_sendall(self.sock, b"\r\x04")
            with contextlib.suppress(TimeoutError):
                while await asyncio.wait_for(self.loop.sock_recv(self.sock, 4096), 5):
                    pass
        self.sock.close()


ECHO_SYSTEMS = ("terminado", "docker_exec", "codex")


async def echo_series(codex_base: str, term_base: str, keys: int, pace: float) -> dict[str, Any]:
    out: dict[str, Any] = {"keys": keys, "pace_seconds": pace}
    target = await asyncio.to_thread(engine.ExecTarget, engine.api())
    try:
        async with aiohttp.ClientSession() as http:
            session_id = await post_execute(http, codex_base, programs.ECHO_PROGRAM)
            conns: dict[str, Any] = {
                "codex": TermWS(
                    await http.ws_connect(f"{ws_url(codex_base)}/ws/terminal/{session_id}")
                ),
                "terminado": TermWS(await http.ws_connect(f"{term_base}/echo")),
                "docker_exec": ExecTTY(
                    await asyncio.to_thread(
                        target.tty_session, ["python3", "-c", programs.ECHO_PROGRAM]
                    )
                ),
            }
            for conn in conns.values():
                await conn.until("ready", 30)
            await asyncio.sleep(0.5)  # CodeX announces the read; let that pass
            paced: dict[str, list[float]] = {name: [] for name in ECHO_SYSTEMS}
            # Paced: one keystroke every `pace` seconds on each connection, in turn,
            # each timed alone (a typist at 1/pace characters a second).
            for i in range(keys):
                for name in ECHO_SYSTEMS:
                    t0 = time.monotonic()
                    paced[name].append(await conns[name].key_rtt())
                    await asyncio.sleep(
                        max(0.0, pace / len(ECHO_SYSTEMS) - (time.monotonic() - t0))
                    )
                if i % 64 == 63:  # keep the line short (a canonical line holds 4095)
                    for conn in conns.values():
                        await conn.newline()
                    await asyncio.sleep(pace)
            # Back to back: the next keystroke as soon as the echo of the previous arrives.
            burst: dict[str, list[float]] = {name: [] for name in ECHO_SYSTEMS}
            for name in ECHO_SYSTEMS:
                await conns[name].newline()
                await asyncio.sleep(0.3)
                for _ in range(min(keys, 60)):
                    burst[name].append(await conns[name].key_rtt())
            for conn in conns.values():
                await conn.finish()
    finally:
        await asyncio.to_thread(target.close)
    for name in ECHO_SYSTEMS:
        out[name] = {
            "paced_ms": summary(paced[name]),
            "back_to_back_ms": summary(burst[name]),
            "raw_paced_ms": [round(v, 2) for v in paced[name]],
        }
    return out


def part_echo(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    with (
        terminado_server() as (term_base, _),
        codex_server("--time-limit", "300", name="echo") as (base, pid),
        prof.window("echo", "echo", pid),
    ):
        res = asyncio.run(echo_series(base, term_base, args.keys, args.key_pace))
    report.data["echo"] = res
    c, t = res["codex"]["paced_ms"], res["terminado"]["paced_ms"]
    report.row(
        f"echo round trip p50 / p95, CodeX (1 key / {args.key_pace * 1000:.0f} ms)",
        f"{ms(c['p50'])} / {ms(c['p95'])}",
        f"p50 <= 2 x terminado = {ms(2 * t['p50'])}",
        c["p50"] <= 2 * t["p50"],
    )
    report.row(
        "echo round trip p50 / p95, terminado (local pty)", f"{ms(t['p50'])} / {ms(t['p95'])}"
    )
    d = res["docker_exec"]["paced_ms"]
    report.row(
        "echo round trip p50 / p95, bare `docker exec -it`",
        f"{ms(d['p50'])} / {ms(d['p95'])} (CodeX's own share of its p50:"
        f" {c['p50'] - d['p50']:.1f} ms)",
    )
    cb, tb, db = (res[n]["back_to_back_ms"]["p50"] for n in ("codex", "terminado", "docker_exec"))
    report.row(
        "echo p50 back to back (next key on echo): CodeX / terminado / docker exec",
        f"{ms(cb)} / {ms(tb)} / {ms(db)}",
    )


async def read_flood(
    ws: aiohttp.ClientWebSocketResponse, expected_x: int, timeout: float
) -> dict[str, Any]:
    """Read frames as fast as possible, counting "x", until all arrived: MB/s over the
    wire bytes from the first byte to the last."""
    got = 0
    frames = 0
    first = last = None
    deadline = time.monotonic() + timeout
    while got < expected_x:
        msg = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            break
        data = msg.data
        n = data.count("x" if isinstance(data, str) else b"x")
        if n:
            if first is None:
                first = time.perf_counter()
            got += n
            frames += 1
            last = time.perf_counter()
    return {"x_received": got, "frames": frames, "first": first, "last": last}


async def flood_once(
    kind: str, base: str, nbytes: int, pid: int, http: aiohttp.ClientSession
) -> dict[str, Any]:
    expected = programs.flood_x_count(nbytes)
    c0 = cpu_seconds(pid)
    me0 = time.process_time()
    eng = EngineMeter()
    t0 = time.perf_counter()
    if kind == "terminado":
        ws = await http.ws_connect(f"{base}/flood/{nbytes}", max_msg_size=0)
    else:
        session_id = await post_execute(http, base, programs.flood_program(nbytes))
        path = "/raw" if kind == "codex_raw" else ""
        ws = await http.ws_connect(f"{ws_url(base)}/ws/terminal/{session_id}{path}", max_msg_size=0)
    r = await read_flood(ws, expected, 300)
    t_end = time.perf_counter()
    rss = rss_bytes(pid)
    await ws.close()
    cpu = cpu_seconds(pid) - c0
    client_cpu = time.process_time() - me0
    engine_cpu = eng.stop()
    wire = programs.flood_wire_bytes(nbytes)
    span = (r["last"] - r["first"]) if r["first"] and r["last"] else None
    return {
        "complete": r["x_received"] >= expected,
        "x_received": r["x_received"],
        "x_expected": expected,
        "frames": r["frames"],
        "mb_per_s": round(wire / MB / span, 1) if span else None,
        "seconds_first_to_last_byte": round(span, 3) if span else None,
        "seconds_total": round(t_end - t0, 3),
        "server_cpu_seconds": round(cpu, 2),
        "engine_cpu_seconds": engine_cpu,  # dockerd, containerd, shims (any container)
        "client_cpu_seconds": round(client_cpu, 2),  # this benchmark process
        "server_rss_mb_after": round(rss / 2**20, 1),
    }


def part_throughput(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    nbytes = int(args.flood_mb * 2**20)
    kinds = ("terminado", "docker_exec", "codex_raw", "codex_json")
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    flags = ("--output-limit-bytes", str(8 * nbytes), "--time-limit", "600")
    target = engine.ExecTarget(engine.api())
    try:
        with (
            terminado_server() as (term_base, term_pid),
            # A finished session (its whole log) is forgotten after 2 s, so each run
            # starts without the previous ones' output in memory.
            codex_server(*flags, name="throughput", env={"CODEX_SESSION_TTL": "2"}) as (base, pid),
        ):

            async def runs() -> None:
                timeout = aiohttp.ClientTimeout(total=None)
                async with aiohttp.ClientSession(timeout=timeout) as http:
                    for i in range(args.flood_runs):
                        for kind in kinds:
                            if kind == "docker_exec":
                                r = await asyncio.to_thread(
                                    target.flood_mb_s,
                                    programs.flood_program(nbytes),
                                    programs.flood_wire_bytes(nbytes),
                                )
                            else:
                                url, server = (
                                    (term_base, term_pid) if kind == "terminado" else (base, pid)
                                )
                                part = "throughput" if kind == "codex_raw" else "-"
                                with prof.window(part, f"throughput_{kind}_{i}", pid):
                                    r = await flood_once(kind, url, nbytes, server, http)
                            results[kind].append(r)
                            print(f"  {kind}: {r['mb_per_s']} MB/s", flush=True)
                            await asyncio.sleep(3)

            asyncio.run(runs())
            peak = peak_rss_bytes(pid)
    finally:
        target.close()
    data: dict[str, Any] = {
        "bytes_printed": nbytes,
        "runs": results,
        "codex_peak_rss_mb": round(peak / 2**20, 1),
    }
    med: dict[str, float | None] = {}
    for kind, rs in results.items():
        speeds = [r["mb_per_s"] for r in rs if r["mb_per_s"] and r["complete"]]
        med[kind] = statistics.median(speeds) if speeds else None
        data[kind + "_median_mb_per_s"] = med[kind]
    report.data["throughput"] = data
    t, c = med["terminado"], med["codex_raw"]

    def mbs(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} MB/s"

    wire_mb = programs.flood_wire_bytes(nbytes) / MB

    def cost(kind: str, key: str) -> str:
        """Median CPU ms per MB moved, of one process group, over a kind's runs."""
        values = [r[key] / wire_mb * 1000 for r in results[kind] if r.get(key) is not None]
        return f"{statistics.median(values):.0f}" if values else "-"

    report.row(
        f"throughput {args.flood_mb:g} MiB, CodeX /raw (median of {args.flood_runs})",
        f"{mbs(c)}; CPU ms/MB: server {cost('codex_raw', 'server_cpu_seconds')},"
        f" engine {cost('codex_raw', 'engine_cpu_seconds')}; peak RSS"
        f" {data['codex_peak_rss_mb']:.0f} MB",
        f">= terminado = {mbs(t)}",
        c is not None and t is not None and c >= t,
    )
    report.row(
        "throughput, CodeX /ws/terminal (JSON)",
        f"{mbs(med['codex_json'])}; CPU ms/MB: server {cost('codex_json', 'server_cpu_seconds')}",
    )
    report.row(
        "throughput, terminado (local pty, JSON)",
        f"{mbs(t)}; CPU ms/MB: server {cost('terminado', 'server_cpu_seconds')}",
    )
    floor = med["docker_exec"]
    report.row(
        "throughput, bare `docker exec -it` read by the SDK",
        f"{mbs(floor)}; CPU ms/MB: engine {cost('docker_exec', 'engine_cpu_seconds')}"
        + (f" (CodeX /raw gets {c / floor * 100:.0f} % of it)" if c and floor else ""),
    )


# -- 6. concurrency ---------------------------------------------------------------------


async def concurrency_run(
    base: str, pid: int, args: argparse.Namespace, prof: Profiler
) -> dict[str, Any]:
    n = args.waiting
    client_engine = engine.api()
    waiting: list[tuple[SioClient, str]] = []
    bring_up: list[float] = []
    failures: list[str] = []
    sem = asyncio.Semaphore(args.start_parallel)

    clients: list[SioClient] = []

    async def start_one(http: aiohttp.ClientSession) -> None:
        try:
            c = SioClient()
            clients.append(c)
            await c.connect(base)
            t0 = time.perf_counter()
            session_id = await post_execute(http, base, programs.WAITING)
            w = await c.join(session_id)
            waiting.append((c, session_id))
            await asyncio.wait_for(w.prompted.wait(), 120)
            bring_up.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            sem.release()

    out: dict[str, Any] = {"sessions": n}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        # Bring up: at most start_parallel sessions starting at once (a 2-core machine
        # does not create 100 containers in one burst well), the next one as soon as a
        # session reports its prompt.
        t_up = time.perf_counter()
        tasks = []
        for _ in range(n):
            await asyncio.wait_for(sem.acquire(), 180)
            tasks.append(asyncio.ensure_future(start_one(http)))
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        out["bring_up_seconds"] = round(time.perf_counter() - t_up, 1)
        out["bring_up_ms_per_session"] = summary(bring_up)
        prompts = sum(1 for c, s in waiting if c.watches[s].prompts)
        out["prompts_received"] = prompts
        out["start_failures"] = failures[:5]
        await asyncio.sleep(args.settle)

        # Idle: all waiting, nothing else happening.
        rss_samples = []
        with prof.window("concurrency", "concurrency_idle", pid):
            meter = CpuMeter(pid)
            deadline = time.monotonic() + args.idle_window
            while time.monotonic() < deadline:
                rss_samples.append(rss_bytes(pid))
                await asyncio.sleep(1)
            out["idle"] = meter.stop()
        out["idle"]["rss_mb_max"] = round(max(rss_samples) / 2**20, 1)
        out["containers_alive_idle"] = engine.containers_of(client_engine, pid)
        out["managed_containers_on_engine"] = engine.managed_containers(client_engine)

        # Load: a steady stream of short executions beside the waiting ones.
        stream = SioClient()
        await stream.connect(base)
        stream_times: list[float] = []
        stream_lost = 0
        stream_ids: list[str] = []

        async def short_one() -> None:
            nonlocal stream_lost
            t0 = time.perf_counter()
            try:
                session_id = await post_execute(http, base, programs.HELLO)
                stream_ids.append(session_id)
                w = await stream.join(session_id)
                await asyncio.wait_for(w.got_output.wait(), 30)
                await asyncio.wait_for(w.done.wait(), 30)
            except Exception:
                stream_lost += 1
                return
            ok = w.first_output is not None and "hi" in w.text
            ok = ok and (w.result or {}).get("status") == "ok" and w.completions == 1
            if not ok:
                stream_lost += 1
                return
            assert w.first_output is not None
            stream_times.append((w.first_output - t0) * 1000)

        count = int(args.stream_rate * args.stream_seconds)
        rss_samples = []
        with (
            engine.PoolWatch(client_engine, pid) as watch,
            prof.window("concurrency", "concurrency_stream", pid),
        ):
            meter = CpuMeter(pid)
            t_start = time.monotonic()
            shorts = []
            for i in range(count):
                delay = t_start + i / args.stream_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                shorts.append(asyncio.ensure_future(short_one()))
                if i % int(max(1, args.stream_rate)) == 0:
                    rss_samples.append(rss_bytes(pid))
            alive_under_load = engine.containers_of(client_engine, pid)
            await asyncio.wait_for(asyncio.gather(*shorts), 120)
            out["stream"] = meter.stop()
        out["stream"].update(
            {
                "executions": count,
                "rate_per_second": args.stream_rate,
                "first_output_ms": summary(stream_times),
                "raw_first_output_ms": [round(v, 1) for v in stream_times],
                "lost": stream_lost,
                "rss_mb_max": round(max(rss_samples or [0]) / 2**20, 1),
                "containers_alive": alive_under_load,
                "pool_observed_from_engine_events": watch.classify(stream_ids),
            }
        )
        await stream.close()

        # The waiting sessions must still be waiting: none ended meanwhile.
        ended_early = sum(1 for c, s in waiting if c.watches[s].completions)
        out["waiting_ended_early"] = ended_early
        # Answer every prompt; every program must print the answer and end `ok`.
        t_ans = time.perf_counter()
        for c, s in waiting:
            await c.sio.emit("input", {"input": "x", "sessionId": s})

        async def finished(c: SioClient, s: str) -> bool:
            w = c.watches[s]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.done.wait(), 120)
            return (
                (w.result or {}).get("status") == "ok" and "got x" in w.text and w.completions == 1
            )

        oks = await asyncio.gather(*(finished(c, s) for c, s in waiting))
        out["answered_ok"] = sum(oks)
        out["answer_all_seconds"] = round(time.perf_counter() - t_ans, 1)
        out["client_disconnects"] = sum(c.disconnects for c, _ in waiting)
        for c in clients:
            await c.close()
    out["events_lost"] = (
        (n - prompts) + stream_lost + (len(waiting) - sum(oks)) + (n - len(waiting))
    )
    out["server_peak_rss_mb"] = round(peak_rss_bytes(pid) / 2**20, 1)
    return out


def part_concurrency(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    wait_limit = {"CODEX_INPUT_WAIT_LIMIT": "900"}  # no waiting session may be ended
    with codex_server(
        "--max-sessions", "200", "--time-limit", "600", name="concurrency", env=wait_limit
    ) as (
        base,
        pid,
    ):
        asyncio.run(wait_pool(pid, 4))
        res = asyncio.run(concurrency_run(base, pid, args, prof))
    report.data["concurrency"] = res
    n = res["sessions"]
    idle = res["idle"]
    report.row(
        f"{n} waiting: time to bring them up ({args.start_parallel} starting at a time)",
        f"{res['bring_up_seconds']:.0f} s"
        f" (per session p50 {ms(res['bring_up_ms_per_session'].get('p50'))})",
    )
    report.row(
        f"{n} waiting: server CPU ({args.idle_window:g} s)",
        f"{idle['cpu_percent_of_one_core']:.1f} % of one core"
        f" (machine: {idle['machine_busy_cores']:.2f} cores busy)",
        "< 5 %",
        idle["cpu_percent_of_one_core"] < 5,
    )
    report.row(
        f"{n} waiting: server RSS",
        f"{res['idle']['rss_mb_max']:.0f} MB"
        f" (peak over the part {res['server_peak_rss_mb']:.0f} MB)",
        "< 300 MB",
        res["server_peak_rss_mb"] < 300,
    )
    report.row(
        f"{n} waiting: containers alive (the server's / all managed)",
        f"{res['containers_alive_idle']} / {res['managed_containers_on_engine']}",
    )
    st = res["stream"]
    obs = st["pool_observed_from_engine_events"]
    report.row(
        f"under load: first output p50 / p95"
        f" ({st['rate_per_second']:g}/s for {args.stream_seconds:g} s)",
        f"{ms(st['first_output_ms'].get('p50'))} / {ms(st['first_output_ms'].get('p95'))}"
        f"; pool hits {obs['hits']}, misses {obs['misses']}",
    )
    report.row(
        "under load: server CPU",
        f"{st['cpu_percent_of_one_core']:.0f} % of one core"
        f" (machine: {st['machine_busy_cores']:.2f} cores busy)",
    )
    report.row(
        "events lost (prompts, outputs, completions)",
        f"{res['events_lost']} ({res['answered_ok']}/{n} answered `ok`, "
        f"{st['executions'] - st['lost']}/{st['executions']} short runs `ok`)",
        "0",
        res["events_lost"] == 0,
    )


# -- 7. idle cost -------------------------------------------------------------------------


async def idle_cost(
    base: str,
    pid: int,
    sessions: int,
    seconds: float,
    code: str,
    parallel: int,
    profile: contextlib.AbstractContextManager[None],
) -> dict[str, Any]:
    """Server CPU while `sessions` programs wait (blocked in input(), or asleep), with
    no client following them."""
    async with aiohttp.ClientSession() as http:
        ids: list[str] = []
        for _ in range(sessions):
            # Paced: at most `parallel` still starting.
            for _ in range(600):
                if await running_count(http, base) - await _started(http, base, ids) < parallel:
                    break
                await asyncio.sleep(0.1)
            ids.append(await post_execute(http, base, code))
        # Wait until every one runs (and has picked its detector), bounded.
        for _ in range(600):
            if await _started(http, base, ids) == len(ids):
                break
            await asyncio.sleep(0.2)
        started = await _started(http, base, ids)
        await asyncio.sleep(5)  # settled: detectors backed off, the pool refilled
        with profile:
            meter = CpuMeter(pid)
            await asyncio.sleep(seconds)
            cpu = meter.stop()
        rss = rss_bytes(pid)
        for session_id in ids:
            await http.delete(f"{base}/api/sessions/{session_id}")
        for _ in range(300):  # until all are gone, so the next measurement is clean
            if await running_count(http, base) == 0:
                break
            await asyncio.sleep(0.2)
    pct_ = cpu["cpu_percent_of_one_core"]
    return {
        "sessions": sessions,
        "running_when_measured": started,
        **cpu,
        "per_session_cpu_percent": round(pct_ / sessions, 3),
        "server_rss_mb": round(rss / 2**20, 1),
    }


async def _started(http: aiohttp.ClientSession, base: str, ids: list[str]) -> int:
    n = 0
    for session_id in ids:
        async with http.get(f"{base}/api/sessions/{session_id}") as r:
            body = await r.json()
        if body.get("state") == "running" and body.get("detector") != "none":
            n += 1
    return n


def part_idle(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    wait_limit = {"CODEX_INPUT_WAIT_LIMIT": "900"}
    with codex_server(
        "--max-sessions", "200", "--time-limit", "600", name="idle", env=wait_limit
    ) as (base, pid):
        asyncio.run(wait_pool(pid, 4))
        runs = {}
        for name, code in (
            ("waiting", "input('? ')"),
            ("sleeping", "import time\ntime.sleep(600)"),
        ):
            window = prof.window("idle", f"idle_{name}", pid)
            runs[name] = asyncio.run(
                idle_cost(
                    base,
                    pid,
                    args.idle_sessions,
                    args.idle_window,
                    code,
                    args.start_parallel,
                    window,
                )
            )
    waiting, sleeping = runs["waiting"], runs["sleeping"]
    report.data["idle_waiting_input"] = waiting
    report.data["idle_sleeping"] = sleeping
    for name, d in (("blocked in input()", waiting), ("asleep", sleeping)):
        report.row(
            f"idle: {d['sessions']} sessions {name}, no client: server CPU",
            f"{d['cpu_percent_of_one_core']:.1f} % of one core "
            f"({d['per_session_cpu_percent']:.2f} % each), RSS {d['server_rss_mb']:.0f} MB",
        )


# -- 8. retention -------------------------------------------------------------------------

RETENTION_PROGRAM = 'print("x" * 1000000)'  # just under the default 1 MiB output limit
RETENTION_TTL = 45.0


async def retention_run(base: str, pid: int, sessions: int) -> dict[str, Any]:
    """Server RSS after `sessions` finished sessions that printed 1 MB each (default
    settings but the TTL), and again once their TTL has passed."""
    out: dict[str, Any] = {"sessions": sessions, "session_ttl": RETENTION_TTL}
    rss0 = rss_bytes(pid)
    async with aiohttp.ClientSession() as http:
        t_first = time.monotonic()
        for _ in range(sessions):
            session_id = await post_execute(http, base, RETENTION_PROGRAM)
            for _ in range(300):  # until it finished, at most 30 s
                async with http.get(f"{base}/api/sessions/{session_id}") as r:
                    body = await r.json()
                if body.get("state") == "finished":
                    break
                await asyncio.sleep(0.1)
            out.setdefault("statuses", Counter())[(body.get("result") or {}).get("status")] += 1
        t_last = time.monotonic()
        rss1 = rss_bytes(pid)
        await asyncio.sleep(max(0.0, RETENTION_TTL + 5 - (time.monotonic() - t_last)))
        async with http.get(f"{base}/api/sessions/{session_id}") as r:
            out["last_session_after_ttl_http_status"] = r.status
        rss2 = rss_bytes(pid)
    out.update(
        {
            "seconds_to_run_all": round(t_last - t_first, 1),
            "rss_mb_before": round(rss0 / 2**20, 1),
            "rss_mb_all_finished": round(rss1 / 2**20, 1),
            "rss_mb_after_ttl": round(rss2 / 2**20, 1),
            "mb_per_finished_session": round((rss1 - rss0) / 2**20 / sessions, 2),
        }
    )
    return out


def part_retention(args: argparse.Namespace, report: Report, prof: Profiler) -> None:
    env = {"CODEX_SESSION_TTL": str(RETENTION_TTL)}
    with codex_server(name="retention", env=env) as (base, pid):
        asyncio.run(wait_pool(pid, 4))
        res = asyncio.run(retention_run(base, pid, args.retained))
    report.data["retention"] = res
    report.row(
        f"memory: {res['sessions']} finished sessions that printed 1 MB each",
        f"server RSS {res['rss_mb_before']:.0f} -> {res['rss_mb_all_finished']:.0f} MB"
        f" ({res['mb_per_finished_session']:.2f} MB each, kept for the session TTL);"
        f" {res['rss_mb_after_ttl']:.0f} MB once the TTL ({RETENTION_TTL:g} s) passed",
    )


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="few runs of every part (smoke test)")
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    p.add_argument(
        "--profile", default="", help="parts during which to record the server with py-spy"
    )
    p.add_argument(
        "--profile-mode",
        choices=("gil", "active"),
        default="gil",
        help="py-spy samples: the thread holding the GIL (gil), or every thread not idle",
    )
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples a second")
    p.add_argument(
        "--codex-dir",
        type=Path,
        help="run `python -m codex` from this directory (another checkout, for an A/B run)",
    )
    p.add_argument("--runs", type=int, help="first-output runs per configuration (50)")
    p.add_argument(
        "--pace", type=float, default=0.3, help="seconds between first-output starts (0.3)"
    )
    p.add_argument("--floor-runs", type=int, help="bare docker run / exec runs (25)")
    p.add_argument("--rounds", type=int, help="rounds the first-output runs are spread over (5)")
    p.add_argument("--questions", type=int, help="prompts per detection program (45)")
    p.add_argument("--keys", type=int, help="keystrokes per echo test (200)")
    p.add_argument("--key-pace", type=float, default=0.1, help="seconds between keystrokes (0.1)")
    p.add_argument("--flood-mb", type=float, help="MiB printed by the throughput program (50)")
    p.add_argument("--flood-runs", type=int, help="throughput runs per server (5)")
    p.add_argument("--waiting", type=int, help="sessions blocked on input() at once (100)")
    p.add_argument("--start-parallel", type=int, default=4, help="sessions starting at once (4)")
    p.add_argument("--stream-rate", type=float, default=2.0, help="short executions a second (2)")
    p.add_argument("--stream-seconds", type=float, help="seconds of short executions (20)")
    p.add_argument("--idle-window", type=float, help="seconds CPU is measured over (20)")
    p.add_argument("--idle-sessions", type=int, help="sessions in the idle part (20)")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before an idle window")
    p.add_argument("--retained", type=int, help="finished 1 MB sessions in `retention` (40)")
    args = p.parse_args(argv)
    full = {
        "runs": 50, "floor_runs": 25, "rounds": 5, "questions": 45, "keys": 200, "flood_mb": 50,
        "flood_runs": 5, "waiting": 100, "stream_seconds": 20, "idle_window": 20,
        "idle_sessions": 20, "retained": 40,
    }  # fmt: skip
    quick = {
        "runs": 10, "floor_runs": 6, "rounds": 2, "questions": 6, "keys": 20, "flood_mb": 10,
        "flood_runs": 1, "waiting": 10, "stream_seconds": 5, "idle_window": 5,
        "idle_sessions": 4, "retained": 8,
    }  # fmt: skip
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.settle = min(args.settle, 2.0)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s): {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = [p for p in PARTS if p in args.only.split(",")]
    report = Report()
    if args.codex_dir is not None:
        serverproc.CODEX_DIR[0] = args.codex_dir.resolve()
    report.data["machine"] = machine_info()
    report.data["codex_dir"] = str(serverproc.CODEX_DIR[0])
    report.data["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report.data["args"] = {k: v for k, v in vars(args).items()}
    prof = Profiler(
        set(filter(None, args.profile.split(","))),
        report,
        gil=args.profile_mode == "gil",
        rate=args.profile_rate,
    )
    m = report.data["machine"]
    print(
        f"CodeX bench: {m['nproc']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}, "
        f"Docker {m['docker_server']}, load {m['loadavg_at_start']}; parts: {', '.join(only)}"
    )
    t_all = time.monotonic()
    for part in only:
        print(f"== {part}", flush=True)
        t0 = time.monotonic()
        load0 = loadavg()
        machine = MachineMeter()
        try:
            globals()[f"part_{part}"](args, report, prof)
        except Exception:
            traceback.print_exc()
            report.failed.append(part)
            report.row(f"{part}: FAILED", "see the traceback above", "runs", False)
        report.data.setdefault("part_seconds", {})[part] = round(time.monotonic() - t0, 1)
        report.data.setdefault("part_loadavg", {})[part] = [load0, loadavg()]
        report.data.setdefault("part_machine_busy_cores", {})[part] = machine.stop()
        print(f"   {time.monotonic() - t0:.0f} s", flush=True)
    busy = report.data.get("part_machine_busy_cores", {})
    report.row(
        f"machine busy during each part, cores of {os.cpu_count()} (everything running)",
        ", ".join(f"{k} {v:.2f}" for k, v in busy.items()),
    )
    report.data["total_seconds"] = round(time.monotonic() - t_all, 1)
    report.data["table"] = [vars(r) for r in report.rows]
    report.data["failed_parts"] = report.failed
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(report.data, indent=2, default=str))
    print()
    print(report.table())
    for label, prof_data in report.data.get("profiles", {}).items():
        print(
            f"\nprofile {label} ({prof_data['mode']}): {prof_data['samples']} samples in"
            f" {prof_data['window_seconds']} s ({prof_data['sampled_share_percent']} % of the"
            " possible), top functions by own samples:"
        )
        for frame, _n, share in prof_data["self"][:10]:
            print(f"  {share:5.1f} %  {frame}")
    print(f"\nJSON: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
