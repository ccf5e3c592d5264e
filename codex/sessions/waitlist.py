"""Executions waiting for one of max_sessions to end: first come, first served.

When every slot is taken, a new execution is not refused (a class pressing Run at once
would otherwise get 503s and retry in a storm) but queued, whoever and wherever it
comes from: its session exists at once (GET says `queued` and its position; a joined
client gets a `queued` event each time the position changes) and starts as soon as a
slot frees, in arrival order. The queue is bounded (queue_max): beyond it, 503 with
Retry-After. A queued execution holds no container and counts against no cap but the
client's own (max_sessions_per_ip counts it: one address cannot fill the queue).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Waitlist(Generic[T]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queue: OrderedDict[str, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.limit

    def add(self, key: str, item: T) -> int:
        """Queue `item` last; its position (1: next to start)."""
        self._queue[key] = item
        return len(self._queue)

    def discard(self, key: str) -> bool:
        """Take `key` out (it was cancelled); True if it was queued."""
        return self._queue.pop(key, None) is not None

    def pop(self) -> T | None:
        """The first in line, taken out; None when nobody waits."""
        if not self._queue:
            return None
        return self._queue.popitem(last=False)[1]

    def positions(self) -> Iterator[tuple[int, T]]:
        """(position, item) for each waiting, first first."""
        return enumerate(self._queue.values(), start=1)
