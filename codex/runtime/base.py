"""The runtime interface: start a program on a terminal, move bytes, report how it ended.

A runtime knows nothing of sessions or transports. Both backends run the same
supervisor on the terminal; what it says is in :mod:`codex.runtime.protocol`.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from codex.errors import SandboxError
from codex.runtime.job import JobOptions, file_record_bound
from codex.runtime.protocol import (
    GO,
    NEW,
    Item,
    ResultScanner,
    display_record_bound,
    job_bytes,
    sync_record,
)
from codex.runtime.reads import (
    ANSWER_READS,
    BATCH,
    COALESCE_DELAY,
    COALESCE_MAX,
    FULL_TRIP,
    PAUSE_GAP,
    QUIET_GAP,
    SMALL_READ,
    TripBudget,
    settle,
)
from codex.runtime.terminal_io import write_to_terminal


@dataclass(frozen=True)
class ExecSpec:
    code: str
    rows: int
    cols: int
    session_id: str
    # The client address it runs for: the runtime's fair queue and pool share key.
    client: str = "local"
    # The largest image the sandbox passes on (larger ones come as their size only).
    max_image_bytes: int = 0
    options: JobOptions = field(default_factory=JobOptions)  # files, args, the shell


@dataclass
class ExitInfo:
    """How the program ended, from the supervisor's record and the engine's state."""

    exit_code: int | None = None
    signal: str | None = None
    error: dict[str, Any] | None = None
    oom_killed: bool = False
    # True when the supervisor's record arrived: the program ran to its own end.
    reported: bool = False
    detail: str = ""
    memory_peak_bytes: int | None = None
    cpu_ms: int | None = None


@dataclass
class Readiness:
    ready: bool
    reason: str = ""
    detector: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)


class Execution(abc.ABC):
    """One sandboxed program on a terminal, speaking the supervisor's protocol.

    Life: ``prepare()`` (the supervisor and a warm child interpreter are up: a pooled
    sandbox waits here), ``begin(spec)`` (the job is sent), ``output()`` until it ends,
    ``wait()``, ``close()``. All methods are safe to call after the program ended.
    Backends supply the byte transport (``_recv``, ``_send``) and the process control.
    """

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.scanner = ResultScanner(nonce)
        self._syncs_sent = 0
        self._sync_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._early = b""  # bytes that came with the ready record
        self._go = asyncio.Event()  # set once the terminal is back in normal mode
        # Reads not held back whatever came before them: the program just started, or
        # was just sent input, and its answer (an echo, a reply, the prompt) is awaited.
        self._answers_due = 0
        self._trips = TripBudget()
        # The last trip waited for the budget and more kept coming while it did: a
        # sustained stream, its program busy writing (the input detector looks less).
        self.streaming = False
        self._grew = False  # more came in the last hold's last stretch
        self._wake: asyncio.Future[bool] | None = None  # set while output() holds a read

    @abc.abstractmethod
    async def _recv(self) -> bytes:
        """The next bytes from the terminal; b"" once it is closed."""

    def _recv_now(self) -> bytes:
        """At most one read of what the terminal has ready, never waiting; b"" when
        nothing is ready (or it closed: the next _recv says which, never this)."""
        return b""

    def _take_ready(self, data: bytes) -> bytes:
        """data and whatever else the terminal has ready now, up to BATCH bytes."""
        parts = [data]
        size = len(data)
        while size < BATCH:
            more = self._recv_now()
            if not more:
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts)

    @abc.abstractmethod
    async def _send(self, data: bytes) -> None:
        """Bytes to the terminal; silently dropped once the program is gone."""

    async def prepare(self, timeout: float = 15.0) -> None:
        """Wait for the supervisor's `ready`: from then on the job can be sent."""

        async def until_ready() -> None:
            while self.scanner.state == NEW:
                data = await self._recv()
                if not data:
                    raise SandboxError("the sandbox ended before it was ready")
                self._early += self.scanner.feed(data)

        try:
            await asyncio.wait_for(until_ready(), timeout)
        except TimeoutError:
            raise SandboxError("the sandbox did not get ready in time") from None

    async def begin(self, spec: ExecSpec) -> None:
        self.scanner.display_max = display_record_bound(spec.max_image_bytes)
        self.scanner.file_max = file_record_bound(spec.options.collect.file_bytes)
        job = job_bytes(spec.code, spec.rows, spec.cols, spec.max_image_bytes, spec.options)
        await self._send(job)

    async def started(self) -> None:
        """Return once the program may run: the supervisor said `go` (or it ended).
        Before that the supervisor itself reads the terminal, which is no prompt."""
        await self._go.wait()

    async def output(self) -> AsyncIterator[Item]:
        """The terminal's bytes, protocol records removed, with the program's images
        and stream switches in their places; ends when the program ends."""
        if self._early:
            early, self._early = self._early, b""
            yield early
        pause = COALESCE_DELAY
        flood = False
        while not self.scanner.done:
            asked = time.monotonic()
            data = await self._recv()
            waited = time.monotonic() - asked
            # Never held, and no trip of the budget: an answer, the start's handshake.
            free = bool(self._answers_due) or not self._go.is_set()
            if free or waited >= QUIET_GAP:
                pause = COALESCE_DELAY
                self._answers_due = max(0, self._answers_due - 1)
            if data:
                # After a full trip, a short one is a flood's tail (the reader caught
                # up): free too, so a flood is read as fast as it is written.
                data, pause, flood = await self._batch(data, waited, pause, free or flood)
            if not data:
                self._go.set()
                tail = self.scanner.flush()
                if tail:
                    yield tail
                return
            passed = self.scanner.feed_items(data)
            if self.scanner.state >= GO and not self._go.is_set():
                self._go.set()
                self._answers_due = ANSWER_READS
            if self._sync_waiters:
                self._wake_syncs()
            for item in passed:
                if item:
                    yield item
        self._go.set()
        self._wake_syncs(everyone=True)

    async def sync(self, timeout: float = 0.5) -> bool:
        """Return once everything the program wrote to its terminal before this call
        has been read from the stream (and so is in the session's log).

        A record is written into the terminal's output queue behind the program's
        own bytes; the terminal is first in, first out, so when the record comes out
        of the stream, so has all that preceded it. This is what lets an
        `input_required` follow its prompt exactly, however slow the engine's relay.
        """
        if self.scanner.done:
            return False
        number = self._syncs_sent + 1
        if not self._write_sync(number):
            return False
        self._syncs_sent = number
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((number, waiter))
        self._hurry()  # no read is held while a sync is awaited
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._sync_waiters = [(n, w) for n, w in self._sync_waiters if w is not waiter]
            return False
        return True

    def _write_sync(self, number: int) -> bool:
        """Put sync record `number` into the terminal's output, behind the program's."""
        pid = self.root_pid()
        return pid is not None and write_to_terminal(pid, sync_record(self.nonce, number))

    async def _batch(
        self, data: bytes, waited: float, pause: float, free: bool
    ) -> tuple[bytes, float, bool]:
        """data and what else is ready, held as the coalescing and the trip budget
        say (codex.runtime.reads); the pause for the next small read; and whether
        it was a full trip at once (a flood: what waited for the budget is not)."""
        data = self._take_ready(data)
        self.streaming = False
        full = len(data) >= FULL_TRIP
        if free or full or waited >= PAUSE_GAP:
            return data, pause, full
        hold = 0.0 if waited >= QUIET_GAP or len(data) >= SMALL_READ else pause
        if hold:
            pause = min(COALESCE_MAX, pause * 2)
        due = self._trips.wait()
        if hold or due:
            data = await self._gather(data, max(hold, due))
            # Its burst spent and still writing as the trip goes: a sustained stream.
            self.streaming = bool(due) and self._grew
        self._trips.take()
        return data, pause, False

    async def _gather(self, data: bytes, delay: float) -> bytes:
        """data and what more the stream brings within `delay`; sooner once that is
        FULL_TRIP, or a sync is awaited, or input was sent, or PAUSE_GAP passed with
        nothing (the program stopped writing: it may be at a prompt). It looks after
        QUIET_GAP (a flood has filled a trip by then), then every PAUSE_GAP, not at
        every arrival; whether the last look found more says it is still writing."""
        now = time.monotonic()
        end = now + delay
        until = now + QUIET_GAP
        self._grew = False
        while (left := min(until, end) - time.monotonic()) > 0:
            held = await self._hold(left)
            size = len(data)
            data = self._take_ready(data)
            self._grew = len(data) > size
            if not held or len(data) >= FULL_TRIP:
                break
            if not self._grew and until > now + QUIET_GAP:
                break  # a whole PAUSE_GAP without a byte
            until += PAUSE_GAP
        return data

    async def _hold(self, delay: float) -> bool:
        """Sleep `delay`; False at once if a sync is awaited, or as soon as one is
        asked for or input is sent (see _hurry)."""
        if self._sync_waiters:
            return False
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[bool] = loop.create_future()
        self._wake = wake
        timer = loop.call_later(delay, settle, wake, True)
        try:
            return await wake
        finally:
            timer.cancel()
            self._wake = None

    def _hurry(self) -> None:
        if self._wake is not None:
            settle(self._wake, False)

    def _wake_syncs(self, everyone: bool = False) -> None:
        keep = []
        for number, waiter in self._sync_waiters:
            if everyone or number <= self.scanner.synced:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                keep.append((number, waiter))
        self._sync_waiters = keep

    async def write(self, data: bytes) -> None:
        # Until `go` the terminal is in raw mode for the job: typed bytes would be
        # neither echoed nor line-edited, so they wait.
        await self._go.wait()
        if not self.scanner.done:
            self._answers_due = ANSWER_READS
            self._hurry()  # what was held before the input goes with its echo
            await self._send(data)

    @abc.abstractmethod
    async def resize(self, rows: int, cols: int) -> None: ...

    @abc.abstractmethod
    async def wait(self) -> ExitInfo:
        """How it ended; call after ``output()`` is exhausted."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """End the program and everything it started; idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every resource (the container included); idempotent."""

    @abc.abstractmethod
    def root_pid(self) -> int | None:
        """Host PID of the supervisor, once known, for the input detector."""

    def cpu_seconds(self) -> float | None:
        """CPU time the sandbox has used, if the runtime can tell."""
        return None


class Runtime(abc.ABC):
    name = "base"
    instance = ""  # this server's id among several (labels, leases)

    @abc.abstractmethod
    async def start(self, spec: ExecSpec) -> Execution: ...

    @abc.abstractmethod
    async def readiness(self) -> Readiness: ...

    async def startup(self) -> None:  # noqa: B027 (optional hook)
        """Prepare (for Docker: remove containers a previous run left)."""

    async def shutdown(self) -> None:  # noqa: B027 (optional hook)
        """Release shared resources."""

    def set_headroom(self, headroom: Callable[[], int]) -> None:  # noqa: B027
        """How many more sandboxes may exist now (for a runtime that keeps spares)."""

    def set_demand(self, idle_clients: Callable[[], int]) -> None:  # noqa: B027
        """How many pages are open without a running program: Runs that may come
        any moment (for a runtime that keeps spares ahead of demand)."""

    def admit(self, client: str) -> None:  # noqa: B027 (optional hook)
        """Raise RateLimited if `client` may not start another execution now (for a
        runtime that paces networks asking for far more than others)."""

    def pool_stats(self) -> tuple[int, int, int, int]:
        """(ready, hits, misses, paced starts) of the runtime's pool; zeros without one."""
        return (0, 0, 0, 0)

    async def reap_dead_peers(self, live: set[str]) -> None:  # noqa: B027
        """Remove sandboxes of other instances not in `live` (shared engine only)."""


def exit_info_from_record(record: dict[str, Any]) -> ExitInfo:
    """The supervisor's result record as an ExitInfo. Here, not in the protocol
    module, so that the protocol depends on nothing of this interface."""
    code = record.get("exitCode")
    sig = record.get("signal")
    err = record.get("error")
    return ExitInfo(
        exit_code=code if isinstance(code, int) else None,
        signal=sig if isinstance(sig, str) else None,
        error=err if isinstance(err, dict) else None,
        reported=True,
    )
