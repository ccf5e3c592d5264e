"""Container lives for a network that asks for far more than others, paced.

The pool's share rule keeps one network from emptying the pool for everyone
(codex.runtime.docker.share), and the engine gate orders the engine's work fairly
(codex.runtime.docker.gate). Neither bounds how much work one network makes: a
network creating and deleting executions back to back takes every sandbox the pool
may give it and makes the pool refill, and on two cores every container life (~275 ms
of machine CPU) is time the other learners' programs wait for (docs/performance.md,
"what the churn costs, by dose": victims 6-8x slower unpaced, 1.5-2.8x with the
churning network held to one life a second).

So while a network has asked for more sandboxes within the last few seconds than a
class would (the share rule's score, `pool_paced_after`) and other networks ask too,
each of its starts, warm or cold, first waits for a token of its network's bucket:
`rate` a second, `burst` saved (the pool keeps one). A learner, or a class behind one
address pressing Run together, never gets there; a network that keeps asking is held
to `rate`. Its starts wait in order, and one cancelled while it waits (a DELETE)
costs nothing, not even its token. At most `queue` of them wait at once (`crowded`):
each waiting start holds a place in max_sessions, and the few addresses of one network
could otherwise fill it, to be released at `rate` while everyone else queues.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# Buckets remembered; beyond that the least recently used idle one is forgotten, which
# gives its network a full bucket again.
REMEMBERED = 4096

log = logging.getLogger(__name__)


@dataclass
class _Bucket:
    tokens: float
    at: float  # when `tokens` was counted
    waiting: int = 0  # starts holding or queued for the lock
    told: bool = False  # the log has said this network is paced
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # FIFO: starts in order


class Pacer:
    def __init__(
        self,
        rate: float,
        burst: int,
        queue: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = rate  # tokens a second (0 or less: no pacing)
        self.burst = max(1, burst)
        self.queue = queue  # starts of one key that may wait at once (see crowded)
        self.paced = 0  # starts that had to wait (for tests and figures)
        self._clock = clock
        self._sleep = sleep
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    async def turn(self, key: str) -> float:
        """Wait for one of `key`'s tokens; return the seconds waited."""
        if self.rate <= 0:
            return 0.0
        bucket = self._bucket(key)
        bucket.waiting += 1
        started = self._clock()
        try:
            async with bucket.lock:
                wait = self._take(bucket)
                if wait > 0:
                    self.paced += 1
                    if not bucket.told:  # once per bout: it is forgotten when calm
                        bucket.told = True
                        log.warning("pacing %s: %.3g starts a second", key, self.rate)
                while wait > 0:
                    await self._sleep(wait)
                    wait = self._take(bucket)
        finally:
            bucket.waiting -= 1
            self._forget_full()
        return self._clock() - started

    def _bucket(self, key: str) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), self._clock())
        self._buckets.move_to_end(key)
        return bucket

    def _take(self, bucket: _Bucket) -> float:
        """Take a token (0.0), or the seconds until there is one."""
        now = self._clock()
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_full(self) -> None:
        """A bucket refilled to `burst` with nobody waiting is the same as a new one:
        forget it. Beyond REMEMBERED, forget the least recently used idle ones too."""
        now = self._clock()
        for _ in range(len(self._buckets)):
            key, bucket = next(iter(self._buckets.items()))
            over = len(self._buckets) > REMEMBERED
            full = bucket.tokens + (now - bucket.at) * self.rate >= self.burst
            if not bucket.waiting and (full or over):
                del self._buckets[key]
            elif over:
                self._buckets.move_to_end(key)  # in use: the next oldest goes instead
            else:
                return  # oldest first: the rest were used more recently

    def waiting(self, key: str) -> int:
        bucket = self._buckets.get(key)
        return bucket.waiting if bucket else 0

    def crowded(self, key: str) -> int | None:
        """None while another of `key`'s starts may wait its turn; once `queue` of
        them wait, the whole seconds until the last of those has its token (a
        Retry-After)."""
        waiting = self.waiting(key)
        if self.rate <= 0 or waiting < self.queue:
            return None
        return max(1, math.ceil(waiting / self.rate))
