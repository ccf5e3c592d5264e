"""Background work, owned: every task the server starts outside a request belongs to
one ``Tasks`` of the object that started it.

asyncio keeps only weak references to tasks, so an unowned task can vanish mid-way;
an exception nobody retrieves is logged at garbage collection, if ever; and a task
cancelled at shutdown but not awaited may still be running (a container create in
the thread pool) after the sweep that was meant to clean up behind it. A ``Tasks``
keeps its tasks referenced while they run, logs a failure once when it happens, and
at shutdown cancels them and waits for them to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Tasks:
    def __init__(self, owner: str, *, awaited: bool = False) -> None:
        self.owner = owner  # for the log: whose task failed
        # ``awaited``: someone awaits each result and handles its failure; logging
        # it here too would report one failure twice.
        self.awaited = awaited
        self._running: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._running)

    def spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None and not self.awaited:
            log.error("%s: background task failed", self.owner, exc_info=task.exception())

    def cancel(self) -> None:
        """Cancel what runs, without waiting (a session released)."""
        for task in list(self._running):
            task.cancel()
        self._running.clear()  # a cancelled task's traceback holds its frame

    async def wait(self, timeout: float | None = None) -> None:
        """Until what runs now has ended (or ``timeout``); nothing is cancelled."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout)

    async def close(self) -> None:
        """Cancel what runs and wait until every task has really ended."""
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._running.clear()
