"""How many ready sandboxes the next moments call for.

A class is judged in the second after the teacher says "Run": forty learners, two
cores, and an engine that makes five to eight containers a second. Whatever is not
ready before that second is waited for, so the pool grows *ahead* of demand, from two
signals:

- pages open without a running program (Socket.IO connections and terminals, less the
  executions running): each is a Run that may come any moment;
- the recent rate of Run (asks of the pool over the last RATE_WINDOW seconds that its
  share rule granted: one network's churn is not demand) times LEAD, the seconds a
  refill takes under load: what arrives before a refill could.

The target is the larger of the two and the floor, held for ``linger`` seconds after
demand last called for it (a class runs again after reading its output), then back to
the floor. It never exceeds the ceiling, the headroom under max_sessions, or what the
memory budget holds at the measured footprint of one ready sandbox.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

RATE_WINDOW = 5.0  # seconds of asks the rate is taken over
LEAD = 2.0  # seconds: a refill's time under load, doubled for its variance
MAX_ASKS = 1024  # asks remembered (a burst beyond this is "many" anyway)
# What one ready sandbox holds until one is measured: its processes (~12 MiB: the
# supervisor and the child interpreter, docker-init, sleep) and the engine's shim
# (~3 MiB private) with room to spare.
DEFAULT_FOOTPRINT = 24 << 20
SMOOTHING = 0.2  # weight of a new footprint measurement


class Demand:
    def __init__(
        self, floor: int, ceiling: int, budget_bytes: int = 0, linger: float = 60.0
    ) -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self.budget_bytes = budget_bytes
        self.linger = linger
        self.footprint = DEFAULT_FOOTPRINT  # bytes one ready sandbox holds, measured
        # Pages open without a running program (set by the registry, as headroom is).
        self.idle_clients: Callable[[], int] = lambda: 0
        self._asks: deque[float] = deque(maxlen=MAX_ASKS)
        self._held = floor  # the size demand last called for
        self._held_at = -math.inf

    def asked(self, now: float | None = None) -> None:
        self._asks.append(time.monotonic() if now is None else now)

    def measured(self, nbytes: int) -> None:
        """One ready sandbox was found to hold `nbytes`."""
        if nbytes > 0:
            self.footprint = round(self.footprint * (1 - SMOOTHING) + nbytes * SMOOTHING)

    def rate(self, now: float) -> float:
        """Asks per second over the last RATE_WINDOW seconds."""
        while self._asks and self._asks[0] < now - RATE_WINDOW:
            self._asks.popleft()
        return len(self._asks) / RATE_WINDOW

    def affordable(self) -> int:
        """Ready sandboxes the memory budget holds (the ceiling when there is none)."""
        if self.budget_bytes <= 0:
            return self.ceiling
        return max(min(self.floor, self.ceiling), self.budget_bytes // max(1, self.footprint))

    def target(self, headroom: int, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        wanted = max(self.floor, self.idle_clients(), math.ceil(self.rate(now) * LEAD))
        if wanted >= self._held or now - self._held_at > self.linger:
            self._held, self._held_at = wanted, now
        return max(0, min(self._held, self.ceiling, self.affordable(), headroom))
