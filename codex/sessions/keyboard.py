"""What is typed for a program: budgeted, queued until the sandbox takes typing, then
written whole and in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from codex.errors import PayloadTooLarge
from codex.runtime.base import Execution


def _ignore() -> None:
    pass


class Keyboard:
    def __init__(self, budget: int, stdin: str, on_line: Callable[[], None]) -> None:
        self.budget = budget  # bytes one program may receive in all
        self.input_bytes = 0
        self._on_line = on_line  # a completed line: a canonical-mode read is over
        # Input that arrives before the sandbox takes typing; None once delivered.
        self._queued: list[bytes] | None = [stdin.encode("utf-8")] if stdin else []
        self._execution: Execution | None = None
        self._lock = asyncio.Lock()  # each message is written whole, in order

    async def type(self, data: bytes) -> None:
        if self.input_bytes + len(data) > self.budget:
            raise PayloadTooLarge(f"This program may receive at most {self.budget} bytes of input.")
        self.input_bytes += len(data)
        if b"\n" in data or b"\r" in data or b"\x04" in data:
            self._on_line()
        if self._queued is not None or self._execution is None:
            if self._queued is not None:
                self._queued.append(data)
            return
        async with self._lock:
            await self._execution.write(data)

    async def deliver(self, execution: Execution) -> None:
        """Type what was sent early (and the `stdin` field), in order. Runs beside the
        output loop: the sandbox accepts typing only once its `go` has been read."""
        self._execution = execution
        queue = self._queued or []
        while queue:  # input arriving meanwhile joins this same list
            await execution.write(queue.pop(0))
        self._queued = None

    def close(self) -> None:
        """Nothing more is typed; the callback into the session goes (a cycle)."""
        self._queued = None
        self._execution = None
        self._on_line = _ignore
