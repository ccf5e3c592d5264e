"""Who follows a session: its clients, the pace they set, and what happens when the
last one leaves.

The oldest follower controls the program: when it trails by more than HIGH_WATER
chars, the session stops reading the terminal until it catches up, so the engine's
buffers fill and the program blocks in write(), costing nothing. When the last
client leaves mid-run, the session keeps going for a grace period (a reload, a flaky
network) and is then cancelled rather than run for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from codex.sessions.eventlog import EventLog, Follower

HIGH_WATER = 256 * 1024


def _ignore() -> None:
    pass


class Presence:
    def __init__(self, log: EventLog, grace: float, on_abandoned: Callable[[], None]) -> None:
        self.log = log
        self.grace = grace
        self._on_abandoned = on_abandoned
        self.followers: list[Follower] = []  # oldest first
        self._progress = asyncio.Event()  # set when a follower delivers or leaves
        self._grace: asyncio.TimerHandle | None = None

    def lag(self) -> int:
        """How many chars the controlling follower trails the log by."""
        if not self.followers:
            return 0
        return self.log.total_chars - self.followers[0].delivered

    async def until_caught_up(self, stopped: Callable[[], bool]) -> None:
        while self.lag() > HIGH_WATER // 2 and not stopped():
            self._progress.clear()
            await self._progress.wait()

    def wake(self) -> None:
        """Whoever waits in until_caught_up looks again (the session is stopping)."""
        self._progress.set()

    def attach(self, follower: Follower) -> None:
        self.followers.append(follower)
        self.end_grace()  # someone came back in time

    def detach(self, follower: Follower, *, running: bool) -> None:
        self.followers.remove(follower)
        self.delivered(follower, follower.delivered)  # a leaving controller releases it
        if not self.followers and running:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self.grace, self._on_abandoned)

    def delivered(self, follower: Follower, upto: int) -> None:
        follower.delivered = upto
        self._progress.set()

    def release(self) -> None:
        self.end_grace()
        self.followers.clear()
        self._on_abandoned = _ignore  # the callback into the session (a cycle)

    def end_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
