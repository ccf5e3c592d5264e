"""The runtime interface: start a program on a terminal, move bytes, report how it ended.

A runtime knows nothing of sessions or transports. Both backends run the same
supervisor (``codex.runtime.sandbox``) on the terminal, which ends the stream with a
result record; :class:`ResultScanner` takes that record out of the byte stream.
"""

from __future__ import annotations

import abc
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class Readiness:
    ready: bool
    reason: str = ""
    detector: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)


class Execution(abc.ABC):
    """One running program. All methods are safe to call after the program ended."""

    @abc.abstractmethod
    def output(self) -> AsyncIterator[bytes]:
        """The terminal's bytes, result record removed; ends when the program ends."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None: ...

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


def supervisor_command(python: str, code: str) -> list[str]:
    return [python, "-I", "-S", "-c", SUPERVISOR_SOURCE, CHILD_SOURCE, code]


def new_nonce() -> str:
    return secrets.token_hex(16)


class ResultScanner:
    """Removes the supervisor's result record from the terminal stream.

    Work per chunk is one ``bytes.find``; only a chunk ending in a possible start of
    the marker is held back, a few bytes at most.
    """

    def __init__(self, nonce: str) -> None:
        self._marker = RESULT_OSC + nonce.encode() + b";"
        self._held = b""
        self._record: bytearray | None = None
        self.result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def feed(self, data: bytes) -> bytes:
        """Bytes to pass on; sets ``result`` once the record is complete."""
        if self.result is not None:
            return b""  # whatever orphans print after the end is not the program's
        if self._record is not None:
            return self._feed_record(data)
        if self._held:
            data = self._held + data
            self._held = b""
        at = data.find(self._marker)
        if at >= 0:
            self._record = bytearray()
            rest = self._feed_record(data[at + len(self._marker) :])
            return data[:at] + rest
        keep = self._partial_suffix(data)
        if keep:
            self._held = data[-keep:]
            return data[:-keep]
        return data

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def _feed_record(self, data: bytes) -> bytes:
        assert self._record is not None
        end = data.find(RESULT_END)
        if end < 0:
            self._record += data
            if len(self._record) > 65536:
                self._record = None  # not ours after all; drop it rather than buffer
            return b""
        self._record += data[:end]
        try:
            parsed = json.loads(bytes(self._record).decode("utf-8", "replace"))
        except ValueError:
            parsed = None
        self._record = None
        if isinstance(parsed, dict):
            self.result = parsed
        return b""

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
