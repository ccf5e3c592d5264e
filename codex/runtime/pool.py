"""A warm pool of started, single-use sandboxes.

Each container is hardened exactly like a cold one, serves exactly one execution and
is then destroyed. A pooled sandbox is prepared as far as it can be without the
program: container started, supervisor running on its terminal, child interpreter up
and waiting for the code. Taking one costs a single write. The pool saves time, never
isolation. It refills in the background, shrinks so that pool plus running executions
stay within the global cap, and is emptied when the sandbox image changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codex.runtime.docker import DockerExecution, DockerRuntime

log = logging.getLogger(__name__)

RECHECK = 1.0  # seconds between checks of the target when nothing wakes the pool
RETRY_AFTER_FAILURE = 2.0  # seconds: an engine that cannot create now is not hammered


class ContainerPool:
    def __init__(self, runtime: DockerRuntime, size: int) -> None:
        self.runtime = runtime
        self.size = size
        self.hits = 0
        self.misses = 0
        # How many more containers may exist now (the global cap minus running ones).
        self.headroom: Callable[[], int] = lambda: size
        self._ready: deque[DockerExecution] = deque()
        self._starting = 0
        self._image_id: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._adds: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> int:
        return len(self._ready)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
            self._wake.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for task in self._adds:
            task.cancel()

    def take(self) -> DockerExecution | None:
        """A prepared sandbox for one execution, or None (start one cold)."""
        self._wake.set()
        while self._ready:
            execution = self._ready.popleft()
            if execution.alive():
                self.hits += 1
                return execution
            log.warning("pool: a prepared sandbox died while it waited; dropping it")
            self._spawn(execution.close())
        self.misses += 1
        return None

    def note_image(self, image_id: str) -> None:
        """The sandbox image's id now; a new one makes every pooled container stale."""
        if self._image_id is not None and image_id != self._image_id:
            stale = list(self._ready)
            self._ready.clear()
            log.info("sandbox image changed: replacing %d pooled container(s)", len(stale))
            for execution in stale:
                self._spawn(execution.close())
        self._image_id = image_id
        self._wake.set()

    def _target(self) -> int:
        return max(0, min(self.size, self.headroom()))

    async def _run(self) -> None:
        while True:
            # Woken by a take or an add; and once a second, since the headroom also
            # grows when an execution ends.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECHECK)
            self._wake.clear()
            while len(self._ready) + self._starting < self._target():
                self._starting += 1
                self._spawn(self._add())
            # Beyond the target (the cap tightened): give back what waits.
            while self._ready and len(self._ready) + self._starting > self._target():
                self._spawn(self._ready.pop().close())

    async def _add(self) -> None:
        try:
            execution = await self.runtime.prepare(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("pool: could not prepare a sandbox: %s", exc)
            await asyncio.sleep(RETRY_AFTER_FAILURE)
        else:
            self._ready.append(execution)
        finally:
            self._starting -= 1
            self._wake.set()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._adds.add(task)
        task.add_done_callback(self._adds.discard)
