"""The event loop's lag: a loop held by one step is seen as a late look, once."""

from __future__ import annotations

import asyncio
import time

from codex import looplag
from codex.metrics import Metrics


async def _watch(stall: float, interval: float = 0.02) -> list[float]:
    """Looks every `interval` for ~0.3 s, with the loop held `stall` s in the middle."""
    seen: list[float] = []
    watch = asyncio.ensure_future(looplag.watch_lag(seen.append, interval))
    try:
        await asyncio.sleep(0.1)
        time.sleep(stall)  # noqa: ASYNC251 (the point: one step that holds the loop)
        await asyncio.sleep(0.2)
    finally:
        watch.cancel()
    return seen


def test_a_held_loop_is_one_late_look_and_the_next_are_on_time_again() -> None:
    seen = asyncio.run(asyncio.wait_for(_watch(0.25), 5))
    late = [i for i, lag in enumerate(seen) if lag >= 0.2]
    assert len(late) == 1, seen  # held 0.25 s: seen once, about that late
    assert seen[late[0]] < 0.5, seen
    # The next look is due an interval after the late one ran: no run of late looks
    # while a fixed schedule caught up.
    after = seen[late[0] + 1 :]
    assert after and max(after) < 0.2, seen


def test_the_histogram_at_metrics_counts_each_look() -> None:
    async def scenario() -> None:
        watch = asyncio.ensure_future(looplag.watch_lag(metrics.loop_lag.observe, 0.05))
        await asyncio.sleep(0.3)
        watch.cancel()

    metrics = Metrics()
    asyncio.run(asyncio.wait_for(scenario(), 5))
    lines = dict(
        line.rsplit(" ", 1)
        for line in metrics.render().decode().splitlines()
        if line.startswith("codex_event_loop_lag_seconds_")
    )
    assert 3 <= float(lines["codex_event_loop_lag_seconds_count"]) <= 6
    assert float(lines['codex_event_loop_lag_seconds_bucket{le="+Inf"}']) == float(
        lines["codex_event_loop_lag_seconds_count"]
    )
