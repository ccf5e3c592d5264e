"""What images and stderr marking cost a program, in one server (not part of make test).

    .venv/bin/python -m bench.display_costs                  # Docker, 3 rounds
    .venv/bin/python -m bench.display_costs --runtime local --rounds 5

``stderr``: a program printing N lines to sys.stderr (each print is two marked writes)
against the same program printing to stdout; wall time of the whole run as a wait-mode
client sees it, and the ratio. ``plot``: the first plot of a fresh sandbox, split into
importing matplotlib, pyplot, plotting and plt.show() (the PNG to the client), with the
font list the image ships and without it (matplotlib builds its own). Medians of --rounds.
Every server and client is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from typing import Any

from tests.harness import Harness, running_app

PLOT = """import os, sys, time
if sys.argv[1:] == ["fresh"]:  # no font list from the image: matplotlib builds one
    import codex_display
    codex_display.FONT_CACHE = "/nonexistent"
t0 = time.perf_counter()
import matplotlib
t1 = time.perf_counter()
import matplotlib.pyplot as plt
t2 = time.perf_counter()
plt.plot([1, 2])
t3 = time.perf_counter()
plt.show()
t4 = time.perf_counter()
print("times %.4f %.4f %.4f %.4f" % (t1 - t0, t2 - t1, t3 - t2, t4 - t3))
"""


async def wait_mode(h: Harness, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    resp = await h.request("POST", "/api/execute?wait=true", body)
    assert resp.status == 200, resp
    return time.monotonic() - started, dict(resp.body)


async def stderr_part(h: Harness, lines: int, rounds: int) -> None:
    out = f"for i in range({lines}): print(i)\n"
    err = f"import sys\nfor i in range({lines}): print(i, file=sys.stderr)\n"
    walls: dict[str, list[float]] = {"stdout": [], "stderr": []}
    for _ in range(rounds):
        for name, code in (("stdout", out), ("stderr", err)):
            wall, answer = await wait_mode(h, {"code": code})
            assert answer["result"]["status"] == "ok", answer["result"]
            walls[name].append(wall)
    a, b = statistics.median(walls["stdout"]), statistics.median(walls["stderr"])
    print(f"stderr: {lines} lines, median wall stdout {a:.3f} s, stderr {b:.3f} s ({b / a:.1f}x)")


async def plot_part(h: Harness, rounds: int) -> None:
    for label, args in (("image's font list", []), ("no font list from the image", ["fresh"])):
        parts: list[list[float]] = [[], [], [], []]
        for _ in range(rounds):
            _, answer = await wait_mode(h, {"code": PLOT, "args": args})
            found = re.search(r"times ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", answer["output"])
            assert found is not None and answer["displays"], answer
            for i in range(4):
                parts[i].append(float(found[i + 1]))
        m = [statistics.median(p) * 1000 for p in parts]
        print(
            f"plot ({label}): import matplotlib {m[0]:.0f} ms, pyplot {m[1]:.0f} ms, "
            f"plot {m[2]:.0f} ms, show {m[3]:.0f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="docker", choices=("docker", "local"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args()
    async with running_app(runtime=args.runtime, pool_size=2) as h:
        await stderr_part(h, args.lines, args.rounds)
        if args.runtime == "docker":
            await plot_part(h, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
