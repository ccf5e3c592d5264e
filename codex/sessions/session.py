"""Sessions: one execution each, its state machine, its output pipeline and its clients.

Bytes from the runtime are decoded incrementally, coalesced into frames and appended to
the session's :class:`~codex.sessions.eventlog.EventLog`; transports read that log. A session
does not know which transports watch it.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from codex.cluster.directory import Cluster
from codex.config import Settings
from codex.errors import (
    CodexError,
    NoCapacity,
    PayloadTooLarge,
    RateLimited,
    RuntimeUnavailable,
    SessionFinished,
    SessionNotFound,
    Unavailable,
)
from codex.languages import SyntaxProblem, check_policy, check_syntax
from codex.metrics import Metrics
from codex.runtime.base import ExecSpec, Execution, ExitInfo, Runtime
from codex.sessions.admission import RateLimiter, client_ip, parse_networks
from codex.sessions.clock import RunClock
from codex.sessions.eventlog import (
    COMPLETE,
    ERROR,
    INPUT_REQUIRED,
    OUTPUT,
    Entry,
    EventLog,
    Follower,
)
from codex.sessions.input.detector import InputWatcher
from codex.sessions.screen import TerminalModel, clamp_size

log = logging.getLogger(__name__)

FRAME_CHARS = 64 * 1024  # largest `output` message: fewer frames, less cost per MB
FLUSH_DELAY = 0.02  # output waits at most this long to be coalesced with more
FLUSH_BURST = 4  # frames per FLUSH_DELAY window that go out at once
# The controlling client may trail this many chars before the program is paused.
HIGH_WATER = 256 * 1024
RESIZE_INTERVAL = 0.05  # seconds between two resizes of one sandbox's terminal

STARTING, RUNNING, FINISHED = "starting", "running", "finished"

OK = "ok"
SYNTAX_ERROR = "syntax_error"
RUNTIME_ERROR = "runtime_error"
TIMEOUT = "timeout"
MEMORY_LIMIT = "memory_limit"
OUTPUT_LIMIT = "output_limit"
CANCELLED = "cancelled"
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class ExecuteRequest:
    code: str
    language: str = "python"
    stdin: str = ""
    rows: int | None = None  # the client's terminal size, if it knows it already
    cols: int | None = None


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits: knowing the id is the key


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
        self.client = "local"  # the address it was started from, for per-address caps
        self.rows, self.cols = clamp_size(settings.term_rows, settings.term_cols)
        self.terminal = TerminalModel(self.rows, self.cols)
        self.log = EventLog(max_chars=2 * settings.output_limit_bytes + 65536)
        # Clients reading the log, oldest first; the oldest one sets the pace.
        self.followers: list[Follower] = []
        self._progress = asyncio.Event()  # set when a follower delivers or leaves
        self._grace: asyncio.TimerHandle | None = None
        self.result: dict[str, Any] | None = None
        self.waiting: Entry | None = None
        self.output_bytes = 0
        self.input_bytes = 0
        self.truncated = False
        self._on_finish = on_finish
        self.metrics = metrics or Metrics()
        self._created_mono = time.monotonic()
        self._first_output_seen = False
        self._execution: Execution | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[Execution] | None = None  # runtime.start, while it runs
        self._kill_reason: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[tuple[str, bool]] = []
        self._pending_chars = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._window_start = 0.0
        self._window_flushes = 0
        self._last_output = 0.0
        # Input that arrives before the sandbox takes typing; None once delivered.
        self._queued_input: list[bytes] | None = [stdin.encode("utf-8")] if stdin else []
        self._expect_echo = stdin.replace("\n", "\r\n")
        self.watcher = InputWatcher(self, self._root_pid, settings.detector_interval_ms / 1000)
        self.clock = RunClock(
            settings.time_limit,
            settings.input_wait_limit,
            on_timeout=lambda: self._stop(TIMEOUT),
            on_abandoned=lambda: self._stop(TIMEOUT, abandoned=True),
            cpu_seconds=self._cpu_seconds,
        )
        self._abandoned = False
        self._cancel_reason: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Each message is written whole and in arrival order.
        self._write_lock = asyncio.Lock()
        # The terminal size the sandbox has (None until `go`), and the task that
        # brings it to (rows, cols).
        self._sized: tuple[int, int] | None = None
        self._resizer: asyncio.Future[None] | None = None
        # Resizes asked for and resizes applied, counted, for resize(wait=True).
        self._size_gen = self._applied_gen = 0
        self._size_applied = asyncio.Event()

    # -- public API ---------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.state == FINISHED

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def finish_without_running(self, problem: SyntaxProblem) -> None:
        """A program that does not compile never costs a container."""
        self.log.append(
            ERROR,
            payload={
                "error": problem.message,
                "code": SYNTAX_ERROR,
                "line": problem.line,
                "offset": problem.offset,
                "sessionId": self.id,
            },
        )
        self._complete(SYNTAX_ERROR, exit_code=None)

    async def send_input(self, text: str, *, hide_echo: bool = True) -> None:
        """A line of input (the seed's `input` event): the text plus a newline."""
        if hide_echo:
            self._expect_echo += text.replace("\n", "\r\n") + "\r\n"
        await self.write(text.encode("utf-8") + b"\n")

    async def write(self, data: bytes) -> None:
        """Raw bytes to the program's terminal, as typed."""
        if self.finished:
            raise SessionFinished("The program has already finished.")
        budget = self.settings.max_session_input_bytes
        if self.input_bytes + len(data) > budget:
            raise PayloadTooLarge(f"This program may receive at most {budget} bytes of input.")
        self.input_bytes += len(data)
        if b"\n" in data or b"\r" in data or b"\x04" in data:
            # A completed line satisfies a canonical-mode read: the wait is over.
            self.withdraw()
        self.watcher.nudge()
        if self._queued_input is not None:
            # Until the sandbox takes typing (see _deliver_queued_input), input queues
            # in arrival order.
            self._queued_input.append(data)
            return
        assert self._execution is not None
        async with self._write_lock:
            await self._execution.write(data)

    async def resize(self, rows: int, cols: int, *, wait: bool = False) -> None:
        """Resizes are coalesced: the terminal gets the latest size, at most one engine
        call per RESIZE_INTERVAL, however many arrive (each is a Docker API call).
        ``wait``: return once this size (or a later one) reached the program's
        terminal, if the program is running (an acknowledgement means it is there)."""
        rows, cols = clamp_size(rows, cols)
        if (rows, cols) == (self.rows, self.cols):
            return
        self.rows, self.cols = rows, cols
        self._size_gen += 1
        mine = self._size_gen
        self.terminal.resize(rows, cols)
        self._size_changed()
        while wait and self._applied_gen < mine and self._resizer and not self._resizer.done():
            await self._size_applied.wait()

    def _size_changed(self) -> None:
        # Before `go` the supervisor sets the job's size itself; _watch applies the
        # latest one after that.
        if self._sized is not None and (self._resizer is None or self._resizer.done()):
            self._resizer = asyncio.ensure_future(self._apply_size())

    async def _apply_size(self) -> None:
        try:
            while not self.finished and self._execution is not None:
                size, gen = (self.rows, self.cols), self._size_gen
                if size == self._sized:
                    self._applied(gen)
                    return
                self._sized = size
                await self._execution.resize(*size)
                self._applied(gen)
                await asyncio.sleep(RESIZE_INTERVAL)
        finally:
            self._applied(self._size_gen)  # nobody waits for a resizer that is gone

    def _applied(self, gen: int) -> None:
        self._applied_gen = max(self._applied_gen, gen)
        done, self._size_applied = self._size_applied, asyncio.Event()
        done.set()

    def cancel(self, why: str | None = None) -> None:
        """Stop the program: verdict `cancelled` (with an error event if `why`)."""
        self._cancel_reason = why
        self._stop(CANCELLED)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    def describe(self) -> dict[str, Any]:
        return {
            "sessionId": self.id,
            "language": self.language,
            "state": self.state,
            "createdAt": self.created_at,
            "waitingForInput": self.waiting is not None,
            "prompt": self.waiting.payload.get("prompt") if self.waiting else None,
            "detector": self.watcher.name,
            "outputBytes": self.output_bytes,
            "screen": self.terminal.snapshot(),
            "result": self.result,
        }

    # -- the run ------------------------------------------------------------------------

    async def _run(self) -> None:
        spec = ExecSpec(
            code=self.code, rows=self.rows, cols=self.cols, session_id=self.id, client=self.client
        )
        job_size = (spec.rows, spec.cols)
        info = ExitInfo()
        if self._kill_reason is not None:  # stopped before its first step: no container
            self._complete(self._kill_reason, exit_code=None)
            return
        try:
            try:
                with self.metrics.start_latency.time():
                    # A task of its own, so that _stop can cancel a start still waiting
                    # for the engine: a session stopped that early costs no container.
                    self._starting = asyncio.ensure_future(self.runtime.start(spec))
                    self._execution = await self._starting
            except CodexError as exc:
                log.warning("session %s could not start: %s", self.id[:8], exc.message)
                self._complete(INTERNAL_ERROR, exit_code=None, message=exc.message)
                return
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if self._kill_reason is None or (me is not None and me.cancelling()):
                    raise  # the run itself is cancelled, not just its start
                self._complete(self._kill_reason, exit_code=None)
                return
            finally:
                self._starting = None
            self.state = RUNNING
            if self._kill_reason is not None:  # cancelled while the container started
                await self._execution.kill()
            else:
                self.clock.start()
            self._background(self._deliver_queued_input())
            detector = asyncio.ensure_future(self._watch(self._execution, job_size))
            try:
                async for chunk in self._execution.output():
                    self._on_bytes(chunk)
                    if self._controller_lag() > HIGH_WATER:
                        await self._wait_for_controller()
            finally:
                self.clock.stop()
                detector.cancel()
            self._on_bytes(b"", final=True)
            info = await self._execution.wait()
            self._complete_from(info)
        except asyncio.CancelledError:
            self.clock.stop()
            if not self.finished:
                self._complete(CANCELLED, exit_code=None)
            raise
        except Exception:
            log.exception("session %s failed", self.id[:8])
            if not self.finished:
                self._complete(INTERNAL_ERROR, exit_code=None, message="The server failed.")
        finally:
            self.clock.stop()
            if self._grace is not None:
                self._grace.cancel()
            if self._execution is not None:
                try:
                    await self._execution.close()
                except Exception:
                    log.exception("session %s: cleanup failed", self.id[:8])

    @property
    def retained_chars(self) -> int:
        """What the finished session holds, in chars (its log, its last screen)."""
        return self.log.retained_chars + self.rows * self.cols

    def release(self) -> None:
        """The session expired: drop what it holds and break its reference cycles now
        (the watcher and the clock point back at it), never leaving them to the GC."""
        self.log.clear()
        self.terminal.freeze()
        self.terminal = TerminalModel(1, 1)
        self.terminal.freeze()
        for task in (self._task, self._resizer, *self._tasks):
            if task is not None and not task.done():
                task.cancel()
        # A cancelled task's traceback holds its frame, which holds this session.
        self._task = self._resizer = None
        self._tasks.clear()
        if self._grace is not None:
            self._grace.cancel()
        self._execution = None
        self.watcher.release()
        self.clock.release()
        self._on_finish = None

    def _cpu_seconds(self) -> float | None:
        return self._execution.cpu_seconds() if self._execution is not None else None

    def _root_pid(self) -> int | None:
        return self._execution.root_pid() if self._execution is not None else None

    def _controller_lag(self) -> int:
        if not self.followers:
            return 0
        return self.log.total_chars - self.followers[0].delivered

    async def _wait_for_controller(self) -> None:
        """Stop reading the terminal until the controlling client catches up: the
        engine's buffers fill and the program blocks in write(), costing nothing."""
        self._flush()
        while self._controller_lag() > HIGH_WATER // 2 and self._kill_reason is None:
            self._progress.clear()
            await self._progress.wait()

    def attach(self, follower: Follower) -> None:
        self.followers.append(follower)
        if self._grace is not None:  # someone came back in time
            self._grace.cancel()
            self._grace = None

    def detach(self, follower: Follower) -> None:
        self.followers.remove(follower)
        self.delivered(follower, follower.delivered)  # a leaving controller releases the program
        if not self.followers and not self.finished:
            # The last client left mid-run: keep going for a while (a reload, a flaky
            # network), then stop rather than run for nobody.
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self.settings.disconnect_grace, self.cancel)

    def delivered(self, follower: Follower, upto: int) -> None:
        """A follower delivered output up to ``upto`` chars of the log."""
        follower.delivered = upto
        self._progress.set()

    async def _watch(self, execution: Execution, job_size: tuple[int, int]) -> None:
        await execution.started()
        # The supervisor applied the job's size at `go`: a resize that came meanwhile
        # (the page sends one as soon as its terminal fits) is applied now.
        self._sized = job_size
        self._size_changed()
        await self.watcher.run()

    async def _deliver_queued_input(self) -> None:
        """Type what was sent early (and the `stdin` field), in order. Runs beside the
        output loop: the sandbox accepts typing only once its `go` has been read."""
        assert self._execution is not None
        queue = self._queued_input or []
        while queue:  # input arriving meanwhile joins this same list
            await self._execution.write(queue.pop(0))
        self._queued_input = None

    def _stop(self, reason: str, *, abandoned: bool = False) -> None:
        if self.finished or self._kill_reason is not None:
            return
        self._kill_reason = reason
        self._abandoned = abandoned
        self._progress.set()
        if self._execution is not None:
            self._background(self._execution.kill())
        elif self._starting is not None:
            # Still starting: cancel the start. Waiting for the engine, it creates
            # nothing; past that, the runtime removes what it made.
            self._starting.cancel()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # referenced until done, so it is never collected mid-way
        task.add_done_callback(self._tasks.discard)

    # -- output pipeline ----------------------------------------------------------------

    def _on_bytes(self, chunk: bytes, *, final: bool = False) -> None:
        if self.truncated:
            return  # past the budget nothing more is forwarded
        room = self.settings.output_limit_bytes - self.output_bytes
        over = len(chunk) > room
        if over:
            chunk = chunk[:room]
        self.output_bytes += len(chunk)
        if chunk:
            self.metrics.output_bytes.inc(len(chunk))
            if not self._first_output_seen:
                self._first_output_seen = True
                self.metrics.first_output.observe(time.monotonic() - self._created_mono)
        text = self._decoder.decode(chunk, final=final or over)
        if over:
            self.truncated = True
            self._stop(OUTPUT_LIMIT)
            text += (
                f"\r\n[output limit of {self.settings.output_limit_bytes} bytes reached: "
                "program stopped]\r\n"
            )
        if text:
            self._add_text(text)
        if final or over:
            self._flush()

    def _add_text(self, text: str) -> None:
        now = time.monotonic()
        self._last_output = now
        self.watcher.nudge()
        self.terminal.append(text)
        if self._expect_echo:
            matched = 0
            limit = min(len(text), len(self._expect_echo))
            while matched < limit and text[matched] == self._expect_echo[matched]:
                matched += 1
            if matched:
                self._queue(text[:matched], echo=True)
                text = text[matched:]
            # A mismatch means the terminal is not echoing (echo off, raw mode) or the
            # program printed first: stop expecting rather than hide its output.
            self._expect_echo = self._expect_echo[matched:] if not text else ""
        if text:
            self._queue(text, echo=False)
        if self._pending_chars >= FRAME_CHARS:
            self._flush()
        elif self._flush_handle is None:
            # The first FLUSH_BURST frames of each FLUSH_DELAY window go at once (an
            # echo and the reply right after it both arrive without delay); beyond
            # that, output waits for the window's end and goes as one frame, so a
            # program printing byte by byte never costs a message per byte.
            if now - self._window_start >= FLUSH_DELAY:
                self._window_start, self._window_flushes = now, 0
            if self._window_flushes < FLUSH_BURST:
                self._window_flushes += 1
                self._flush()
            else:
                delay = self._window_start + FLUSH_DELAY - now
                self._flush_handle = asyncio.get_running_loop().call_later(delay, self._flush)

    def _queue(self, text: str, *, echo: bool) -> None:
        if self._pending and self._pending[-1][1] == echo:
            self._pending[-1] = (self._pending[-1][0] + text, echo)
        else:
            self._pending.append((text, echo))
        self._pending_chars += len(text)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending, self._pending_chars = self._pending, [], 0
        for text, echo in pending:
            for at in range(0, len(text), FRAME_CHARS):
                self.log.append(OUTPUT, text[at : at + FRAME_CHARS], echo=echo)

    # -- input detection ----------------------------------------------------------------

    # WaitSink, for the input watcher.

    @property
    def announced(self) -> bool:
        return self.waiting is not None

    @property
    def last_output(self) -> float:
        return self._last_output

    def prompt(self) -> str:
        return self.terminal.prompt()

    def announce(self, password: bool) -> None:
        self.metrics.input_required.inc()
        self._flush()
        # A wait pauses the time limit only when it is a fact (the kernel says the
        # program reads its terminal) or when CPU used meanwhile is charged: a guess
        # from the heuristic must not let a program run on.
        if self.watcher.name == "proc" or self._cpu_seconds() is not None:
            self.clock.pause()
        self.waiting = self.log.append(
            INPUT_REQUIRED,
            payload={
                "sessionId": self.id,
                "prompt": self.terminal.prompt(),
                "password": password,
                "detector": self.watcher.name,
            },
        )

    async def sync(self) -> bool:
        # The sync resolves inside the output loop's step that read it, after that
        # step has handed the bytes before it to _on_bytes: they are in by now.
        return self._execution is not None and await self._execution.sync()

    def withdraw(self) -> None:
        if self.waiting is not None:
            self.waiting = None
            self.clock.resume()

    # -- the end ------------------------------------------------------------------------

    def _complete_from(self, info: ExitInfo) -> None:
        natural = info.reported and not (self._kill_reason and info.signal == "SIGKILL")
        if natural and info.signal == "SIGKILL" and info.oom_killed:
            status = MEMORY_LIMIT
        elif natural:
            status = OK if info.exit_code == 0 and not info.error else RUNTIME_ERROR
        elif self._kill_reason is not None:
            status = self._kill_reason
        elif info.oom_killed:
            status = MEMORY_LIMIT
        else:
            status = INTERNAL_ERROR
        message = None
        line = None
        if status == RUNTIME_ERROR:
            if info.error:
                kind = str(info.error.get("type", "Error"))
                text = str(info.error.get("message", ""))
                message = f"{kind}: {text}" if text else kind
                raw_line = info.error.get("line")
                line = raw_line if isinstance(raw_line, int) else None
            elif info.signal:
                message = f"The program was killed by {info.signal}."
            else:
                message = f"The program exited with code {info.exit_code}."
        elif status == TIMEOUT and self._abandoned:
            message = (
                f"No input came for {self.settings.input_wait_limit:g} s: the program was stopped."
            )
        elif status == TIMEOUT:
            message = f"Time limit exceeded: the program ran for {self.settings.time_limit:g} s."
        elif status == MEMORY_LIMIT:
            message = f"Memory limit exceeded: {self.settings.memory_limit_mb} MiB."
        elif status == OUTPUT_LIMIT:
            message = f"Output limit exceeded: {self.settings.output_limit_bytes} bytes."
        elif status == INTERNAL_ERROR:
            message = info.detail or "The sandbox failed."
        self._complete(status, exit_code=info.exit_code, message=message, line=line, info=info)

    def _complete(
        self,
        status: str,
        *,
        exit_code: int | None,
        message: str | None = None,
        line: int | None = None,
        info: ExitInfo | None = None,
    ) -> None:
        if self.finished:
            return
        info = info or ExitInfo()
        self._flush()
        self.waiting = None
        self.state = FINISHED
        if status == CANCELLED:
            message = self._cancel_reason
        if message:
            payload: dict[str, Any] = {"error": message, "code": status, "sessionId": self.id}
            if line is not None:
                payload["line"] = line
            self.log.append(ERROR, payload=payload)
        duration = round(self.clock.elapsed * 1000)
        self.result = {
            "sessionId": self.id,
            "status": status,
            "exitCode": exit_code,
            "signal": info.signal,
            "durationMs": duration,
            "cpuMs": info.cpu_ms,
            "memoryPeakBytes": info.memory_peak_bytes,
            "outputBytes": self.output_bytes,
            "truncated": self.truncated,
        }
        self.log.append(COMPLETE, payload=dict(self.result))
        # What a finished session keeps is what replay and GET need: its log and the
        # last screen. The pyte screen, the decoder and pending frames go now.
        self.terminal.freeze()
        self._decoder.reset()
        self._pending, self._pending_chars, self._expect_echo = [], 0, ""
        self._queued_input = None
        self.metrics.executions.labels(status=status).inc()
        log.info("session %s finished: %s", self.id[:8], status)
        if self._on_finish is not None:
            self._on_finish(self)


class SessionRegistry:
    """Creates sessions, finds them by id, caps how many run, forgets finished ones."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.limiter = RateLimiter(settings)
        self.cluster: Cluster | None = None  # set by the app when redis_url is given
        self.accepting = True
        self.metrics = Metrics()
        self.metrics.watch(
            active=lambda: self.running,
            pool=runtime.pool_stats,
            rate_limited=lambda: self.limiter.rejections,
        )
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self._sessions: dict[str, Session] = {}
        # Socket.IO connections and terminal WebSockets open now, per client address.
        self.open_clients: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished_order: deque[str] = deque()
        self._finished_chars: dict[str, int] = {}  # what each finished session holds
        self._retained = 0  # their sum
        runtime.set_headroom(lambda: settings.max_sessions - self.running)

    @property
    def running(self) -> int:
        return sum(1 for s in self._sessions.values() if not s.finished)

    def get(self, session_id: object) -> Session:
        session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None:
            raise SessionNotFound("No session has that id (it may have expired).")
        return session

    def client_of(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self.trusted_proxies)

    async def admit(self, action: str, client: str) -> dict[str, str]:
        """Count an `execute` or `join` by this client; RateLimited over the limit."""
        return await self.limiter.hit(action, client)

    async def create(self, request: ExecuteRequest, client: str = "local") -> Session:
        s = self.settings
        code, language, stdin = request.code, request.language, request.stdin
        if len(code.encode("utf-8")) > s.max_code_bytes:
            raise PayloadTooLarge(
                f"The code is larger than the limit of {s.max_code_bytes} bytes.", field="code"
            )
        if len(stdin.encode("utf-8")) > s.max_stdin_bytes:
            raise PayloadTooLarge(
                f"The stdin text is larger than the limit of {s.max_stdin_bytes} bytes.",
                field="stdin",
            )
        problem = check_syntax(code, language)
        if problem is None:
            check_policy(code, s.forbidden_imports, s.forbidden_calls)
        session = Session(
            s, self.runtime, code, language, stdin, on_finish=self._finished, metrics=self.metrics
        )
        session.client = client
        if request.rows and request.cols:
            session.rows, session.cols = clamp_size(request.rows, request.cols)
            session.terminal.resize(request.rows, request.cols)
        if problem is not None:
            session.finish_without_running(problem)
            self._sessions[session.id] = session
            return session
        # Every await before the caps are checked: between the checks and the session
        # counting, nothing may let another create through.
        ready = await self.runtime.readiness()
        if not ready.ready:
            raise RuntimeUnavailable(f"Programs cannot run now: {ready.reason}.")
        if not self.accepting:
            raise Unavailable("The server is shutting down; try another one.")
        if self.running >= s.max_sessions:
            raise NoCapacity("Too many programs are running; try again shortly.")
        mine = sum(1 for x in self._sessions.values() if not x.finished and x.client == client)
        if mine >= s.max_sessions_per_ip:
            self.limiter.rejections += 1
            raise RateLimited(
                f"At most {s.max_sessions_per_ip} programs may run at once from one address.",
                retry_after=2,
            )
        self._sessions[session.id] = session  # counts from here on
        if self.cluster is not None:
            try:
                await self.cluster.record(session.id, {"state": RUNNING})
            except Exception as exc:
                # A Redis failure must not leave a session that holds capacity and
                # never runs.
                del self._sessions[session.id]
                raise Unavailable(f"The shared session directory failed: {exc}") from exc
        session.start()
        return session

    async def remote_record(self, session_id: object) -> dict[str, Any]:
        """The directory entry of a session another instance owns."""
        record = None
        if self.cluster is not None and isinstance(session_id, str):
            record = await self.cluster.lookup(session_id)
        if record is None or record.get("owner") == getattr(self.cluster, "instance", None):
            raise SessionNotFound("No session has that id (it may have expired).")
        return record

    def _finished(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.session_ttl, self._expire, session.id)
        # Finished sessions are kept for late joins, but not without bound: beyond
        # max_finished_sessions, or beyond the memory budget of all of them, the
        # oldest go first.
        self._finished_order.append(session.id)
        self._finished_chars[session.id] = session.retained_chars
        self._retained += session.retained_chars
        budget = self.settings.finished_memory_mb * 1024 * 1024
        while self._finished_order and (
            len(self._finished_order) > self.settings.max_finished_sessions
            or (self._retained > budget and len(self._finished_order) > 1)
        ):
            self._expire(self._finished_order.popleft())
        if self.cluster is not None:
            state = {"state": session.state, "result": session.result}
            self._spawn(self.cluster.record(session.id, state))

    def _expire(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._retained -= self._finished_chars.pop(session_id, 0)
            session.release()
        if self.cluster is not None:
            self._spawn(self.cluster.forget(session_id))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace: float) -> None:
        """Stop taking executions; let running ones finish for up to ``grace``
        seconds; then cancel the rest, saying why."""
        self.accepting = False
        running = [
            asyncio.ensure_future(s.wait()) for s in self._sessions.values() if not s.finished
        ]
        if running:
            await asyncio.wait(running, timeout=grace)
        await self.shutdown()

    async def shutdown(self) -> None:
        self.accepting = False
        sessions = list(self._sessions.values())
        for session in sessions:
            session.cancel("The server is shutting down.")
        # Finished sessions may still be removing their container: wait for that too.
        await asyncio.gather(*(s.wait() for s in sessions), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
