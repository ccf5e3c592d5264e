"""What the terminal shows: the prompt on the cursor's line."""

from __future__ import annotations

import re

# CSI, OSC (BEL or ST terminated), other two-byte escapes.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def prompt_from_tail(tail: str, limit: int = 512) -> str:
    """The text of the cursor's line up to the cursor, escape sequences removed.

    Cursor movements other than CR and LF are not followed (the screen model is).
    """
    line = tail[tail.rfind("\n") + 1 :]
    line = _ESCAPES.sub("", line)
    # A carriage return puts the cursor at column 0: what precedes the cursor is
    # what was written since.
    line = line[line.rfind("\r") + 1 :]
    line = "".join(ch for ch in line if ch >= " " or ch == "\t")
    return line[-limit:]
