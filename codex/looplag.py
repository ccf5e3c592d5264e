"""How late the event loop runs a timer: the server's own share of a slowdown.

Every learner's requests, frames and screen work share one event loop, so a step that
holds it delays everyone. A timer due every ``INTERVAL`` seconds runs late by as long
as the loop was busy when it fell due; that lateness goes to a histogram
(``codex_event_loop_lag_seconds`` at /metrics), which tells an operator, and
bench.hostile beside each attack, whether a slow first output was the server's loop
or the engine and the machine behind it.

A stall shorter than the interval is seen in proportion to its length (it must cover
a due time), so the histogram's tail samples the stalls; it does not list every one.
Four looks a second cost nothing measurable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

INTERVAL = 0.25  # seconds between two looks


async def watch_lag(observe: Callable[[float], None], interval: float = INTERVAL) -> None:
    """Observe each look's lateness until cancelled. The next look is due ``interval``
    after this one ran, not after it was due: one long stall is one late look, not a
    run of them while the schedule catches up."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))
