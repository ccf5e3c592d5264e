"""The screen model: what a session's terminal shows, from a pyte screen fed lazily.

pyte parses about 1 MB/s while a program can print 70 MB/s, so it is never on the
output path. Output is only *appended* here (a list append); the screen is brought up to
date when someone asks for the prompt or a snapshot, from the last ``BACKLOG`` chars at
most. Before pyte sees text, three known traps are defused:

- an unterminated OSC (or DCS/APC/PM/SOS) string would swallow all that follows: such
  strings are removed (titles, hyperlinks and clipboard writes mean nothing here) and
  an unfinished one at the end is held back, up to a bound;
- U+200D (zero width joiner) cuts pyte's text run: removed;
- pyte has no alternate screen: :class:`_Screen` keeps the main screen aside while a
  full-screen program uses the alternate one, and restores it after.
CSI sequences with absurdly long parameters (an abuse: they make pyte parse huge
integers) are dropped as well.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pyte
import pyte.modes

from codex.errors import field_error

BACKLOG = 16 * 1024  # chars kept for the screen: several full screens
MAX_HELD = 4096  # an escape string longer than this unterminated is garbage

_STRINGS = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
)
_LONG_CSI = re.compile(r"\x1b\[[0-?]{33,}[ -/]*[@-~]")
_UNFINISHED = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*\x1b?$|\x1b\[[0-?]*[ -/]*$|\x1b$"
)
_ALT_SCREEN_MODES = {1049 << 5, 1047 << 5, 47 << 5}


MAX_DIMENSION = 1000


def valid_size(rows: object, cols: object) -> tuple[int, int]:
    """A terminal size from a client, or the error naming the bad field."""
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DIMENSION:
            raise field_error(name, f"an integer from 1 to {MAX_DIMENSION}")
    return rows, cols  # type: ignore[return-value]


class _Screen(pyte.Screen):
    """A pyte screen with an alternate screen buffer."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self._saved_main: tuple[Any, Any] | None = None

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and {m << 5 for m in modes} & _ALT_SCREEN_MODES:
            if self._saved_main is None:
                self._saved_main = (copy.deepcopy(self.buffer), copy.copy(self.cursor))
                self.erase_in_display(2)
            return
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and {m << 5 for m in modes} & _ALT_SCREEN_MODES:
            if self._saved_main is not None:
                buffer, cursor = self._saved_main
                self._saved_main = None
                self.buffer.clear()
                self.buffer.update(buffer)
                self.cursor = cursor
                self.dirty.update(range(self.lines))
            return
        super().reset_mode(*modes, **kwargs)


class TerminalModel:
    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self._screen = _Screen(cols, rows)
        self._stream = pyte.Stream(self._screen)
        self._unfed: list[str] = []
        self._unfed_chars = 0
        self._held = ""
        self._restart = False
        self._trimmed = False  # chunks were dropped: start over from a clean line

    def append(self, text: str) -> None:
        """Hot path: remember the text, parse nothing (old chunks are just dropped)."""
        self._unfed.append(text)
        self._unfed_chars += len(text)
        if self._unfed_chars > 4 * BACKLOG:
            while len(self._unfed) > 1 and self._unfed_chars - len(self._unfed[0]) >= BACKLOG:
                self._unfed_chars -= len(self._unfed.pop(0))
            self._trimmed = True

    def _compact(self) -> None:
        text = "".join(self._unfed)[-BACKLOG:]
        # Start on a fresh line, never inside an escape sequence.
        cut = text.find("\n")
        text = text[cut + 1 :] if cut >= 0 else ""
        self._unfed = [text]
        self._unfed_chars = len(text)
        self._held = ""
        self._restart = True

    def sync(self) -> None:
        if self._unfed_chars > BACKLOG or self._trimmed:
            self._trimmed = False
            self._compact()
        if not self._unfed and not self._restart:
            return
        if self._restart:
            self._screen.reset()
            self._restart = False
        text = self._held + "".join(self._unfed)
        self._unfed, self._unfed_chars = [], 0
        text = _STRINGS.sub("", text)
        text = _LONG_CSI.sub("", text).replace("\u200d", "")
        unfinished = _UNFINISHED.search(text)
        self._held = ""
        if unfinished is not None:
            tail = text[unfinished.start() :]
            if len(tail) <= MAX_HELD:
                self._held = tail
                text = text[: unfinished.start()]
            else:
                # Never terminated: not an escape after all. Drop its introducer and
                # let the rest show as text, as pyte would never do by itself.
                skip = 2 if tail.startswith("\x1b") else 1
                text = text[: unfinished.start()] + tail[skip:]
        try:
            self._stream.feed(text)
        except Exception:  # pyte must never take a session down; start it over
            self._screen.reset()
            self._stream = pyte.Stream(self._screen)

    def resize(self, rows: int, cols: int) -> None:
        self.sync()
        self.rows, self.cols = rows, cols
        self._screen.resize(rows, cols)

    def prompt(self, limit: int = 512) -> str:
        """The cursor's line up to the cursor, as shown (wide characters once)."""
        self.sync()
        cursor = self._screen.cursor
        line = self._screen.buffer[cursor.y]
        chars = [line[x].data for x in range(min(cursor.x, self._screen.columns))]
        return "".join(chars)[-limit:]

    def snapshot(self) -> dict[str, Any]:
        self.sync()
        cursor = self._screen.cursor
        return {
            "rows": self.rows,
            "cols": self.cols,
            "lines": [line.rstrip() for line in self._screen.display],
            "cursor": {"row": cursor.y, "col": cursor.x, "hidden": bool(cursor.hidden)},
        }
