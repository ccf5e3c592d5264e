"""A session's `input_required`: announced when the input watcher says the program
waits for its terminal, withdrawn when the wait ends.

This is the watcher's WaitSink. A wait pauses the time limit only when it is a fact
(the kernel says the program reads its terminal) or when the CPU used meanwhile is
charged: a guess from the heuristic must not let a program run on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from codex.metrics import Metrics
from codex.sessions.clock import RunClock
from codex.sessions.eventlog import Entry, EventLog
from codex.sessions.output import OutputPipeline
from codex.wire import INPUT_REQUIRED


def _empty() -> str:
    return ""


async def _unsynced() -> bool:
    return False


def _no() -> bool:
    return False


class Waiting:
    def __init__(
        self,
        session_id: str,
        log: EventLog,
        output: OutputPipeline,
        clock: RunClock,
        metrics: Metrics,
        *,
        prompt: Callable[[], str],
        sync: Callable[[], Awaitable[bool]],
        may_pause: Callable[[], bool],
        detector: Callable[[], str],
    ) -> None:
        self.session_id = session_id
        self.log = log
        self.output = output
        self.clock = clock
        self.metrics = metrics
        self._prompt = prompt  # the prompt on the screen now
        self._sync = sync  # until the program's output so far is in the log
        self._may_pause = may_pause
        self._detector = detector  # which detector saw it (its name, for the client)
        self.entry: Entry | None = None  # the announcement, while it stands

    def release(self) -> None:
        """Drop the callbacks into the session (they would make a cycle with it)."""
        self.entry = None
        self._prompt = self._detector = _empty
        self._sync = _unsynced
        self._may_pause = _no

    @property
    def announced(self) -> bool:
        return self.entry is not None

    @property
    def last_output(self) -> float:
        return self.output.last_output

    @property
    def output_bytes(self) -> int:
        return self.output.output_bytes

    def prompt(self) -> str:
        return self._prompt()

    def announce(self, password: bool) -> None:
        self.metrics.input_required.inc()
        self.output.flush()
        if self._may_pause():
            self.clock.pause()
        self.entry = self.log.append(
            INPUT_REQUIRED,
            payload={
                "sessionId": self.session_id,
                "prompt": self._prompt(),
                "password": password,
                "detector": self._detector(),
            },
        )

    async def sync(self) -> bool:
        return await self._sync()

    def withdraw(self) -> None:
        if self.entry is not None:
            self.entry = None
            self.clock.resume()
