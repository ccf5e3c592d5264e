"""The screen model: what a session's terminal shows, from a pyte screen fed lazily and
on a budget.

The event loop is shared by every learner, and pyte's cost grows with the screen, not
with the bytes. So:

- Output is only *appended* here on the hot path (a list append). The screen is brought
  up to date when someone asks for the prompt or a snapshot, from the last ``BACKLOG``
  chars at most.
- Each session's screen work draws on a :class:`WorkBudget` (a token bucket of CPU
  seconds): one call feeds for at most ``PER_CALL`` seconds, and a session gets
  ``REFILL`` seconds per second. Text not fed yet waits for the next call; the screen
  lags, it never stalls the loop.
- The size is bounded (codex.sessions.sizes), and the operations whose cost is the
  screen's area are made cheap (codex.sessions.screen_pyte); known traps are defused
  before pyte sees the text (codex.sessions.screen_sanitize).
- When the screen is behind, the prompt comes from a one-line model of the cursor's
  line (``LINE_KEEP`` chars at most), which costs next to nothing.
- When the session ends, :meth:`TerminalModel.freeze` keeps the last snapshot and drops
  the screen.
"""

from __future__ import annotations

import time
from typing import Any

import pyte

from codex.sessions.screen_pyte import CheapScreen, cursor_line, dispose, line_text
from codex.sessions.screen_sanitize import defuse, sanitize
from codex.sessions.sizes import clamp_size

BACKLOG = 16 * 1024  # chars kept for the screen: several full screens
LINE_KEEP = 512  # chars of the cursor's line kept for the one-line model
SLICE = 512  # chars fed to pyte between two looks at the clock
# More text than this waiting: only the last screenful of lines is fed (see _compact).
SKIP_AFTER = 4096

# The budget of one session's screen work, in CPU seconds.
PER_CALL = 0.005  # longest one call may hold the event loop
REFILL = 0.01  # per second: at most 1 % of a core per session, on average
CAPACITY = 0.03  # saved up while idle

# Snapshots of a running session are served from a cache at most this old.
SNAPSHOT_MAX_AGE = 0.25


class WorkBudget:
    """A token bucket of CPU seconds for one session's screen work."""

    def __init__(self) -> None:
        self.tokens = CAPACITY
        self._at = time.monotonic()

    def allowance(self) -> float:
        now = time.monotonic()
        self.tokens = min(CAPACITY, self.tokens + (now - self._at) * REFILL)
        self._at = now
        return min(self.tokens, PER_CALL)

    def spend(self, seconds: float) -> None:
        self.tokens -= seconds


class _Resize:
    """A resize, in order among the text not fed yet."""

    __slots__ = ("cols", "rows")

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols


class TerminalModel:
    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = clamp_size(rows, cols)
        self._screen: CheapScreen | None = CheapScreen(self.cols, self.rows)
        self._stream = pyte.Stream(self._screen)
        self._unfed: list[str | _Resize] = []
        self._unfed_chars = 0
        self._ready = ""  # sanitized text not fed yet (the budget ran out)
        self._held = ""  # an unfinished escape at the end, until it completes
        self._line = ""  # the cursor's line as printed (the one-line model)
        self._trimmed = False  # text was dropped: start over from a clean line
        self.budget = WorkBudget()
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_at = 0.0
        self._changed = True
        self.degraded = False  # text that moved the cursor was skipped (see _compact)

    # -- the hot path ---------------------------------------------------------------------

    def append(self, text: str) -> None:
        """Remember the text, parse nothing (old chunks are just dropped)."""
        if self._screen is None:
            return
        self._changed = True
        self._unfed.append(text)
        self._unfed_chars += len(text)
        cut = text.rfind("\n")
        self._line = text[cut + 1 :] if cut >= 0 else self._line + text
        if len(self._line) > 2 * LINE_KEEP:
            self._line = _tail(self._line, LINE_KEEP)
        if self._unfed_chars > 4 * BACKLOG:
            while len(self._unfed) > 1 and self._unfed_chars - _chars(self._unfed[0]) >= BACKLOG:
                self._unfed_chars -= _chars(self._unfed.pop(0))
            self._trimmed = True

    def resize(self, rows: int, cols: int) -> None:
        rows, cols = clamp_size(rows, cols)
        self.rows, self.cols = rows, cols
        if self._screen is None:
            return
        self._changed = True
        if self._unfed and isinstance(self._unfed[-1], _Resize):
            self._unfed[-1] = _Resize(rows, cols)  # a storm of resizes costs one
        else:
            self._unfed.append(_Resize(rows, cols))

    # -- bringing the screen up to date, on the budget ------------------------------------

    def sync(self) -> bool:
        """Feed what the budget allows; True when the screen shows all the text."""
        screen = self._screen
        if screen is None:
            return False
        if self._trimmed or self._pending_chars() > SKIP_AFTER:
            self._compact()
        allowance = self.budget.allowance()
        started = time.perf_counter()
        try:
            while self._unfed or self._ready:
                if time.perf_counter() - started >= allowance:
                    return False
                if self._ready:
                    piece, self._ready = self._ready[:SLICE], self._ready[SLICE:]
                    self._feed(piece)
                    continue
                item = self._unfed.pop(0)
                if isinstance(item, _Resize):
                    screen.resize(item.rows, item.cols)
                    continue
                self._unfed_chars -= len(item)
                self._ready = self._clean(item)
            return True
        finally:
            self.budget.spend(time.perf_counter() - started)
            if len(self._ready) > BACKLOG:
                self._trimmed = True

    def _clean(self, text: str) -> str:
        ready, self._held = defuse(self._held, text)
        return ready

    def _feed(self, text: str) -> None:
        try:
            self._stream.feed(text)
        except Exception:  # pyte must never take a session down; start it over
            self._restart()

    def _pending_chars(self) -> int:
        return len(self._ready) + self._unfed_chars

    def _compact(self) -> None:
        """Far behind: start over from the last screenful of lines (or the last
        BACKLOG chars), on a fresh line. For output that scrolls, which is nearly all,
        the screen ends up the same; text that moved the cursor before that point is
        lost, and ``degraded`` says so."""
        text = self._ready + "".join(i for i in self._unfed if isinstance(i, str))
        rows, cols = self.rows, self.cols  # the last size asked for (see resize)
        cut = len(text)
        for _ in range(rows + 1):
            cut = text.rfind("\n", 0, cut)
            if cut < 0:
                break
        if cut < 0 and not self._trimmed and len(text) <= BACKLOG:
            return  # less than a screenful of lines, nothing dropped: feed it all
        self._trimmed = False
        self.degraded = self.degraded or "\x1b" in text[: max(cut, 0)]
        text = text[cut + 1 :] if cut >= 0 else _tail(text, rows * cols)
        text = text[-BACKLOG:]
        # The size goes with the text even when no resize is left in _unfed: append()
        # may have dropped it with the oldest chunks, and the screen is still the old size.
        self._unfed = [_Resize(rows, cols), text]
        self._unfed_chars = len(text)
        self._ready = ""
        self._held = ""
        self._restart()

    def _restart(self) -> None:
        assert self._screen is not None
        self._screen.reset()
        dispose(self._stream)
        self._stream = pyte.Stream(self._screen)

    # -- what callers read ----------------------------------------------------------------

    def prompt(self, limit: int = 512) -> str:
        """The cursor's line up to the cursor, as shown (wide characters once)."""
        if self._screen is None:
            return ""
        if self.sync():
            return cursor_line(self._screen)[-limit:]
        # The screen is behind: the cursor's line on a one-line screen of this width.
        started = time.perf_counter()
        line = CheapScreen(self.cols, 1)
        stream = pyte.Stream(line)
        try:
            stream.feed(sanitize(self._line[-LINE_KEEP:]))
            return cursor_line(line)[-limit:]
        except Exception:
            return ""
        finally:
            dispose(stream, line)
            self.budget.spend(time.perf_counter() - started)

    def snapshot(self) -> dict[str, Any]:
        """What the screen shows; cached, and at most SNAPSHOT_MAX_AGE old."""
        now = time.monotonic()
        # A session short of budget gets the cached snapshot for a while: a client
        # asking in a loop cannot turn GETs into screen work.
        thrifty = self.budget.tokens < PER_CALL and now - self._snapshot_at < SNAPSHOT_MAX_AGE
        fresh = self._snapshot is not None and (not self._changed or thrifty)
        if self._screen is None or fresh:
            assert self._snapshot is not None or self._screen is not None
            return self._snapshot if self._snapshot is not None else self._render()
        self._changed = not self.sync()
        self._snapshot, self._snapshot_at = self._render(), now
        return self._snapshot

    def _render(self) -> dict[str, Any]:
        screen = self._screen
        assert screen is not None
        cursor = screen.cursor
        return {
            "rows": screen.lines,
            "cols": screen.columns,
            "lines": [line_text(screen.buffer.get(y), screen.columns) for y in range(screen.lines)],
            "cursor": {"row": cursor.y, "col": cursor.x, "hidden": bool(cursor.hidden)},
        }

    def freeze(self, budget: float = 0.02) -> None:
        """The session ended: keep the last snapshot, free the screen."""
        if self._screen is None:
            return
        self.budget.tokens = max(self.budget.tokens, budget)
        self.sync()
        self._snapshot = self._render()
        dispose(self._stream, self._screen)
        self._screen = None
        self._stream = None  # type: ignore[assignment]
        self._unfed, self._ready, self._held, self._line = [], "", "", ""
        self._unfed_chars = 0


def _tail(text: str, size: int) -> str:
    """About the last ``size`` chars, starting at an escape if one is near the cut (a
    cut inside an escape sequence would show its tail as text)."""
    tail = text[-size:]
    esc = tail.find("\x1b", 0, 64)
    return tail[esc:] if esc > 0 else tail


def _chars(item: str | _Resize) -> int:
    return len(item) if isinstance(item, str) else 0
