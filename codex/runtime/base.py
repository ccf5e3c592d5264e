"""The runtime interface: start a program on a terminal, move bytes, report how it ended.

A runtime knows nothing of sessions or transports. Both backends run the same
supervisor (``codex.runtime.sandbox``) on the terminal, which ends the stream with a
result record; :class:`ResultScanner` takes that record out of the byte stream.
"""

from __future__ import annotations

import abc
import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from codex.errors import SandboxError
from codex.runtime.sandbox import CHILD_SOURCE, SUPERVISOR_SOURCE

RESULT_OSC = b"\x1b]6973;"
RESULT_END = b"\x07"


@dataclass(frozen=True)
class ExecSpec:
    code: str
    rows: int
    cols: int
    session_id: str


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
        self.scanner = ResultScanner(nonce)
        self._early = b""  # bytes that came with the ready record
        self._go = asyncio.Event()  # set once the terminal is back in normal mode

    @abc.abstractmethod
    async def _recv(self) -> bytes:
        """The next bytes from the terminal; b"" once it is closed."""

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
        while not self.scanner.done:
            data = await self._recv()
            if not data:
                self._go.set()
                tail = self.scanner.flush()
                if tail:
                    yield tail
                return
            passed = self.scanner.feed(data)
            if self.scanner.state >= GO:
                self._go.set()
            if passed:
                yield passed
        self._go.set()

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


class Runtime(abc.ABC):
    name = "base"

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
        self.result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def feed(self, data: bytes) -> bytes:
        """Bytes to pass on; advances ``state`` and sets ``result`` from records."""
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
