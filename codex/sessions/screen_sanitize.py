"""Defusing a program's output before pyte sees it (codex.sessions.screen).

Known traps, and sequences whose cost is the screen's area:

- an unterminated OSC (or DCS/APC/PM/SOS) string would swallow all that follows: such
  strings are removed (titles, hyperlinks and clipboard writes mean nothing here) and
  an unfinished one at the end is held back, up to ``MAX_HELD``;
- U+200D (zero width joiner) cuts pyte's text run: removed;
- CSI sequences with absurdly long parameters (they make pyte parse huge integers) are
  dropped;
- runs of combining marks are cut to ``MAX_COMBINING``.
"""

from __future__ import annotations

import re
import sys
import unicodedata

MAX_HELD = 4096  # an escape string longer than this unterminated is garbage
MAX_COMBINING = 8  # combining marks kept on one base character

_STRINGS = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\x90\x98\x9d\x9e\x9f]*(?:\x07|\x1b\\|\x9c)"
)
_LONG_CSI = re.compile(r"\x1b\[[0-?]{33,}[ -/]*[@-~]")
_UNFINISHED = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\x90\x98\x9d\x9e\x9f]*\x1b?$"
    r"|\x1b\[[0-?]*[ -/]*$|\x1b$"
)


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


def sanitize(text: str) -> str:
    """Text with pyte's traps and its area-sized costs taken out (see the module doc)."""
    text = _STRINGS.sub("", text)
    text = _LONG_CSI.sub("", text).replace("\u200d", "")
    return _COMBINING_RUN.sub(r"\1", text)


def defuse(held: str, text: str) -> tuple[str, str]:
    """``text`` after what was ``held``, sanitized: what pyte may be fed now, and an
    unfinished escape at the end to hold until the rest of it arrives."""
    text = sanitize(held + text)
    unfinished = _UNFINISHED.search(text)
    if unfinished is None:
        return text, ""
    tail = text[unfinished.start() :]
    if len(tail) <= MAX_HELD:
        return text[: unfinished.start()], tail
    # Never terminated: not an escape after all. Drop its introducer and let the
    # rest show as text, as pyte would never do by itself.
    skip = 2 if tail.startswith("\x1b") else 1
    return text[: unfinished.start()] + tail[skip:], ""
