"""How a terminal's reads become trips through the output pipeline: what is held
back, for how long, and the budget of trips a stream may make. Execution.output()
(codex.runtime.base) applies these.
"""

from __future__ import annotations

import asyncio
import time

# A read that found data waiting takes whatever else is ready too (up to BATCH bytes):
# one trip through the output pipeline per batch, not per kernel read (a pty gives at
# most 4 KiB a read). A batch smaller than SMALL_READ that found data waiting is a
# program writing a few bytes at a time: it is held back, first for COALESCE_DELAY,
# each next time twice as long up to COALESCE_MAX, so such a stream costs the server
# about ten trips a second. Each trip costs a millisecond or more whatever its size
# (a frame to every client). A read that had to wait QUIET_GAP (a quiet spell) starts
# the pauses over. Reads before the program's start (its go record), and the first
# ANSWER_READS after it or after input sent to it, are not held either: the first
# line, an echo, the reply and the next prompt come at once, however fast the keys.
# QUIET_GAP is not ~0: the engine relays a program writing a byte at a time in bursts
# a few ms apart, and at 2 ms nearly every read "had waited", which made ~70 trips a
# second of such a stream.
#
# And whatever the spacing of its reads (a writer pausing just over QUIET_GAP between
# bytes makes every read a quiet spell's), a stream's small trips are paced: TRIP_BURST
# at once, then TRIP_RATE a second (Jupyter's kernels flush a stream 5 times a second).
# Each trip costs ~1.1 ms of server CPU on the 2-core machine, a third of it the input
# detector's look after it; a byte-at-a-time program at ~250 KB/s made 12-16 a second.
# Not paced: a trip after a pause of PAUSE_GAP (a program printing a line every 100 ms
# is shown live: at most 20 such trips a second), a full trip (FULL_TRIP) and the short
# one after it (a flood's tail), and the free reads above. A trip waiting for its turn
# goes once PAUSE_GAP passes without a byte (the program stopped: it may be at a
# prompt), or at once when the input detector asks for a sync or input is sent, so
# neither prompts nor echoes wait out the budget.
BATCH = 65536
SMALL_READ = 2048
FULL_TRIP = BATCH  # a trip this big is worth its fixed cost: never waits for the budget
QUIET_GAP = 0.015
COALESCE_DELAY = 0.01
COALESCE_MAX = 0.1
ANSWER_READS = 3
TRIP_RATE = 4.0
TRIP_BURST = 4
PAUSE_GAP = 0.05  # a read that waited this long is no part of a sustained stream


class TripBudget:
    """A token bucket for one stream's trips through the output pipeline."""

    def __init__(self, rate: float = TRIP_RATE, burst: int = TRIP_BURST) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now

    def wait(self) -> float:
        """Seconds until the next trip may go (0: now)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """A trip went (one hurried ahead of its turn leaves the bucket empty, no less)."""
        self._refill()
        self.tokens = max(0.0, self.tokens - 1)


def settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
