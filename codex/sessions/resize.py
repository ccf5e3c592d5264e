"""A session's terminal size, and how it reaches the sandbox.

Resizes are coalesced: the program's terminal gets the latest size, at most one engine
call per RESIZE_INTERVAL however many arrive (each is a Docker API call). Before the
supervisor's `go` it sets the job's size itself; the latest size asked for meanwhile
(the page sends one as soon as its terminal fits) is applied right after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

RESIZE_INTERVAL = 0.05  # seconds between two resizes of one sandbox's terminal


class Resizer:
    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self._apply: Callable[[int, int], Awaitable[None]] | None = None
        self._sized: tuple[int, int] | None = None  # what the sandbox has (None until go)
        self._task: asyncio.Future[None] | None = None
        # Sizes asked for and sizes applied, counted, for want(wait=True).
        self._asked = self._applied_gen = 0
        self._applied_event = asyncio.Event()

    @property
    def live(self) -> bool:
        """Does the sandbox take sizes yet (its `go` came)?"""
        return self._sized is not None

    async def want(self, rows: int, cols: int, *, wait: bool = False) -> bool:
        """Ask for a size (already clamped); False if it is the current one. ``wait``:
        return once this size (or a later one) reached the sandbox, if it is running."""
        if (rows, cols) == (self.rows, self.cols):
            return False
        self.rows, self.cols = rows, cols
        self._asked += 1
        mine = self._asked
        self._kick()
        while wait and self._applied_gen < mine and self._task and not self._task.done():
            await self._applied_event.wait()
        return True

    def started(
        self, job_size: tuple[int, int], apply: Callable[[int, int], Awaitable[None]]
    ) -> None:
        """The sandbox said `go` at job_size: from now on sizes go through ``apply``."""
        self._apply = apply
        self._sized = job_size
        self._kick()

    def stop(self) -> None:
        """Nothing more reaches the sandbox (it ended, or the session is released)."""
        self._apply = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None  # a cancelled task's traceback would hold its owner

    def _kick(self) -> None:
        if self._sized is not None and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while self._apply is not None:
                size, gen = (self.rows, self.cols), self._asked
                if size == self._sized:
                    self._mark(gen)
                    return
                self._sized = size
                await self._apply(*size)
                self._mark(gen)
                await asyncio.sleep(RESIZE_INTERVAL)
        finally:
            self._mark(self._asked)  # nobody waits for a resizer that is gone

    def _mark(self, gen: int) -> None:
        self._applied_gen = max(self._applied_gen, gen)
        done, self._applied_event = self._applied_event, asyncio.Event()
        done.set()
