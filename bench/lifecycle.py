"""Where the engine's time goes in one sandbox's life: create, start, exec to the first
byte, kill, remove, each timed, and the whole machine's CPU per cycle, for containers
made exactly as CodeX makes them (codex.runtime.docker.hardening).

    python -m bench.lifecycle [--runtime runc|crun] [--cycles 15]

Cycles run one after another; `--runtime crun` needs crun registered with the engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench import engine, serverproc
from codex.config import load
from codex.runtime.docker import hardening

PHASES = ("create", "start", "exec", "kill", "remove", "total")
DAEMONS = ("dockerd", "containerd")
UID = 70000  # far from the server's uid block: a bench container is nobody's sandbox


def machine_busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_seconds(name: str) -> float:
    """CPU seconds of the long-lived processes called `name` (dockerd, containerd)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == name:
                    total += serverproc.cpu_seconds(int(pid))
        except OSError:
            continue  # gone meanwhile
    return total


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", default="", help="OCI runtime (empty: the engine's default)")
    p.add_argument("--cycles", type=int, default=15)
    args = p.parse_args(argv)
    api = engine.api()
    settings = load([])
    times: dict[str, list[float]] = {k: [] for k in PHASES}
    busy0 = machine_busy_seconds()
    daemons0 = {n: process_seconds(n) for n in DAEMONS}
    for i in range(args.cycles):
        labels = {engine.BENCH_LABEL: "lifecycle"}
        config = hardening.container_config(api, settings, UID + i, labels, None, args.runtime)
        t0 = time.perf_counter()
        cid = api.create_container(**config)["Id"]
        t1 = time.perf_counter()
        api.start(cid)
        t2 = time.perf_counter()
        exec_id = api.exec_create(cid, ["python3", "-c", "print('hi')"], tty=True)["Id"]
        sock = engine._sock(api.exec_start(exec_id, socket=True, tty=True))
        engine._first_byte(sock, 30)
        t3 = time.perf_counter()
        sock.close()
        api.kill(cid)
        t4 = time.perf_counter()
        api.remove_container(cid, force=True)
        t5 = time.perf_counter()
        for k, v in zip(
            PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0), strict=True
        ):
            times[k].append(v * 1000)
    cpu = machine_busy_seconds() - busy0
    daemons = {n: (process_seconds(n) - v) / args.cycles * 1000 for n, v in daemons0.items()}
    medians = " ".join(f"{k} {statistics.median(v):.0f}" for k, v in times.items())
    per_cycle = cpu / args.cycles * 1000
    name = args.runtime or "default"
    split = ", ".join(f"{n} {v:.0f}" for n, v in daemons.items())
    rest = per_cycle - sum(daemons.values())
    print(
        f"{name}: median ms {medians} | machine CPU/cycle {per_cycle:.0f} ms "
        f"({split}, the rest {rest:.0f}: shims, the OCI runtime, the containers, this process)"
    )


if __name__ == "__main__":
    main()
