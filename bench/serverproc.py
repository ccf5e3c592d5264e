"""Processes the benchmarks measure: `python -m codex` and a terminado server, each in
its own process on a free loopback port; and how to read a process's CPU and memory.

Every wait here is bounded in time; every process started here is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# Where `python -m codex` runs from: this checkout, or another one given with
# --codex-dir (an A/B comparison with an older commit, e.g. from `git archive`).
CODEX_DIR = [ROOT]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{url} did not answer 200 within {seconds:g} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _log_file(name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"server-{name}.log"


# Every benchmark client is 127.0.0.1, so per-address limits would measure the limiter:
# they are off. Set through the environment, which a server without these settings
# ignores (a flag it does not know would stop it).
BENCH_ENV = {
    "CODEX_MAX_SESSIONS_PER_IP": "100000",
    "CODEX_RATE_LIMIT_EXECUTE": "",
    "CODEX_RATE_LIMIT_JOIN": "",
}


@contextlib.contextmanager
def codex_server(
    *flags: str, name: str = "codex", env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Yields (base_url, pid) of a running `python -m codex`; stops it afterwards
    (SIGTERM: the server removes its containers). Its log goes to
    bench/results/server-<name>.log. BENCH_ENV, then `env`, are added to its
    environment."""
    port = free_port()
    log_path = _log_file(name)
    with open(log_path, "ab") as log:
        log.write(
            f"\n== {time.ctime()} {CODEX_DIR[0]}: python -m codex {' '.join(flags)}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "codex",
                "--host", LOOPBACK, "--port", str(port), "--log-level", "warning", *flags,
            ],
            cwd=CODEX_DIR[0],
            env={**os.environ, **BENCH_ENV, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://{LOOPBACK}:{port}"
    try:
        _wait_http(base + "/readyz", proc, 60)
        yield base, proc.pid
    finally:
        _stop(proc)


@contextlib.contextmanager
def terminado_server() -> Iterator[tuple[str, int]]:
    """Yields (ws_base, pid) of bench.termserver (terminado on local ptys)."""
    port = free_port()
    log_path = _log_file("terminado")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.termserver", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_http(f"http://{LOOPBACK}:{port}/healthz", proc, 30)
        yield f"ws://{LOOPBACK}:{port}", proc.pid
    finally:
        _stop(proc)


# -- what a process costs ---------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the whole process (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of the whole process (every thread), in seconds."""
    return sum(cpu_split(pid))


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of the process's live threads, to the nanosecond (schedstat), where
    /proc/<pid>/stat counts in 10 ms ticks. A thread that has ended no longer counts:
    compare two readings only across a stretch in which the server keeps its threads
    (its executor's threads live as long as it does)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total / 1e9


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_bytes(pid: int) -> int:
    return _status_kb(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    return _status_kb(pid, "VmHWM") * 1024


def system_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class CpuMeter:
    """CPU of one process and of the whole machine over a window."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.monotonic()
        self.u0, self.k0 = cpu_split(pid)
        self.s0 = system_busy()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        u1, k1 = cpu_split(self.pid)
        cpu = (u1 - self.u0) + (k1 - self.k0)
        busy1, total1 = system_busy()
        busy = busy1 - self.s0[0]
        total = total1 - self.s0[1]
        return {
            "seconds": round(elapsed, 2),
            "cpu_seconds": round(cpu, 3),
            "cpu_percent_of_one_core": round(cpu / elapsed * 100, 2) if elapsed else 0.0,
            "user_seconds": round(u1 - self.u0, 3),
            "system_seconds": round(k1 - self.k0, 3),
            # Everything on the machine (the engine, other users' work included), in
            # cores busy: context for the numbers measured beside it.
            "machine_busy_cores": round(busy / total * (os.cpu_count() or 1), 2) if total else 0.0,
        }


def engine_pids() -> list[int]:
    """The Docker engine on /var/run/docker.sock: dockerd, its containerd, and the
    containerd shims (one per container, which relay a TTY exec's stream). Another
    engine on this machine (its own --host, its own containerd) is left out."""
    out = []
    for entry in _listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _read(f"/proc/{entry}/cmdline").split("\0")
        name = Path(argv[0]).name if argv and argv[0] else ""
        args = " ".join(argv[1:])
        ours = (
            "--host" not in args or "/var/run/docker.sock" in args
            if name == "dockerd"
            else name in ("containerd", "containerd-shim-runc-v2") and "/var/run/docker/" in args
        )
        if ours:
            out.append(int(entry))
    return out


class EngineMeter:
    """CPU the Docker engine (dockerd, containerd, shims) used over a window."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {pid: _cpu_or_zero(pid) for pid in engine_pids()}

    def stop(self) -> float:
        total = 0.0
        for pid in engine_pids():  # a shim started meanwhile counts from zero
            total += _cpu_or_zero(pid) - self.c0.get(pid, 0.0)
        return round(total, 3)


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0


class MachineMeter:
    """Cores busy on the whole machine over a window (all processes, anyone's)."""

    def __init__(self) -> None:
        self.s0 = system_busy()

    def stop(self) -> float:
        busy1, total1 = system_busy()
        total = total1 - self.s0[1]
        return round((busy1 - self.s0[0]) / total * (os.cpu_count() or 1), 2) if total else 0.0


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, object]:
    mem_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        docker_version = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        docker_version = "unknown"

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": os.uname().release,
        "docker_server": docker_version,
        "python": sys.version.split()[0],
        "git_head": git("rev-parse", "--short", "HEAD"),
        # Others change codex/ while benchmarks run: record what was measured.
        "codex_uncommitted_files": len(git("status", "--short", "codex").splitlines()),
        "codex_diff_sha1": _diff_hash(git("diff", "HEAD", "--", "codex")),
        "loadavg_at_start": loadavg(),
    }


def _diff_hash(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:12] if text else ""
