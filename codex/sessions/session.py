"""A session: one execution, from its start to its verdict.

The session is the state machine (starting, running, finished) and what transports
call; its parts own the rest: the run and its sandbox (run.py), the output pipeline
(output.py), what is typed (keyboard.py), the clients following it (presence.py), its
terminal size (resize.py), its time limits (clock.py), `input_required` (waiting.py,
driven by input/watcher.py) and the verdict (verdict.py). Everything it emits goes to
one event log (eventlog.py) that transports read; a session does not know who reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from codex.config import Settings
from codex.errors import SessionFinished
from codex.languages import SyntaxProblem
from codex.metrics import Metrics
from codex.runtime.base import ExitInfo, Runtime
from codex.runtime.job import Collect, JobOptions
from codex.sessions.clock import RunClock
from codex.sessions.displays import Displays
from codex.sessions.eventlog import Entry, EventLog, Follower
from codex.sessions.input.watcher import InputWatcher
from codex.sessions.keyboard import Keyboard
from codex.sessions.outfiles import OutputFiles
from codex.sessions.output import OutputPipeline
from codex.sessions.presence import Presence
from codex.sessions.resize import Resizer
from codex.sessions.run import Run
from codex.sessions.screen import TerminalModel
from codex.sessions.sizes import clamp_size
from codex.sessions.verdict import Verdict, judge
from codex.sessions.waiting import Waiting
from codex.wire import (
    CANCELLED,
    COMPLETE,
    ERROR,
    FINISHED,
    OUTPUT_LIMIT,
    QUEUE_POSITION,
    QUEUED,
    STARTING,
    SYNTAX_ERROR,
    TIMEOUT,
    new_session_id,
    result_object,
)

log = logging.getLogger(__name__)

_NO_JOB = JobOptions()  # a finished session's: see _keep_what_replay_needs


class Session:
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        code: str,
        language: str,
        stdin: str = "",
        on_finish: Callable[[Session], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.id = new_session_id()
        self.settings = settings
        self.runtime = runtime
        self.code = code
        self.language = language
        self.state = STARTING
        self.created_at = time.time()
        self.client = "local"  # who started it, for caps: an address, or an identity
        self.creator: str | None = None  # with identity on, the subject it belongs to
        self.metrics = metrics or Metrics()
        self.result: dict[str, Any] | None = None
        self._on_finish = on_finish
        self._cancel_reason: str | None = None
        self.run = Run(self)
        self.resizer = Resizer(*clamp_size(settings.term_rows, settings.term_cols))
        self.terminal = TerminalModel(self.rows, self.cols)
        self.log = EventLog(max_chars=2 * settings.output_limit_bytes + 65536)
        self.job = JobOptions()  # files, arguments, the shell: set by the registry
        self._task: asyncio.Task[None] | None = None
        self.queue_entry: Entry | None = None  # the latest `queued` event, while queued
        self._assemble(settings, stdin)

    def _assemble(self, settings: Settings, stdin: str) -> None:
        """The parts, each told what it may call back."""
        self.output = OutputPipeline(
            self.log,
            settings.output_limit_bytes,
            self.metrics,
            on_text=self._on_text,
            on_limit=lambda: self.run.stop(OUTPUT_LIMIT),
            displays=Displays.of(self.id, settings),
        )
        self.output.expect_echo(stdin)
        bounds = (settings.files_out_max_count, settings.files_out_max_bytes)
        self.files = OutputFiles(Collect(*bounds, settings.files_out_total_bytes))
        self.keyboard = Keyboard(settings.max_session_input_bytes, stdin, self._on_line)
        self.presence = Presence(self.log, settings.disconnect_grace, self.cancel)
        self.clock = RunClock(
            settings.time_limit,
            settings.input_wait_limit,
            on_timeout=lambda: self.run.stop(TIMEOUT),
            on_abandoned=lambda: self.run.stop(TIMEOUT, abandoned=True),
            cpu_seconds=self._cpu_seconds,
        )
        self.waits = Waiting(
            self.id,
            self.log,
            self.output,
            self.clock,
            self.metrics,
            prompt=lambda: self.terminal.prompt(),
            sync=self._sync,
            may_pause=lambda: self.watcher.name == "proc" or self._cpu_seconds() is not None,
            detector=lambda: self.watcher.name,
        )
        interval = settings.detector_interval_ms / 1000
        self.watcher: InputWatcher = InputWatcher(self.waits, self._root_pid, interval)

    # -- what transports and the registry use -----------------------------------------

    @property
    def finished(self) -> bool:
        return self.state == FINISHED

    @property
    def rows(self) -> int:
        return self.resizer.rows

    @property
    def cols(self) -> int:
        return self.resizer.cols

    @property
    def waiting(self) -> Entry | None:
        """The `input_required` entry while the program waits for input."""
        return self.waits.entry

    @property
    def output_bytes(self) -> int:
        return self.output.output_bytes

    def start(self) -> None:
        self.state = STARTING
        self.queue_entry = None
        self._task = asyncio.ensure_future(self.run())
        self._task.add_done_callback(self._run_over)

    def queued(self, position: int) -> None:
        """Waiting for a free slot, `position` in line (codex.sessions.waitlist)."""
        self.state = QUEUED
        payload = {"sessionId": self.id, "position": position, "ahead": position - 1}
        self.queue_entry = self.log.append(QUEUE_POSITION, payload=payload)

    def set_initial_size(self, rows: int, cols: int) -> None:
        """The client's terminal size, known before the start."""
        self.resizer.rows, self.resizer.cols = clamp_size(rows, cols)
        self.terminal.resize(rows, cols)

    def finish_without_running(self, problem: SyntaxProblem) -> None:
        """A program that does not compile never costs a container."""
        payload = {"error": problem.message, "code": SYNTAX_ERROR, "line": problem.line}
        self.log.append(ERROR, payload={**payload, "offset": problem.offset, "sessionId": self.id})
        self.complete(SYNTAX_ERROR)

    async def send_input(self, text: str, *, hide_echo: bool = True) -> None:
        """A line of input (the seed's `input` event): the text plus a newline."""
        if hide_echo:
            self.output.expect_echo(text + "\n")
        await self.write(text.encode("utf-8") + b"\n")

    async def write(self, data: bytes) -> None:
        """Raw bytes to the program's terminal, as typed."""
        if self.finished:
            raise SessionFinished("The program has already finished.")
        self.watcher.nudge()
        await self.keyboard.type(data)

    async def resize(self, rows: int, cols: int, *, wait: bool = False) -> None:
        """The terminal's new size; resize.py says how it reaches the sandbox."""
        rows, cols = clamp_size(rows, cols)
        if (rows, cols) != (self.rows, self.cols):
            self.terminal.resize(rows, cols)
        await self.resizer.want(rows, cols, wait=wait)

    def cancel(self, why: str | None = None) -> None:
        """Stop the program: verdict `cancelled` (with an error event if `why`)."""
        self._cancel_reason = why
        if self.state == QUEUED:
            self.complete(CANCELLED)  # nothing runs yet: nothing to stop
            return
        self.run.stop(CANCELLED)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    def attach(self, follower: Follower) -> None:
        self.presence.attach(follower)

    def detach(self, follower: Follower) -> None:
        self.presence.detach(follower, running=not self.finished)

    def delivered(self, follower: Follower, upto: int) -> None:
        """A follower delivered output up to ``upto`` chars of the log."""
        self.presence.delivered(follower, upto)

    def describe(self) -> dict[str, Any]:
        return _describe(self)

    @property
    def retained_chars(self) -> int:
        """What the finished session holds, in chars (its log, its last screen)."""
        return self.log.retained_chars + self.rows * self.cols + self.files.retained_bytes

    def release(self) -> None:
        """The session expired: drop what it holds and break its reference cycles now
        (the watcher and the clock point back at it), never leaving them to the GC."""
        self.log.clear()
        self.terminal.freeze()
        self.terminal = TerminalModel(1, 1)
        self.terminal.freeze()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None  # a cancelled task's traceback holds its frame, and so this
        self.run.release()
        _shed(self)
        self.resizer.stop()
        self.presence.release()
        self.keyboard.close()
        self.output.release()
        self.files.release()
        self._on_finish = None

    def _run_over(self, task: asyncio.Future[None]) -> None:
        if self.finished and task is self._task:
            self._task = None  # a done task keeps its coroutine and, through it, the run
            _shed(self)

    # -- the parts' callbacks -----------------------------------------------------------

    def _cpu_seconds(self) -> float | None:
        return self.run.execution.cpu_seconds() if self.run.execution is not None else None

    def _root_pid(self) -> int | None:
        return self.run.execution.root_pid() if self.run.execution is not None else None

    def _on_text(self, text: str) -> None:
        execution = self.run.execution
        self.watcher.nudge(execution is not None and execution.streaming)
        self.terminal.append(text)

    def _on_line(self) -> None:
        self.waits.withdraw()  # a completed line satisfies a canonical-mode read

    async def _sync(self) -> bool:
        # The sync resolves inside the output loop's step that read it, after that
        # step has handed the bytes before it to the pipeline: they are in by now.
        return self.run.execution is not None and await self.run.execution.sync()

    # -- the end ------------------------------------------------------------------------

    def complete_from(self, info: ExitInfo) -> None:
        verdict = judge(info, self.run.kill_reason, self.run.abandoned, self.settings)
        self.complete(verdict.status, verdict, info)

    def complete(
        self,
        status: str,
        verdict: Verdict | None = None,
        info: ExitInfo | None = None,
        *,
        message: str | None = None,
    ) -> None:
        """The verdict: the last entries of the log; then the session keeps only what
        replay and GET need."""
        if self.finished:
            return
        info = info or ExitInfo()
        if verdict is not None:
            message = verdict.message
        if status == CANCELLED:
            message = self._cancel_reason
        self.output.close()
        self.waits.entry = None
        self.queue_entry = None
        self.state = FINISHED
        self.resizer.stop()
        if message:
            payload: dict[str, Any] = {"error": message, "code": status, "sessionId": self.id}
            if verdict is not None and verdict.line is not None:
                payload["line"] = verdict.line
            self.log.append(ERROR, payload=payload)
        self.result = _result(self, status, info)
        self.log.append(COMPLETE, payload=dict(self.result))
        _keep_what_replay_needs(self, running=self._task is not None)
        self.metrics.executions.labels(status=status).inc()
        log.info("session %s finished: %s", self.id[:8], status)
        if self._on_finish is not None:
            self._on_finish(self)


def _keep_what_replay_needs(s: Session, *, running: bool) -> None:
    """A finished session keeps its log, its last screen, its result, the images and
    the files left. The screen model, typing, the program and the files it was given
    go at once (finished_memory_mb counts none of them: held until expiry, 256 finished
    sessions with max_files_bytes each would keep 512 MiB); what the run still uses
    goes when the run is over, or now if there was none (no compile, cancelled while
    queued)."""
    s.terminal.freeze()
    s.keyboard.close()
    s.code, s.job = "", _NO_JOB
    if not running:
        _shed(s)


def _shed(s: Session) -> None:
    """The run is over, its sandbox gone: drop what only a running program uses (the
    execution and its stream, the watcher's detector, the clock's and the wait's
    callbacks) now, not at expiry. What stays is what replay and GET need: the log,
    the last screen, the result, the images and the files left."""
    s.run.shed()
    s.watcher.release()
    s.clock.release()
    s.waits.release()


def _result(s: Session, status: str, info: ExitInfo) -> dict[str, Any]:
    """The `execution_complete` payload: the verdict, the counters, the files left."""
    result = result_object(
        s.id,
        status,
        exit_code=info.exit_code,
        signal=info.signal,
        duration_ms=round(s.clock.elapsed * 1000),
        cpu_ms=info.cpu_ms,
        memory_peak_bytes=info.memory_peak_bytes,
        output_bytes=s.output_bytes,
        truncated=s.output.truncated,
    )
    result["files"] = s.files.listing()
    if s.files.unlisted:
        result["filesUnlisted"] = s.files.unlisted
    return result


def _describe(s: Session) -> dict[str, Any]:
    """GET /api/sessions/<id>: the state, the screen, what it showed and left."""
    return {
        "sessionId": s.id,
        "language": s.language,
        "state": s.state,
        "queuePosition": s.queue_entry.payload["position"] if s.queue_entry else None,
        "createdAt": s.created_at,
        "waitingForInput": s.waiting is not None,
        "prompt": s.waiting.payload.get("prompt") if s.waiting else None,
        "detector": s.watcher.name,
        "outputBytes": s.output_bytes,
        "screen": s.terminal.snapshot(),
        "displays": s.output.displays.listing(),
        "files": s.files.listing(),
        "result": s.result,
    }
