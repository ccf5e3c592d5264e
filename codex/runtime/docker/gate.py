"""One fair admission path to the container engine.

Every operation that costs the engine real work (a container's create + start + exec,
a container's removal) waits here for one of ``concurrency`` slots. Waiters queue in
per-key lanes (the key is the client's network, a /24 or /56 of its address, so a few
neighbouring addresses are one lane; the pool refills in its own lane),
first in first out within a lane. A free slot goes to the waiting lane that was served
least recently, so an address bursting a hundred operations gets every other lane's
turn between two of its own: its burst delays mostly itself, and a learner arriving
during someone else's churn is served at the next free slot.

An operation is started only once it has its slot, and the slot is held until the
operation is over, even when its caller gave up: a caller cancelled while it waits
costs the engine nothing; one cancelled while its operation runs (in a thread, which
cannot be interrupted) hands the result to ``orphan``, which undoes it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from codex.tasks import Tasks

log = logging.getLogger(__name__)

T = TypeVar("T")

# How many keys' last-served turns are remembered. A key forgotten is treated as one
# never served, which it nearly is: the oldest are forgotten first.
REMEMBERED_KEYS = 4096


def share_group(address: str) -> str:
    """The pool's share is per network, not per address: a /24 (IPv4) or /56 (IPv6),
    so a handful of neighbouring addresses churning count as one taker. (A class
    behind one network is one taker too, but the rule only bites while *other*
    networks use the pool.)"""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    prefix = 24 if ip.version == 4 else 56
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


LATER = "later:"  # the lanes of operations that can wait (see EngineGate.run)
LATER_BACKLOG = 16  # this many waiting, they are served like the rest


class EngineGate:
    def __init__(self, concurrency: int, unlimited: str = "") -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.busy = 0  # slots held by running operations (or granted, about to run)
        self._lane_busy: Counter[str] = Counter()  # the same, per lane
        self.lane_cap = max(1, concurrency // 2)
        self.unlimited = unlimited  # a lane the cap does not apply to (pool refills)
        self.granted = 0  # operations admitted, ever (for tests and metrics)
        self._lanes: dict[str, deque[asyncio.Future[None]]] = {}
        self._served: OrderedDict[str, int] = OrderedDict()  # key -> turn last served
        self._turns = itertools.count(1)
        # Operations under way and the undoing of abandoned ones: settle() waits for
        # both, so a create still in the thread pool cannot outlive the last sweep.
        self._ops = Tasks("engine operations", awaited=True)
        self._undos = Tasks("engine undo")

    async def settle(self, timeout: float) -> None:
        """Until the operations under way, and what undoes the abandoned ones, have
        ended (at most ``timeout`` seconds for each)."""
        await self._ops.wait(timeout)
        await self._undos.wait(timeout)

    @property
    def waiting(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def waiting_for(self, key: str) -> int:
        lane = self._lanes.get(key)
        return len(lane) if lane else 0

    async def run(
        self,
        key: str,
        start: Callable[[], Awaitable[T]],
        orphan: Callable[[T], Any] | None = None,
        *,
        later: bool = False,
    ) -> T:
        """Wait for a turn in ``key``'s lane, then run ``start()`` holding a slot.

        Cancelled while waiting: nothing was started. Cancelled while the operation
        runs: the operation goes on to its end (the slot with it), and its result, if
        it has one, goes to ``orphan`` (a coroutine it returns is run to its end).

        ``later`` operations (cold starts of a network the pool found taking more
        than others) wait behind every other operation and never take the last slot,
        unless LATER_BACKLOG of them queue: a learner's start never waits for
        someone else's churn.
        """
        key = LATER + share_group(key) if later else share_group(key)
        await self._turn(key)
        try:
            op = self._ops.spawn(start())
        except BaseException:
            self._release(key)
            raise
        op.add_done_callback(functools.partial(self._ended, key))
        try:
            return await asyncio.shield(op)
        except asyncio.CancelledError:
            if orphan is not None:
                if op.done():  # it ended in the very step the caller was cancelled
                    self._undo(op, orphan)
                else:
                    op.add_done_callback(lambda done: self._undo(done, orphan))
            raise

    # -- the queue ------------------------------------------------------------------------

    async def _turn(self, key: str) -> None:
        if self.busy < self._limit(key) and not self._lanes:
            self._grant(key)  # the quiet case: no queue, no wait
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lanes.setdefault(key, deque()).append(waiter)
        self._dispatch()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(key)  # granted in the same step it was cancelled: give it back
            else:
                self._leave(key, waiter)
            raise

    def _leave(self, key: str, waiter: asyncio.Future[None]) -> None:
        lane = self._lanes.get(key)
        if lane is None:
            return
        try:
            lane.remove(waiter)
        except ValueError:
            pass
        if not lane:
            del self._lanes[key]

    def _grant(self, key: str) -> None:
        self.busy += 1
        self._lane_busy[key] += 1
        self.granted += 1
        self._served[key] = next(self._turns)
        self._served.move_to_end(key)
        while len(self._served) > REMEMBERED_KEYS:
            self._served.popitem(last=False)

    def _ended(self, key: str, op: asyncio.Future[Any]) -> None:
        if not op.cancelled():
            op.exception()  # retrieved: a caller that left does not hear of it
        self._release(key)

    def _release(self, key: str) -> None:
        self.busy -= 1
        self._lane_busy[key] -= 1
        if self._lane_busy[key] <= 0:
            del self._lane_busy[key]
        self._dispatch()

    def _limit(self, key: str) -> int:
        """How busy the gate may be for this lane to get a slot: a lane holds at most
        half the slots (its burst leaves the rest to others), and operations that can
        wait never take the last one."""
        if self._lane_busy[key] >= self.lane_cap and key != self.unlimited:
            return 0
        later = key.startswith(LATER) and self.concurrency > 1
        return self.concurrency - 1 if later else self.concurrency

    def _dispatch(self) -> None:
        while self.busy < self.concurrency and self._lanes:
            lanes = list(self._lanes)
            backlog = sum(len(self._lanes[k]) for k in lanes if k.startswith(LATER))
            starts = [k for k in lanes if not k.startswith(LATER)]
            if starts and backlog < LATER_BACKLOG:
                lanes = starts
            urgent = backlog >= LATER_BACKLOG
            lanes = [
                k
                for k in lanes
                if self.busy < (self.concurrency if urgent else self._limit(k))
                and (self._lane_busy[k] < self.lane_cap or k == self.unlimited)
            ]
            if not lanes:
                return
            # Pool refills go first: a ready sandbox serves whoever comes next, which
            # the pool's share rule hands out fairly. Then the lane served least
            # recently (never served: first); ties go to the lane that queued first
            # (dicts keep insertion order).
            key = (
                self.unlimited
                if self.unlimited in lanes
                else min(lanes, key=lambda k: self._served.get(k, 0))
            )
            lane = self._lanes[key]
            waiter = lane.popleft()
            if not lane:
                del self._lanes[key]
            if waiter.done():  # cancelled, and its task has not run yet to leave
                continue
            self._grant(key)
            waiter.set_result(None)

    def _undo(self, op: asyncio.Future[T], orphan: Callable[[T], Any]) -> None:
        if op.cancelled() or op.exception() is not None:
            return
        try:
            undo = orphan(op.result())
        except Exception:
            log.exception("engine gate: undoing an abandoned operation failed")
            return
        if asyncio.iscoroutine(undo) or isinstance(undo, asyncio.Future):
            self._undos.spawn(undo)
