"""What the terminal shows: the prompt on the cursor's line."""

from __future__ import annotations

import re

# CSI, OSC (BEL or ST terminated), other two-byte escapes.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def prompt_from_tail(tail: str, limit: int = 512) -> str:
    """The text of the cursor's line up to the cursor, escape sequences removed."""
    line = tail[tail.rfind("\n") + 1 :]
    line = _ESCAPES.sub("", line)
    if "\r" in line:
        # A carriage return moves to column 0; later text overwrites earlier text.
        parts = line.split("\r")
        shown = ""
        for part in parts:
            shown = part + shown[len(part) :]
        line = shown
    line = "".join(ch for ch in line if ch >= " " or ch == "\t")
    return line[-limit:]
