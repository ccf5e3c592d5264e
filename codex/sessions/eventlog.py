"""A session's history: one bounded, sequence-numbered log of everything it emitted.

Every client reads the same log from its own cursor, so replay and live delivery are
one loop: a late joiner starts at the beginning, a live one at the end, and neither can
see a gap or a duplicate. Appending is synchronous and wakes every waiting reader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from codex.wire import COMPLETE, DISPLAY, ERROR, INPUT_REQUIRED, OUTPUT, STDOUT

__all__ = [
    "COMPLETE",
    "DISPLAY",
    "ERROR",
    "INPUT_REQUIRED",
    "OUTPUT",
    "Entry",
    "EventLog",
    "Follower",
]


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    text: str = ""
    # Output the terminal echoed back for an `input` event: terminal views show it,
    # event views (whose frontend echoes the answer itself) do not.
    echo: bool = False
    payload: dict[str, Any] = field(default_factory=dict)
    # Output chars appended to the log up to the end of this entry (never decreases):
    # how far behind a reader is, in chars, is ``log.total_chars - entry.upto``.
    upto: int = 0
    # The program's stream the output came from (stderr text is marked by the sandbox).
    stream: str = STDOUT
    # Chars the entry holds beyond its text (an image's base64): the log's bound
    # counts them, a reader's lag does not.
    weight: int = 0

    @property
    def size(self) -> int:
        return len(self.text) + self.weight


@dataclass(eq=False)
class Follower:
    """A reader of the log (one client of one session)."""

    delivered: int = 0  # output chars of the log delivered so far


class EventLog:
    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._entries: deque[Entry] = deque()
        self._chars = 0
        self.first_seq = 0
        self.next_seq = 0
        self.closed = False
        self.dropped_chars = 0
        self.total_chars = 0
        # One future per waiting reader: a reader cancelled (its client left) takes
        # only its own, and a wake costs one loop turn, not shield()'s two.
        self._waiters: list[asyncio.Future[None]] = []

    def append(
        self,
        kind: str,
        text: str = "",
        *,
        echo: bool = False,
        payload: dict[str, Any] | None = None,
        stream: str = STDOUT,
        weight: int = 0,
    ) -> Entry:
        self.total_chars += len(text)
        entry = Entry(
            self.next_seq, kind, text, echo, payload or {}, self.total_chars, stream, weight
        )
        self.next_seq += 1
        self._entries.append(entry)
        self._chars += entry.size
        while self._chars > self.max_chars and len(self._entries) > 1:
            old = self._entries.popleft()
            self._chars -= old.size
            self.dropped_chars += len(old.text)
            self.first_seq = old.seq + 1
        if kind == COMPLETE:
            self.closed = True
        self._wake()
        return entry

    @property
    def retained_chars(self) -> int:
        """Output chars held now (payloads are small and bounded in number)."""
        return self._chars + 64 * len(self._entries)

    def seq_at(self, chars: int) -> int:
        """The first retained entry whose output ends after ``chars``."""
        for e in self._entries:
            if e.upto > chars:
                return e.seq
        return self.next_seq

    def clear(self) -> None:
        """Drop every entry (the session expired); readers see the log as closed."""
        self._entries.clear()
        self._chars = 0
        self.first_seq = self.next_seq
        self.closed = True
        self._wake()

    def since(self, seq: int) -> list[Entry]:
        start = max(seq, self.first_seq) - self.first_seq
        if start >= len(self._entries):
            return []
        return [self._entries[i] for i in range(start, len(self._entries))]

    async def wait_beyond(self, seq: int) -> None:
        """Return once an entry with a number >= seq exists."""
        while self.next_seq <= seq:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
