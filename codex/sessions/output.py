"""A program's bytes on their way to the session's log: decoded, budgeted, coalesced.

UTF-8 is decoded incrementally (a character split between two reads is whole in the
log), the output budget is enforced to the byte, the terminal's echo of an answer is
marked as such (event views hide it, terminal views show it), and text is coalesced
into frames so that a program printing byte by byte never costs a message per byte.
Images (displays.py) and the sandbox's stderr marks come in their places among the
bytes: text before an image is in the log before the image, and a frame never holds
text of two streams.
"""

from __future__ import annotations

import asyncio
import codecs
import time
from collections.abc import Callable

from codex.metrics import Metrics
from codex.runtime.protocol import DisplayRecord
from codex.sessions.displays import Displays
from codex.sessions.eventlog import EventLog
from codex.wire import DISPLAY, OUTPUT, STDERR, STDOUT

FRAME_CHARS = 64 * 1024  # largest `output` message: fewer frames, less cost per MB
FLUSH_DELAY = 0.02  # output waits at most this long to be coalesced with more
FLUSH_BURST = 4  # frames per FLUSH_DELAY window that go out at once


def _ignore() -> None:
    pass


def _ignore_text(text: str) -> None:
    pass


class OutputPipeline:
    def __init__(
        self,
        log: EventLog,
        limit_bytes: int,
        metrics: Metrics,
        *,
        on_text: Callable[[str], None],
        on_limit: Callable[[], None],
        displays: Displays | None = None,
    ) -> None:
        self.log = log
        self.displays = displays or Displays("", 0, 0, 0, text_line=False)
        self.limit_bytes = limit_bytes
        self.metrics = metrics
        self._on_text = on_text  # every decoded text, before it is queued (the screen)
        self._on_limit = on_limit  # the budget is spent: stop the program
        self.output_bytes = 0
        self.truncated = False
        self.last_output = 0.0  # monotonic time of the last text
        self._created = time.monotonic()
        self._first_seen = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[tuple[str, bool, str]] = []  # (text, echo, stream)
        self._stream = STDOUT  # where the program's text comes from now
        self._pending_chars = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._window_start = 0.0
        self._window_flushes = 0
        self._expect_echo = ""

    @property
    def pending_chars(self) -> int:
        return self._pending_chars

    def expect_echo(self, typed: str) -> None:
        """Text typed for the program: its echo, when it comes, is marked as echo."""
        self._expect_echo += typed.replace("\n", "\r\n")

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        if self.truncated:
            return  # past the budget nothing more is forwarded
        room = self.limit_bytes - self.output_bytes
        over = len(chunk) > room
        if over:
            chunk = chunk[:room]
        self.output_bytes += len(chunk)
        if chunk:
            self.metrics.output_bytes.inc(len(chunk))
            if not self._first_seen:
                self._first_seen = True
                self.metrics.first_output.observe(time.monotonic() - self._created)
        text = self._decoder.decode(chunk, final=final or over)
        if over:
            self.truncated = True
            self._on_limit()
            text += f"\r\n[output limit of {self.limit_bytes} bytes reached: program stopped]\r\n"
        if text:
            self._add_text(text)
        if final or over:
            self.flush()

    def switch(self, stderr: bool) -> None:
        """The sandbox marked the start (or end) of a write to the program's stderr."""
        self._stream = STDERR if stderr else STDOUT

    def display(self, record: DisplayRecord) -> None:
        """An image the program showed: in the log after the text before it, or a
        notice in its place. Its bytes count against the output budget."""
        if self.truncated:
            return
        shown, line = self.displays.take(record, self.limit_bytes - self.output_bytes)
        if shown is not None:
            self.output_bytes += shown.size
            self.metrics.output_bytes.inc(shown.size)
            self.flush()
            weight = sum(len(v) for v in shown.payload["data"].values())
            self.log.append(DISPLAY, payload=shown.payload, weight=weight)
        if line:
            stream, self._stream = self._stream, STDOUT
            self._add_text(line)
            self._stream = stream
        elif shown is not None:
            self.last_output = time.monotonic()

    def _add_text(self, text: str) -> None:
        now = time.monotonic()
        self.last_output = now
        self._on_text(text)
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
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        if self._pending_chars >= FRAME_CHARS:
            self.flush()
        elif self._flush_handle is None:
            # The first FLUSH_BURST frames of each FLUSH_DELAY window go at once (an
            # echo and the reply right after it both arrive without delay); beyond
            # that, output waits for the window's end and goes as one frame.
            if now - self._window_start >= FLUSH_DELAY:
                self._window_start, self._window_flushes = now, 0
            if self._window_flushes < FLUSH_BURST:
                self._window_flushes += 1
                self.flush()
            else:
                delay = self._window_start + FLUSH_DELAY - now
                self._flush_handle = asyncio.get_running_loop().call_later(delay, self.flush)

    def _queue(self, text: str, *, echo: bool) -> None:
        stream = STDOUT if echo else self._stream
        last = self._pending[-1] if self._pending else None
        if last is not None and last[1] == echo and last[2] == stream:
            self._pending[-1] = (last[0] + text, echo, stream)
        else:
            self._pending.append((text, echo, stream))
        self._pending_chars += len(text)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending, self._pending_chars = self._pending, [], 0
        for text, echo, stream in pending:
            for at in range(0, len(text), FRAME_CHARS):
                self.log.append(OUTPUT, text[at : at + FRAME_CHARS], echo=echo, stream=stream)

    def release(self) -> None:
        """Drop the callbacks into the session (they would make a cycle with it)."""
        self._on_text = _ignore_text
        self._on_limit = _ignore
        self.displays.shown.clear()  # the session expired: its images go with its log

    def close(self) -> None:
        """The session finished: what is pending is in the log; drop the rest."""
        self.flush()
        self._decoder.reset()
        self._expect_echo = ""
