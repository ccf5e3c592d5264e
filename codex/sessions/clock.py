"""Limits on an execution's time: running time, not wall time.

A learner thinking about an answer is not a runaway program: time blocked on input
does not count against ``time_limit``. A single wait longer than ``input_wait_limit``
ends the session instead (an abandoned tab must not hold a container forever).

But a program may wait for input in one thread and compute in another: during a
wait, the CPU time the sandbox uses is charged instead of the wall time, so a wait
can never hide work. It is looked at by the loop's one sweep over waiting sessions
(codex.sessions.input.sweep), once a second, not by a timer per session: a class of
waiting learners is one wake-up a second, not forty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from codex.sessions.input.sweep import sweep


def _nothing() -> None:
    pass


def _no_cpu() -> float | None:
    return None


class RunClock:
    def __init__(
        self,
        limit: float,
        wait_limit: float,
        on_timeout: Callable[[], None],
        on_abandoned: Callable[[], None],
        cpu_seconds: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.limit = limit
        self.wait_limit = wait_limit
        self._on_timeout = on_timeout
        self._on_abandoned = on_abandoned
        self._ran = 0.0
        self._since: float | None = None
        self._cpu_seconds = cpu_seconds
        self._timer: asyncio.TimerHandle | None = None
        self._ticking = False  # charged by the sweep while it waits
        self._cpu_mark: float | None = None
        self._stopped = False

    @property
    def elapsed(self) -> float:
        """Seconds of running time so far."""
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return self._ran + running

    def start(self) -> None:
        self.resume()

    def pause(self) -> None:
        """The program waits for input: stop counting, start the wait's own limit."""
        if self._stopped or self._since is None:
            return
        self._ran += time.monotonic() - self._since
        self._since = None
        self._arm(self.wait_limit, self._on_abandoned)
        self._cpu_mark = self._cpu_seconds()
        if self._cpu_mark is not None:
            self._ticking = True
            sweep().add(self, self._charge_cpu, _nothing)

    def _charge_cpu(self) -> bool:
        """While waiting: charge the CPU time used since the last look; False once
        there is nothing more to charge (the sweep lets it go)."""
        if self._stopped or self._since is not None or self._cpu_mark is None:
            self._ticking = False
            return False
        now = self._cpu_seconds()
        if now is None:
            self._ticking = False
            return False
        self._ran += max(0.0, now - self._cpu_mark)
        self._cpu_mark = now
        if self._ran >= self.limit:
            self._ticking = False
            self._on_timeout()
            return False
        return True

    def resume(self) -> None:
        if self._stopped or self._since is not None:
            return
        self._stop_ticker()
        self._since = time.monotonic()
        self._arm(max(0.0, self.limit - self._ran), self._on_timeout)

    def release(self) -> None:
        """Stopped for good: drop the callbacks (they point back at the session)."""
        self.stop()
        self._on_timeout = self._on_abandoned = _nothing
        self._cpu_seconds = _no_cpu

    def stop(self) -> None:
        if self._since is not None:
            self._ran += time.monotonic() - self._since
            self._since = None
        self._stopped = True
        self._stop_ticker()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop_ticker(self) -> None:
        if self._ticking:
            self._ticking = False
            sweep().discard(self)

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, action)
