"""The screen model: what a session's terminal shows, from a pyte screen fed lazily and
on a budget.

The event loop is shared by every learner, and pyte's cost grows with the screen, not
with the bytes (one ``ESC # 8`` fills every cell; a scroll moves every line). So:

- Output is only *appended* here on the hot path (a list append). The screen is brought
  up to date when someone asks for the prompt or a snapshot, from the last ``BACKLOG``
  chars at most.
- Each session's screen work draws on a :class:`WorkBudget` (a token bucket of CPU
  seconds): one call feeds for at most ``PER_CALL`` seconds, and a session gets
  ``REFILL`` seconds per second. Text not fed yet waits for the next call; the screen
  lags, it never stalls the loop.
- The size is bounded (``MAX_ROWS`` x ``MAX_COLS``), and the operations whose cost is
  the screen's area are made cheap: erasing the display clears the buffer, the
  alternate screen swaps buffers instead of copying them, DECALN (a test pattern) is
  ignored, runs of combining marks are cut to ``MAX_COMBINING``, dirty-line tracking
  (unused here) is off.
- When the screen is behind, the prompt comes from a one-line model of the cursor's
  line (``LINE_KEEP`` chars at most), which costs next to nothing.
- When the session ends, :meth:`TerminalModel.freeze` keeps the last snapshot and drops
  the screen.

Before pyte sees text, known traps are defused:

- an unterminated OSC (or DCS/APC/PM/SOS) string would swallow all that follows: such
  strings are removed (titles, hyperlinks and clipboard writes mean nothing here) and
  an unfinished one at the end is held back, up to a bound;
- U+200D (zero width joiner) cuts pyte's text run: removed;
- CSI sequences with absurdly long parameters (they make pyte parse huge integers) are
  dropped.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from collections import defaultdict
from typing import Any

import pyte
import pyte.modes

from codex.errors import field_error

BACKLOG = 16 * 1024  # chars kept for the screen: several full screens
MAX_HELD = 4096  # an escape string longer than this unterminated is garbage
LINE_KEEP = 512  # chars of the cursor's line kept for the one-line model
MAX_COMBINING = 8  # combining marks kept on one base character
SLICE = 512  # chars fed to pyte between two looks at the clock
# More text than this waiting: only the last screenful of lines is fed (see _compact).
SKIP_AFTER = 4096

# What a client may ask for, and what the pty and the model get (a browser terminal is
# rarely above 300 x 120). Sizes above the model's bound, up to MAX_DIMENSION, are
# accepted and clamped, so an existing client never gets an error for a big window.
MAX_DIMENSION = 1000
MAX_ROWS = 120
MAX_COLS = 300

# The budget of one session's screen work, in CPU seconds.
PER_CALL = 0.005  # longest one call may hold the event loop
REFILL = 0.01  # per second: at most 1 % of a core per session, on average
CAPACITY = 0.03  # saved up while idle

# Snapshots of a running session are served from a cache at most this old.
SNAPSHOT_MAX_AGE = 0.25

_STRINGS = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\x90\x98\x9d\x9e\x9f]*(?:\x07|\x1b\\|\x9c)"
)
_LONG_CSI = re.compile(r"\x1b\[[0-?]{33,}[ -/]*[@-~]")
_UNFINISHED = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\x90\x98\x9d\x9e\x9f]*\x1b?$"
    r"|\x1b\[[0-?]*[ -/]*$|\x1b$"
)
_ALT_SCREEN_MODES = {1049 << 5, 1047 << 5, 47 << 5}


def _combining_class() -> str:
    """A regex class of every code point pyte would stack on the previous cell."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, sys.maxunicode + 1):
        if unicodedata.combining(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)


_COMBINING = _combining_class()
_COMBINING_RUN = re.compile(f"([{_COMBINING}]{{{MAX_COMBINING}}})[{_COMBINING}]+")


def valid_size(rows: object, cols: object) -> tuple[int, int]:
    """A terminal size from a client (clamped to MAX_ROWS x MAX_COLS), or the error
    naming the bad field."""
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DIMENSION:
            raise field_error(name, f"an integer from 1 to {MAX_DIMENSION}")
    return clamp_size(rows, cols)  # type: ignore[arg-type]


def clamp_size(rows: int, cols: int) -> tuple[int, int]:
    return min(rows, MAX_ROWS), min(cols, MAX_COLS)


def sanitize(text: str) -> str:
    """Text with pyte's traps and its area-sized costs taken out (see the module doc)."""
    text = _STRINGS.sub("", text)
    text = _LONG_CSI.sub("", text).replace("\u200d", "")
    return _COMBINING_RUN.sub(r"\1", text)


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


class _NoDirty(set[int]):
    """pyte marks changed lines on every scroll (a loop over all lines); nothing here
    reads them."""

    def add(self, _: int) -> None:
        pass

    def update(self, *_: Any) -> None:
        pass


class _Screen(pyte.Screen):
    """A pyte screen whose area-sized operations cost little, with an alternate
    screen buffer."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.dirty = _NoDirty()
        self._saved_main: tuple[Any, Any] | None = None

    def _new_buffer(self) -> defaultdict[int, Any]:
        return defaultdict(lambda: pyte.screens.StaticDefaultDict(self.default_char))

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and {m << 5 for m in modes} & _ALT_SCREEN_MODES:
            if self._saved_main is None:
                # Swap, never copy: switching back and forth costs O(1).
                self._saved_main = (self.buffer, self.cursor)
                self.buffer = self._new_buffer()
                self.cursor = pyte.screens.Cursor(self.cursor.x, self.cursor.y, self.cursor.attrs)
            return
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and {m << 5 for m in modes} & _ALT_SCREEN_MODES:
            if self._saved_main is not None:
                self.buffer, self.cursor = self._saved_main
                self._saved_main = None
                self.ensure_hbounds()
                self.ensure_vbounds()
            return
        super().reset_mode(*modes, **kwargs)

    def reset(self) -> None:
        self._saved_main = None
        super().reset()

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        # Blank cells are absent cells here (only text and the cursor are reported),
        # so erasing removes lines instead of rewriting every cell.
        y = self.cursor.y
        if how in (2, 3):
            self.buffer.clear()
            return
        for k in [k for k in self.buffer if (k > y if how == 0 else k < y)]:
            del self.buffer[k]
        if how in (0, 1):
            self.erase_in_line(how)

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        line = self.buffer[self.cursor.y]
        x = self.cursor.x
        if how == 2:
            line.clear()
            return
        for k in [k for k in line if (k >= x if how == 0 else k <= x)]:
            del line[k]

    def insert_characters(self, count: int | None = None) -> None:
        self._shift_line(count or 1)

    def delete_characters(self, count: int | None = None) -> None:
        self._shift_line(-(count or 1))

    def _shift_line(self, by: int) -> None:
        """Cells at and right of the cursor move by ``by`` (pyte loops over every
        column per call; this touches only the cells there are)."""
        x, width = self.cursor.x, self.columns
        line = self.buffer[self.cursor.y]
        moved = {}
        for k, char in line.items():
            if k < x:
                moved[k] = char
            elif by < 0 and k < x - by:
                continue  # deleted
            elif 0 <= k + by < width:
                moved[k + by] = char
        line.clear()
        line.update(moved)

    def alignment_display(self) -> None:
        """DECALN fills every cell with "E" to align a CRT: a test pattern, ignored."""

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        lines, columns = clamp_size(lines or self.lines, columns or self.columns)
        if columns < self.columns:
            for line in self.buffer.values():
                for k in [k for k in line if k >= columns]:
                    del line[k]
        if lines < self.lines:
            # Drop from the top, as pyte does, by renumbering the lines that stay.
            shift = self.lines - lines
            kept = {y - shift: line for y, line in self.buffer.items() if y >= shift}
            self.buffer.clear()
            self.buffer.update(kept)
            self.cursor.y = max(0, self.cursor.y - shift)
        self.lines, self.columns = lines, columns
        self.set_margins()
        self.ensure_hbounds()
        self.ensure_vbounds()


class _Resize:
    """A resize, in order among the text not fed yet."""

    __slots__ = ("cols", "rows")

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols


class TerminalModel:
    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = clamp_size(rows, cols)
        self._screen: _Screen | None = _Screen(self.cols, self.rows)
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
        text = sanitize(self._held + text)
        self._held = ""
        unfinished = _UNFINISHED.search(text)
        if unfinished is None:
            return text
        tail = text[unfinished.start() :]
        if len(tail) <= MAX_HELD:
            self._held = tail
            return text[: unfinished.start()]
        # Never terminated: not an escape after all. Drop its introducer and let the
        # rest show as text, as pyte would never do by itself.
        skip = 2 if tail.startswith("\x1b") else 1
        return text[: unfinished.start()] + tail[skip:]

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
        size = [i for i in self._unfed if isinstance(i, _Resize)]
        text = self._ready + "".join(i for i in self._unfed if isinstance(i, str))
        rows, cols = (size[-1].rows, size[-1].cols) if size else (self.rows, self.cols)
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
        self._unfed = [*size[-1:], text]
        self._unfed_chars = len(text)
        self._ready = ""
        self._held = ""
        self._restart()

    def _restart(self) -> None:
        assert self._screen is not None
        self._screen.reset()
        _dispose(self._stream)
        self._stream = pyte.Stream(self._screen)

    # -- what callers read ----------------------------------------------------------------

    def prompt(self, limit: int = 512) -> str:
        """The cursor's line up to the cursor, as shown (wide characters once)."""
        if self._screen is None:
            return ""
        if self.sync():
            return _cursor_line(self._screen)[-limit:]
        # The screen is behind: the cursor's line on a one-line screen of this width.
        started = time.perf_counter()
        line = _Screen(self.cols, 1)
        stream = pyte.Stream(line)
        try:
            stream.feed(sanitize(self._line[-LINE_KEEP:]))
            return _cursor_line(line)[-limit:]
        except Exception:
            return ""
        finally:
            _dispose(stream, line)
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
            "lines": [_text(screen.buffer.get(y), screen.columns) for y in range(screen.lines)],
            "cursor": {"row": cursor.y, "col": cursor.x, "hidden": bool(cursor.hidden)},
        }

    def freeze(self, budget: float = 0.02) -> None:
        """The session ended: keep the last snapshot, free the screen."""
        if self._screen is None:
            return
        self.budget.tokens = max(self.budget.tokens, budget)
        self.sync()
        self._snapshot = self._render()
        _dispose(self._stream, self._screen)
        self._screen = None
        self._stream = None  # type: ignore[assignment]
        self._unfed, self._ready, self._held, self._line = [], "", "", ""
        self._unfed_chars = 0


def _dispose(stream: pyte.Stream | None, screen: pyte.Screen | None = None) -> None:
    """Break pyte's reference cycles (the stream's parser generator holds the stream;
    the screen's buffer factory holds the screen), so both are freed now rather than
    by the cyclic garbage collector."""
    if stream is not None:
        parser = getattr(stream, "_parser", None)
        if parser is not None:
            parser.close()
        stream.__dict__.clear()
    if screen is not None:
        screen.__dict__.clear()


def _tail(text: str, size: int) -> str:
    """About the last ``size`` chars, starting at an escape if one is near the cut (a
    cut inside an escape sequence would show its tail as text)."""
    tail = text[-size:]
    esc = tail.find("\x1b", 0, 64)
    return tail[esc:] if esc > 0 else tail


def _chars(item: str | _Resize) -> int:
    return len(item) if isinstance(item, str) else 0


def _cursor_line(screen: _Screen) -> str:
    cursor = screen.cursor
    return _text(screen.buffer.get(cursor.y), min(cursor.x, screen.columns), strip=False)


def _text(line: dict[int, Any] | None, width: int, *, strip: bool = True) -> str:
    """A line's text up to ``width`` (pyte's ``display``, over the cells there are
    rather than every column). A wide character's stub cell holds ""."""
    if not line:
        return ""
    last = min(max(line), width - 1)
    if last < 0:
        return ""
    chars = [" "] * (last + 1)
    for x, char in line.items():
        if x <= last:
            chars[x] = char.data
    text = "".join(chars)
    return text.rstrip() if strip else text
