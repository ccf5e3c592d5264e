"""Terminal sizes: what a client may ask for, and what the pty and the screen model get.

One place for the caps, so the transports' validation, the OpenAPI document and the screen
model cannot disagree.
"""

from __future__ import annotations

from codex.errors import field_error

# A browser terminal is rarely above 300 x 120. Sizes above the model's bound, up to
# MAX_DIMENSION, are accepted and clamped, so an existing client never gets an error for
# a big window.
MAX_DIMENSION = 1000
MAX_ROWS = 120
MAX_COLS = 300


def valid_size(rows: object, cols: object) -> tuple[int, int]:
    """A terminal size from a client (clamped to MAX_ROWS x MAX_COLS), or the error
    naming the bad field."""
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DIMENSION:
            raise field_error(name, f"an integer from 1 to {MAX_DIMENSION}")
    return clamp_size(rows, cols)  # type: ignore[arg-type]


def clamp_size(rows: int, cols: int) -> tuple[int, int]:
    return min(rows, MAX_ROWS), min(cols, MAX_COLS)
