"""CheapScreen's line-at-a-time draw leaves the screen exactly as pyte's own draw does.

No Docker: random terminal output, from a fixed seed, fed to two screens that differ
only in draw(); cells (text and attributes) and cursor must match after every feed."""

from __future__ import annotations

import random
from typing import Any

import pyte

from codex.sessions.screen_pyte import CheapScreen

# Pieces of output, the fast path's cases and each reason to leave it.
PIECES = [
    "hello world ",
    "x" * 97,
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\b",
    "\x1b[31m",  # attributes go into the cells
    "\x1b[1;4;42m",
    "\x1b[0m",
    "\x1b[5;7H",
    "\x1b[K",
    "\x1b[2J",
    "\x1b[3L",
    "\x1b[2M",
    "\x1b[4P",
    "\x1b[2;5r",  # margins: scrolling within them
    "\x1b[r",
    "\x1b[?7l",  # no autowrap
    "\x1b[?7h",
    "\x1b[4h",  # insert mode
    "\x1b[4l",
    "\x1b[20h",  # a linefeed is also a carriage return
    "\x1b[20l",
    "\x1b(0",  # graphics character set (without UTF-8): letters become lines
    "\x1b(B",
    "\x0e",  # shift out to G1, and back
    "\x0f",
    "\x1b)0",
    "中文",
    "e\u0301",
    "caf\u00e9",
]


class PyteDraw(CheapScreen):
    draw = pyte.Screen.draw


def _state(screen: CheapScreen) -> tuple[Any, ...]:
    cells = {y: dict(line) for y, line in screen.buffer.items() if line}
    return cells, screen.cursor.x, screen.cursor.y, screen.cursor.attrs


def test_the_fast_draw_matches_pytes_draw_cell_for_cell() -> None:
    rng = random.Random(20261204)
    for case in range(300):
        cols, rows = rng.choice([(1, 1), (2, 3), (7, 4), (80, 24), (13, 9)])
        fast, slow = CheapScreen(cols, rows), PyteDraw(cols, rows)
        streams = pyte.Stream(fast), pyte.Stream(slow)
        for stream in streams:  # without UTF-8, pyte honours ESC ( 0: half the cases
            stream.use_utf8 = case % 2 == 0
        for step in range(40):
            piece = rng.choice(PIECES)
            if rng.random() < 0.3:
                piece *= rng.randint(2, 30)
            for stream in streams:
                stream.feed(piece)
            assert _state(fast) == _state(slow), (case, step, repr(piece))


def test_a_screenful_that_wraps_and_scrolls_matches_too() -> None:
    # The case the fast path is for (its time is in docs/performance.md, not here).
    fast, slow = CheapScreen(300, 120), PyteDraw(300, 120)
    for screen in (fast, slow):
        pyte.Stream(screen).feed("x" * 36_050 + "\x1b[32m" + "y" * 700)
    assert _state(fast) == _state(slow)
