"""The pyte screen behind the screen model (codex.sessions.screen), made cheap.

pyte's cost grows with the screen, not with the bytes (one ``ESC # 8`` fills every cell;
a scroll moves every line). Here the operations whose cost is the screen's area are made
cheap: erasing the display clears the buffer, the alternate screen swaps buffers instead
of copying them, DECALN (a test pattern) is ignored, inserting and deleting characters
touch only the cells there are, dirty-line tracking (unused here) is off, and the size
never exceeds the caps of codex.sessions.sizes. Text is read from the cells there are,
not from every column. And plain ASCII text, nearly all output, is drawn a line's worth
at a time instead of a character at a time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyte
import pyte.modes
from pyte.modes import DECAWM, IRM

from codex.sessions.sizes import clamp_size

_ALT_SCREEN_MODES = {1049 << 5, 1047 << 5, 47 << 5}


class _NoDirty(set[int]):
    """pyte marks changed lines on every scroll (a loop over all lines); nothing here
    reads them."""

    def add(self, _: int) -> None:
        pass

    def update(self, *_: Any) -> None:
        pass


class CheapScreen(pyte.Screen):
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

    def draw(self, data: str) -> None:
        # pyte draws a character at a time (its width, the wrap, a new Char each):
        # ~1.5 us a char, 60 ms for a 120 x 300 screenful. Printable ASCII in the
        # default modes is one cell a char, so a line's worth goes in one update.
        modes = self.mode
        if IRM in modes or DECAWM not in modes or not (data.isascii() and data.isprintable()):
            super().draw(data)
            return
        shown = data.translate(self.g1_charset if self.charset else self.g0_charset)
        if shown != data:  # a graphics character set maps letters to lines and corners
            super().draw(data)
            return
        cursor, columns = self.cursor, self.columns
        attrs = cursor.attrs
        cells = {char: attrs._replace(data=char) for char in set(data)}
        start = 0
        while start < len(data):
            if cursor.x >= columns:
                self.carriage_return()
                self.linefeed()
            piece = data[start : start + columns - cursor.x]
            self.buffer[cursor.y].update(
                zip(
                    range(cursor.x, cursor.x + len(piece)),
                    map(cells.__getitem__, piece),
                    strict=True,
                )
            )
            cursor.x += len(piece)
            start += len(piece)

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


def dispose(stream: pyte.Stream | None, screen: pyte.Screen | None = None) -> None:
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


def cursor_line(screen: CheapScreen) -> str:
    cursor = screen.cursor
    return line_text(screen.buffer.get(cursor.y), min(cursor.x, screen.columns), strip=False)


def line_text(line: dict[int, Any] | None, width: int, *, strip: bool = True) -> str:
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
