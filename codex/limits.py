"""Limits on an execution's time: running time, not wall time.

A learner thinking about an answer is not a runaway program: time blocked on input
does not count against ``time_limit``. A single wait longer than ``input_wait_limit``
ends the session instead (an abandoned tab must not hold a container forever).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RunClock:
    def __init__(
        self,
        limit: float,
        wait_limit: float,
        on_timeout: Callable[[], None],
        on_abandoned: Callable[[], None],
    ) -> None:
        self.limit = limit
        self.wait_limit = wait_limit
        self._on_timeout = on_timeout
        self._on_abandoned = on_abandoned
        self._ran = 0.0
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
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

    def resume(self) -> None:
        if self._stopped or self._since is not None:
            return
        self._since = time.monotonic()
        self._arm(max(0.0, self.limit - self._ran), self._on_timeout)

    def stop(self) -> None:
        if self._since is not None:
            self._ran += time.monotonic() - self._since
            self._since = None
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, action)
