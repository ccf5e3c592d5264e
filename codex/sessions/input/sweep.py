"""One sweep over every waiting session, instead of timers per session.

Once a session's ``input_required`` is out, the only question left is whether the
program's read ended by other means (a signal, a timeout, another thread): an answer
from the client wakes its watcher directly. A class of forty learners reading a prompt
would otherwise be forty timers waking forty tasks twice a second; here one callback
looks at each blocked task's syscall and context-switch count in turn, and wakes only
the watchers whose wait ended. The run clock charges a waiting program's CPU time in
the same sweep (codex.sessions.clock): one wake-up a second for the whole class.

Each tick's work is bounded in CPU time (TICK_BUDGET): with more waits than fit, a tick
goes on from where the last one stopped, so every wait is looked at in turn, less
often, and the sweep never takes more than TICK_BUDGET / INTERVAL of a core.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between sweeps: how late a wait that ended by itself is seen
TICK_BUDGET = 0.005  # CPU seconds one sweep may spend (0.5 % of a core at INTERVAL)


class WaitSweep:
    def __init__(self) -> None:
        # key -> (is it still waiting?, tell its watcher it is not)
        self._waits: OrderedDict[object, tuple[Callable[[], bool], Callable[[], None]]] = (
            OrderedDict()
        )
        self._timer: asyncio.TimerHandle | None = None
        self.ticks = 0
        self.checks = 0

    def __len__(self) -> int:
        return len(self._waits)

    def add(self, key: object, still: Callable[[], bool], ended: Callable[[], None]) -> None:
        self._waits[key] = (still, ended)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(INTERVAL, self._tick)

    def discard(self, key: object) -> None:
        self._waits.pop(key, None)
        if not self._waits and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        self.ticks += 1
        t0 = time.thread_time()
        for _ in range(len(self._waits)):
            if time.thread_time() - t0 >= TICK_BUDGET:
                break
            key, (still, ended) = next(iter(self._waits.items()))
            self._waits.move_to_end(key)  # the next tick starts with the ones not seen
            self.checks += 1
            try:
                waiting = still()
            except Exception:
                log.exception("input sweep: checking a wait failed")
                waiting = False
            if not waiting:
                del self._waits[key]
                ended()
        if self._waits:
            self._timer = asyncio.get_running_loop().call_later(INTERVAL, self._tick)


_SWEEPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WaitSweep] = (
    weakref.WeakKeyDictionary()
)


def sweep() -> WaitSweep:
    """The running loop's sweep (one per loop: the server has one, each test its own)."""
    loop = asyncio.get_running_loop()
    found = _SWEEPS.get(loop)
    if found is None:
        found = _SWEEPS[loop] = WaitSweep()
    return found
