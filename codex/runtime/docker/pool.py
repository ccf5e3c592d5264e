"""A warm pool of started, single-use sandboxes.

Each container is hardened exactly like a cold one, serves exactly one execution and
is then destroyed. A pooled sandbox is prepared as far as it can be without the
program: container started, supervisor running on its terminal, child interpreter up
and waiting for the code. Taking one costs a single write. The pool saves time, never
isolation. It refills in the background, shrinks so that pool plus running executions
stay within the global cap, and is emptied when the sandbox image changes and when
it stops.

How many it keeps ready follows demand (codex.runtime.docker.demand): a floor, more
ahead of a class, back to the floor once it is gone. The pool is shared by every
learner, so no one may empty it for everyone (codex.runtime.docker.share): those its
share rule refuses start cold, through the engine gate's fair queue, and a network
asking for far more than a class would is held to a pace, warm or cold
(codex.runtime.docker.pace). When the pool is empty but refills are on their way, a
taker waits for the next one (one waiter per refill in flight) rather than add a cold
start to the engine's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from codex.errors import RateLimited
from codex.runtime.docker.demand import Demand
from codex.runtime.docker.gate import share_group
from codex.runtime.docker.pace import Pacer
from codex.runtime.docker.share import ShareRule
from codex.tasks import Tasks

log = logging.getLogger(__name__)

POOL_LANE = "(pool)"  # the engine gate's first lane: refills up to the floor
GROWTH_LANE = "(pool growth)"  # refills above it: a lane like any other
RECHECK = 1.0  # seconds between checks of the target when nothing wakes the pool
RETRY_AFTER_FAILURE = 2.0  # seconds: an engine that cannot create now is not hammered


class Pooled(Protocol):
    """A prepared sandbox, as far as the pool is concerned."""

    def alive(self) -> bool: ...

    def footprint(self) -> int | None:
        """Bytes it holds while it waits (None: not known)."""

    async def close(self) -> None: ...


P = TypeVar("P", bound=Pooled)
P_co = TypeVar("P_co", bound=Pooled, covariant=True)


class PoolBackend(Protocol[P_co]):
    """What prepares the pool's sandboxes (the Docker runtime; a fake in tests)."""

    def prepare(self, session_id: str | None, client: str = ...) -> Awaitable[P_co]:
        """A sandbox, made in the engine gate's lane `client`."""


class ContainerPool(Generic[P]):
    def __init__(
        self,
        runtime: PoolBackend[P],
        size: int,
        share_window: float = 0.0,
        demand: Demand | None = None,
        pacer: Pacer | None = None,
        paced_after: Callable[[str], float] = lambda client: math.inf,
    ) -> None:
        self.runtime = runtime
        self.size = size
        # How many to keep ready: the floor `size`, more ahead of demand (demand.py).
        self.demand = demand or Demand(size, size)
        self.hits = 0
        self.misses = 0
        self.refused = 0  # takes turned to cold starts by the share rule
        self.target_size = size  # what the pool is filling to now (demand's target)
        self.rule = ShareRule(share_window)
        # A network asking for far more than a class would waits for its pace.
        self.pacer = pacer or Pacer(0.0, 1)
        # The asks lately (the rule's score) that make a client's network heavy (the
        # runtime's settings; by default none do).
        self.paced_after = paced_after
        # Takers waiting for a refill in flight, first come first served.
        self._waiters: deque[asyncio.Future[P | None]] = deque()
        # How many more containers may exist now (the global cap minus running ones).
        self.headroom: Callable[[], int] = lambda: size
        self._ready: deque[P] = deque()
        self._starting = 0
        self._image_id: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Apart: stop() cancels refills, but a close must run to its end (it removes
        # a container and frees its uid).
        self._refills = Tasks("pool refills")
        self._closes = Tasks("pool closes")
        self._stopped = False

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def in_flight(self) -> int:
        """Containers the pool is starting or removing now: they hold engine streams
        and descriptors without being ``ready``."""
        return self._starting + len(self._closes)

    def start(self) -> None:
        if self._task is None:
            self._stopped = False
            self._task = asyncio.ensure_future(self._run())
            self._wake.set()

    def stop(self) -> None:
        """Prepare nothing more: refills under way are cancelled (the backend undoes
        what they half made), waiters start cold, what waits ready is closed, and
        whatever comes back later (a waiter's, cancelled) is closed too."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._refills.cancel()
        self._trim_waiters(0)
        while self._ready:
            self._close(self._ready.popleft())

    async def closed(self) -> None:
        """Return once every close the pool started has ended."""
        while len(self._closes):
            await self._closes.wait()

    def take(self, client: str = "local") -> P | None:
        """A prepared sandbox for one execution, or None (start one cold)."""
        now = self._ask(client)
        if now is None:
            return self._counted(None)
        execution = self._pop_alive()
        if execution is not None:
            self.rule.took(client, now)
        return self._counted(execution)

    def admit(self, client: str) -> None:
        """Refuse a new execution of a network whose paced starts already fill its
        queue (the pacer's `queue`): RateLimited, with when to try again."""
        retry = self.pacer.crowded(share_group(client))
        if retry is not None:
            raise RateLimited(
                "Too many programs from your network are waiting to start; "
                f"try again in {retry} s.",
                retry_after=retry,
            )

    async def acquire(self, client: str = "local") -> P | None:
        """As take(), but when the pool is empty and refills are on their way, wait
        for the next one (None: start one cold). Returns at once on a hit, unless
        `client`'s network is asking for far more than a class would while others ask
        too: then it waits first for the network's pace (pace.py), hit or cold alike,
        since either costs the engine a container's life."""
        asked = time.monotonic()
        self.rule.asked(client, asked)  # its demand counts, paced or not
        if self.rule.heavy(client, asked, self.paced_after(client)):
            await self.pacer.turn(share_group(client))
        now = self._ask(client, counted=True)
        if now is None:
            return self._counted(None)
        execution = self._pop_alive()
        if execution is not None or len(self._waiters) < self._starting:
            # A hit, or a refill promised: either counts against the share now.
            self.rule.took(client, now)
        if execution is None and len(self._waiters) < self._starting:
            execution = await self._wait_for_refill()
        return self._counted(execution)

    def _ask(self, client: str, *, counted: bool = False) -> float | None:
        """The time of this ask, or None when the share rule turns it away."""
        self._wake.set()
        now = time.monotonic()
        if self.rule.may_take(client, now, len(self._ready), self.target_size, counted=counted):
            self.demand.asked(now)
            return now
        # Not counted as demand: a network taking more than its share (churn from one
        # place) would otherwise grow the pool, and keep the engine busy refilling it
        # for everyone else; it starts cold, behind everyone, at no cost to the pool.
        self.refused += 1
        return None

    def _counted(self, execution: P | None) -> P | None:
        if execution is None:
            self.misses += 1
        else:
            self.hits += 1
        return execution

    def _pop_alive(self) -> P | None:
        while self._ready:
            execution = self._ready.popleft()
            if execution.alive():
                return execution
            log.warning("pool: a prepared sandbox died while it waited; dropping it")
            self._close(execution)
        return None

    async def _wait_for_refill(self) -> P | None:
        waiter: asyncio.Future[P | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is not None:
                    self._deliver(handed)  # to the next waiter, or back to the pool
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _deliver(self, execution: P) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(execution)
                return
        if self._stopped:
            self._close(execution)
        else:
            self._ready.append(execution)

    def _trim_waiters(self, keep: int) -> None:
        """No more waiters than refills in flight: the rest start cold."""
        while len(self._waiters) > keep:
            waiter = self._waiters.pop()
            if not waiter.done():
                waiter.set_result(None)

    def note_image(self, image_id: str) -> None:
        """The sandbox image's id now; a new one makes every pooled container stale."""
        if self._image_id is not None and image_id != self._image_id:
            stale = list(self._ready)
            self._ready.clear()
            log.info("sandbox image changed: replacing %d pooled container(s)", len(stale))
            for execution in stale:
                self._close(execution)
        self._image_id = image_id
        self._wake.set()

    def _target(self) -> int:
        self.target_size = self.demand.target(self.headroom())
        return self.target_size

    async def _run(self) -> None:
        while True:
            # Woken by a take or an add; and once a second, since the headroom also
            # grows when an execution ends.
            # asyncio.wait, not wait_for: before 3.12 wait_for swallows a cancel that
            # lands in the step the event is set (python/cpython#86296), and stop()
            # would leave this loop preparing sandboxes.
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait([woken], timeout=RECHECK)
            finally:
                woken.cancel()
            self._wake.clear()
            while len(self._ready) + self._starting < self._target():
                lane = self._lane()
                self._starting += 1
                self._refills.spawn(self._add(lane))
            # Beyond the target (the cap tightened): give back what waits.
            while self._ready and len(self._ready) + self._starting > self._target():
                self._close(self._ready.pop())

    async def _add(self, lane: str) -> None:
        try:
            execution = await self.runtime.prepare(None, lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("pool: could not prepare a sandbox: %s", exc)
            self._trim_waiters(self._starting - 1)  # its waiter starts cold, now
            await asyncio.sleep(RETRY_AFTER_FAILURE)
        else:
            footprint = execution.footprint()
            if footprint is not None:
                self.demand.measured(footprint)
            self._deliver(execution)
        finally:
            self._starting -= 1
            self._trim_waiters(self._starting)  # a failed refill: its waiter goes cold
            self._wake.set()

    def _lane(self) -> str:
        """Refills up to the floor go first in the engine gate (POOL_LANE); growth
        ahead of demand waits its turn like any network (GROWTH_LANE), so removals and
        learners' starts are never starved by a pool growing under sustained load."""
        below_floor = len(self._ready) + self._starting < self.size
        return POOL_LANE if below_floor else GROWTH_LANE

    def _close(self, execution: P) -> None:
        self._closes.spawn(execution.close())
