"""One session's run: start the sandbox, stream its output, stop it, clean up.

The run is the part of a session that holds the execution. It ends in exactly one
verdict, whichever comes first: the program's own end, a limit (time, output), a
cancel, or a failure of the sandbox or the server.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol, cast

from codex.errors import CodexError
from codex.metrics import Metrics
from codex.runtime.base import ExecSpec, Execution, ExitInfo, Runtime
from codex.runtime.job import JobOptions
from codex.runtime.protocol import DisplayRecord, StreamSwitch
from codex.sessions.clock import RunClock
from codex.sessions.input.watcher import InputWatcher
from codex.sessions.keyboard import Keyboard
from codex.sessions.outfiles import OutputFiles
from codex.sessions.output import OutputPipeline
from codex.sessions.presence import HIGH_WATER, Presence
from codex.sessions.resize import Resizer
from codex.tasks import Tasks
from codex.wire import CANCELLED, INTERNAL_ERROR, RUNNING


class Owner(Protocol):
    """What a run uses of its session (the session owns the run, not the reverse)."""

    id: str
    code: str
    client: str
    state: str
    runtime: Runtime
    metrics: Metrics
    clock: RunClock
    output: OutputPipeline
    presence: Presence
    keyboard: Keyboard
    resizer: Resizer
    watcher: InputWatcher
    job: JobOptions
    files: OutputFiles

    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def finished(self) -> bool: ...
    def complete(self, status: str, *, message: str | None = None) -> None: ...
    def complete_from(self, info: ExitInfo) -> None: ...


log = logging.getLogger(__name__)


class Run:
    def __init__(self, session: Owner) -> None:
        # A proxy: the session owns its run, never the other way round, so a released
        # session is freed by reference counting (no cycle for the GC to find).
        self.session = cast(Owner, weakref.proxy(session))
        self.execution: Execution | None = None
        self._starting: asyncio.Future[Execution] | None = None  # runtime.start, meanwhile
        self.kill_reason: str | None = None  # the status the session stops it for
        self.abandoned = False  # stopped because no input came (input_wait_limit)
        self.job_size = (0, 0)
        self.tasks = Tasks(f"session {session.id[:8]}")  # kills, queued input

    async def __call__(self) -> None:
        s = self.session
        if self.kill_reason is not None:  # stopped before its first step: no container
            s.complete(self.kill_reason)
            return
        try:
            execution = await self._start()
            if execution is None:
                return
            await self._stream(execution)
            s.output.feed(b"", final=True)
            s.complete_from(await execution.wait())
        except asyncio.CancelledError:
            s.clock.stop()
            if not s.finished:
                s.complete(CANCELLED)
            raise
        except Exception:
            log.exception("session %s failed", s.id[:8])
            if not s.finished:
                s.complete(INTERNAL_ERROR, message="The server failed.")
        finally:
            await self._cleanup()

    async def _start(self) -> Execution | None:
        """The sandbox, or None if the session ended before it was there."""
        s = self.session
        spec = ExecSpec(
            code=s.code,
            rows=s.rows,
            cols=s.cols,
            session_id=s.id,
            client=s.client,
            max_image_bytes=s.output.displays.max_bytes,
            options=s.job,
        )
        self.job_size = (spec.rows, spec.cols)  # what the sandbox has at `go`
        try:
            with s.metrics.start_latency.time():
                # A task of its own, so that stop() can cancel a start still waiting
                # for the engine: a session stopped that early costs no container.
                self._starting = asyncio.ensure_future(s.runtime.start(spec))
                self.execution = await self._starting
        except CodexError as exc:
            log.warning("session %s could not start: %s", s.id[:8], exc.message)
            s.complete(INTERNAL_ERROR, message=exc.message)
            return None
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self.kill_reason is None or (me is not None and me.cancelling()):
                raise  # the run itself is cancelled, not just its start
            s.complete(self.kill_reason)
            return None
        finally:
            self._starting = None
        s.state = RUNNING
        if self.kill_reason is not None:  # cancelled while the container started
            await self.execution.kill()
        else:
            s.clock.start()
        self.background(s.keyboard.deliver(self.execution))
        return self.execution

    async def _stream(self, execution: Execution) -> None:
        """The program's output into the pipeline, at the controlling client's pace."""
        s = self.session
        watching = asyncio.ensure_future(self._watch(execution, self.job_size))
        try:
            async for item in execution.output():
                if isinstance(item, bytes):
                    s.output.feed(item)
                elif isinstance(item, DisplayRecord):
                    s.output.display(item)
                elif isinstance(item, StreamSwitch):
                    s.output.switch(item.stderr)
                else:
                    s.files.take(item)
                if s.presence.lag() > HIGH_WATER:
                    # Stop reading until the controller catches up: the engine's
                    # buffers fill and the program blocks in write(), costing nothing.
                    s.output.flush()
                    await s.presence.until_caught_up(lambda: self.kill_reason is not None)
        finally:
            s.clock.stop()
            watching.cancel()

    async def _watch(self, execution: Execution, job_size: tuple[int, int]) -> None:
        await execution.started()
        # Looked up at each call, not bound now: whoever wraps the execution's resize
        # later (a test counting engine calls) sees every one.
        self.session.resizer.started(job_size, lambda r, c: execution.resize(r, c))
        await self.session.watcher.run()

    async def _cleanup(self) -> None:
        self.session.clock.stop()
        self.session.presence.end_grace()
        if self.execution is not None:
            try:
                await self.execution.close()
            except Exception:
                log.exception("session %s: cleanup failed", self.session.id[:8])

    def stop(self, reason: str, *, abandoned: bool = False) -> None:
        if self.session.finished or self.kill_reason is not None:
            return
        self.kill_reason = reason
        self.abandoned = abandoned
        self.session.presence.wake()
        if self.execution is not None:
            self.background(self.execution.kill())
        elif self._starting is not None:
            # Still starting: cancel the start. Waiting for the engine, it creates
            # nothing; past that, the runtime removes what it made.
            self._starting.cancel()

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.spawn(work)

    def shed(self) -> None:
        """The run is over: its execution (stream, scanner, cgroup handle) goes. A
        background task still in flight (a kill) holds its own reference and ends."""
        self.execution = None

    def release(self) -> None:
        self.tasks.cancel()
        self.execution = None
