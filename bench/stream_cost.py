"""What one session's output costs, beyond bench.hostile's per-MB table.

    python -m bench.stream_cost one-byte [--bytes 1000000] [--runs 3] [--codex-dir DIR]
    python -m bench.stream_cost container-life [--runs 6] [--codex-dir DIR]
    python -m bench.stream_cost upload [--mib 2] [--runs 5] [--codex-dir DIR]

`one-byte`: server CPU for one session writing `--bytes` a byte at a time (one write(2)
each), from POST to `execution_complete`, and that CPU as a share of a core while it
streams. `container-life`: machine CPU (/proc/stat) per session, and dockerd's and
containerd's, for `print('')` against 1 MB of DECALN at 1000 x 1000, each batch
followed by 1.5 s for its removals and refills: what relaying a megabyte adds to a
container's life. `upload`: server CPU and seconds from POST to `execution_complete`
for a session given `--mib` of files (base64, two files) against one given none,
for a program that does not compile (the HTTP path alone: no container) and one
that runs and reads a file; the difference per MiB. Every wait is bounded; traffic
goes to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from bench import serverproc
from bench.hostile import (
    BASELINE,
    READS_GIVEN,
    WRITER,
    Server,
    given_files,
    one_run,
    pattern_program,
)

CLK_TCK = 100  # /proc/stat and /proc/<pid>/stat count in these


def _ticks(path: str, fields: slice) -> int:
    with open(path) as f:
        text = f.read()
    if path.endswith("/stat") and "(" in text:
        text = text.rsplit(")", 1)[1]
    return sum(int(x) for x in text.split()[fields])


def _machine() -> tuple[int, int, int]:
    """Busy ticks of the machine, dockerd and containerd (0 for a daemon not found)."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    busy = sum(int(cpu[i]) for i in (0, 1, 2, 5, 6))  # user nice system irq softirq
    daemons = [_pidof(name) for name in ("dockerd", "containerd")]
    ticks = [_ticks(f"/proc/{pid}/stat", slice(11, 13)) if pid else 0 for pid in daemons]
    return busy, ticks[0], ticks[1]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _pidof(name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _comm(int(entry.name)) == name:
            return int(entry.name)
    return None


def one_byte(server: Server, size: int, runs: int) -> None:
    code = WRITER.format(expr=f"b'x' * {size}", one_byte=True)
    for _ in range(runs):
        r = asyncio.run(one_run(server, 24, code, 120, False))
        share = r["cpu_ms"] / 10 / max(r["seconds"], 1e-6)
        cost = f"server CPU {r['cpu_ms']:.0f} ms in {r['seconds']} s ({share:.1f} % of a core)"
        print(f"{size} bytes: {cost}, status {r['status']}", flush=True)


def container_life(server: Server, runs: int) -> None:
    programs = (("print('')", BASELINE), ("1 MB of DECALN", pattern_program("DECALN ESC#8", False)))
    for name, code in programs * 2:
        before, cpu0 = _machine(), server.cpu()
        for _ in range(runs):
            asyncio.run(one_run(server, 1000, code, 20, False))
        time.sleep(1.5)  # its removals and the pool's refills
        after, cpu1 = _machine(), server.cpu()
        per = [(b - a) * 1000 / CLK_TCK / runs for a, b in zip(before, after, strict=True)]
        server_ms = (cpu1 - cpu0) * 1000 / runs
        daemons = f"dockerd {per[1]:.0f}, containerd {per[2]:.0f}, server {server_ms:.0f}"
        print(f"{name}: per session machine {per[0]:.0f} ms, {daemons}", flush=True)


def upload(server: Server, mib: float, runs: int) -> None:
    files = given_files(mib)
    programs = (
        ("does not compile", "print("),
        ("runs", READS_GIVEN),
    )
    for name, code in programs:
        medians = []
        for extra in ({}, {"files": files}):
            got = [asyncio.run(one_run(server, 24, code, 60, False, extra)) for _ in range(runs)]
            cpu = statistics.median(r["cpu_ms"] for r in got)
            seconds = statistics.median(r["seconds"] for r in got)
            medians.append((cpu, seconds))
            given = f"{mib:g} MiB of files" if extra else "no files"
            print(
                f"{name}, {given}: server CPU {cpu:.0f} ms, {seconds:.2f} s "
                f"(medians of {runs}; statuses {sorted({r['status'] for r in got})})",
                flush=True,
            )
        (c0, s0), (c1, s1) = medians
        print(
            f"{name}: per MiB given, server CPU {(c1 - c0) / mib:.0f} ms, {(s1 - s0) / mib:.2f} s",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["one-byte", "container-life", "upload"])
    p.add_argument("--bytes", type=int, default=1_000_000, help="one-byte: bytes written")
    p.add_argument("--runs", type=int, default=0, help="sessions (3 one-byte, 6 life, 5 upload)")
    p.add_argument("--mib", type=float, default=2.0, help="upload: MiB of files given")
    p.add_argument("--codex-dir", type=Path, help="run the server from this checkout")
    args = p.parse_args()
    if args.codex_dir:
        serverproc.CODEX_DIR[0] = args.codex_dir.resolve()
    server = Server(f"stream-cost-{args.what}")
    server.start()
    try:
        if args.what == "one-byte":
            one_byte(server, args.bytes, args.runs or 3)
        elif args.what == "upload":
            upload(server, args.mib, args.runs or 5)
        else:
            container_life(server, args.runs or 6)
    finally:
        server.close()


if __name__ == "__main__":
    main()
