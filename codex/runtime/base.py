"""The runtime interface: start a program on a terminal, move bytes, report how it ended.

A runtime knows nothing of sessions or transports. Both backends run the same
supervisor (``codex.runtime.sandbox``) on the terminal, which ends the stream with a
result record; :class:`ResultScanner` takes that record out of the byte stream.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from codex.errors import SandboxError
from codex.runtime.sandbox import CHILD_SOURCE, SUPERVISOR_SOURCE

# A read that found data waiting takes whatever else is ready too (up to BATCH bytes):
# one trip through the output pipeline per batch, not per kernel read (a pty gives at
# most 4 KiB a read). A batch smaller than SMALL_READ that found data waiting is a
# program writing a few bytes at a time: it is held back, first for COALESCE_DELAY,
# each next time twice as long up to COALESCE_MAX, so such a stream costs the server
# about ten trips a second. Each trip costs a few hundred microseconds whatever its
# size. A read that had to wait BUSY_GAP (a quiet spell) starts the pauses over, so
# a keystroke's echo is never held back.
BATCH = 65536
SMALL_READ = 2048
BUSY_GAP = 0.002
COALESCE_DELAY = 0.01
COALESCE_MAX = 0.1

RESULT_OSC = b"\x1b]6973;"
RESULT_END = b"\x07"


@dataclass(frozen=True)
class ExecSpec:
    code: str
    rows: int
    cols: int
    session_id: str
    # The client address it runs for: the runtime's fair queue and pool share key.
    client: str = "local"


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
        await self._send(job_bytes(spec))

    async def started(self) -> None:
        """Return once the program may run: the supervisor said `go` (or it ended).
        Before that the supervisor itself reads the terminal, which is no prompt."""
        await self._go.wait()

    async def output(self) -> AsyncIterator[bytes]:
        """The terminal's bytes, protocol records removed; ends when the program ends."""
        if self._early:
            early, self._early = self._early, b""
            yield early
        pause = COALESCE_DELAY
        while not self.scanner.done:
            asked = time.monotonic()
            data = await self._recv()
            if time.monotonic() - asked >= BUSY_GAP:
                pause = COALESCE_DELAY  # it had to wait: a quiet spell
            elif data:
                data = self._take_ready(data)
                if len(data) < SMALL_READ:
                    await asyncio.sleep(pause)
                    pause = min(COALESCE_MAX, pause * 2)
                    data = self._take_ready(data)
            if not data:
                self._go.set()
                tail = self.scanner.flush()
                if tail:
                    yield tail
                return
            passed = self.scanner.feed(data)
            if self.scanner.state >= GO:
                self._go.set()
            if self._sync_waiters:
                self._wake_syncs()
            if passed:
                yield passed
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
        pid = self.root_pid()
        if pid is None or self.scanner.done:
            return False
        self._syncs_sent += 1
        number = self._syncs_sent
        record = RESULT_OSC + self.nonce.encode() + b";sync:%d" % number + RESULT_END
        if not write_to_terminal(pid, record):
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((number, waiter))
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        return True

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

    def pool_stats(self) -> tuple[int, int, int]:
        """(ready, hits, misses) of the runtime's pool; zeros without one."""
        return (0, 0, 0)

    async def reap_dead_peers(self, live: set[str]) -> None:  # noqa: B027
        """Remove sandboxes of other instances not in `live` (shared engine only)."""


PTY_SLAVE_MAJORS = range(136, 144)  # UNIX98 pty slaves


def open_terminal(pid: int, flags: int) -> int | None:
    """The session's terminal, opened through the supervisor's fd 0 and checked to be
    a pty slave before anything else is done with it; None if it cannot be."""
    try:
        fd = os.open(f"/proc/{pid}/fd/0", flags | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in PTY_SLAVE_MAJORS:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def write_to_terminal(pid: int, data: bytes) -> bool:
    """Queue bytes on the terminal's output side (they come out of the stream).
    Never blocks: a terminal stopped by Ctrl-S just refuses."""
    fd = open_terminal(pid, os.O_WRONLY)
    if fd is None:
        return False
    try:
        return os.write(fd, data) == len(data)
    except OSError:
        return False
    finally:
        os.close(fd)


def supervisor_command(python: str) -> list[str]:
    return [python, "-I", "-S", "-c", SUPERVISOR_SOURCE, CHILD_SOURCE]


def job_bytes(spec: ExecSpec) -> bytes:
    payload = json.dumps({"code": spec.code, "rows": spec.rows, "cols": spec.cols}).encode()
    return b"%d\n" % len(payload) + payload


def new_nonce() -> str:
    return secrets.token_hex(16)


NEW, READY, GO = 0, 1, 2  # where the supervisor's protocol is


class ResultScanner:
    """Takes the supervisor's records (`ready`, `go`, the result) out of the stream.

    Work per chunk is one ``bytes.find``; only a chunk ending in a possible start of
    a record is held back, a few bytes at most.
    """

    def __init__(self, nonce: str) -> None:
        self._marker = RESULT_OSC + nonce.encode() + b";"
        self._held = b""
        self._record: bytearray | None = None
        self.state = NEW
        self.synced = 0  # the highest sync record seen
        self.result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def feed(self, data: bytes) -> bytes:
        """Bytes to pass on; advances ``state`` and sets ``result`` from records."""
        if (
            self._record is None
            and not self._held
            and self.result is None
            and data.find(self._marker) < 0
            and not self._partial_suffix(data)
        ):
            return data  # the common case: no record here, nothing copied
        out = bytearray()
        while data and self.result is None:
            if self._record is not None:
                data = self._feed_record(data)
                continue
            if self._held:
                data, self._held = self._held + data, b""
            at = data.find(self._marker)
            if at >= 0:
                out += data[:at]
                self._record = bytearray()
                data = data[at + len(self._marker) :]
                continue
            keep = self._partial_suffix(data)
            if keep:
                self._held = data[-keep:]
                data = data[:-keep]
            out += data
            break
        # Whatever orphans print after the result is not the program's.
        return bytes(out)

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def _feed_record(self, data: bytes) -> bytes:
        """Consume record bytes; returns what follows the record."""
        assert self._record is not None
        end = data.find(RESULT_END)
        if end < 0:
            self._record += data
            if len(self._record) > 65536:
                self._record = None  # not ours after all; drop it rather than buffer
            return b""
        self._record += data[:end]
        body, self._record = bytes(self._record), None
        if body == b"ready":
            self.state = max(self.state, READY)
        elif body == b"go":
            self.state = max(self.state, GO)
        elif body.startswith(b"sync:") and body[5:].isdigit():
            self.synced = max(self.synced, int(body[5:]))
        else:
            try:
                parsed = json.loads(body.decode("utf-8", "replace"))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                self.result = parsed
        return data[end + 1 :]

    def _partial_suffix(self, data: bytes) -> int:
        tail = data[-(len(self._marker) - 1) :]
        start = tail.rfind(b"\x1b")
        if start < 0:
            return 0
        candidate = tail[start:]
        return len(candidate) if self._marker.startswith(candidate) else 0


def exit_info_from_record(record: dict[str, Any]) -> ExitInfo:
    code = record.get("exitCode")
    sig = record.get("signal")
    err = record.get("error")
    return ExitInfo(
        exit_code=code if isinstance(code, int) else None,
        signal=sig if isinstance(sig, str) else None,
        error=err if isinstance(err, dict) else None,
        reported=True,
    )
