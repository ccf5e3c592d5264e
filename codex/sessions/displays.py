"""Images a program displays: checked, bounded and described before anyone sees them.

The sandbox says what an image is; the server believes only the bytes. Each image must
be a PNG, a JPEG or an SVG whose header gives its size (codex.sessions.images), within
the session's bounds (bytes per image, images per run, pixels). One that is not is
replaced by a notice in the output, never dropped in silence. Images are numbered from
1 in the order the program showed them, refused ones included, so "figure 3" in a
notice is the program's third.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from codex.config import Settings
from codex.runtime.protocol import DisplayRecord
from codex.sessions.images import SVG, image_info

TIMES = "\u00d7"  # the multiplication sign, as in "640 by 480" written by hand


def inline_image(payload: dict[str, object]) -> str:
    """A `display` payload as iTerm2's inline image sequence, which xterm.js's
    @xterm/addon-image draws (fitted to the terminal, since no size is given) and
    other terminals ignore: ``OSC 1337 ; File=name=..;size=..;inline=1 : <base64> BEL``.
    "" for an SVG, which the addon does not draw (the text line stands for it)."""
    data = payload["data"]
    assert isinstance(data, dict)  # a payload this module made (Displays._payload)
    mime = next(m for m in data if m.startswith("image/"))
    if mime == SVG:
        return ""
    encoded = data[mime]
    size = len(encoded) * 3 // 4 - encoded[-2:].count("=")
    ext = "png" if mime == "image/png" else "jpg"
    name = base64.b64encode(f"figure-{payload.get('index', 0)}.{ext}".encode()).decode("ascii")
    # The addon leaves the cursor on the image's last row: the line after it would
    # cover the image's bottom, so a new line follows, as iTerm2's imgcat writes.
    return f"\x1b]1337;File=name={name};size={size};inline=1:{encoded}\x07\r\n"


def size_text(n: int) -> str:
    """2097152 -> "2 MiB", 10240 -> "10 KiB", 1000 -> "1000 bytes"."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Shown:
    """One image that passed: its description and the `display` event's payload."""

    index: int
    mime: str
    width: int
    height: int
    size: int
    payload: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "mime": self.mime,
            "width": self.width,
            "height": self.height,
            "bytes": self.size,
        }


class Displays:
    """The bounds of one run, and what it has shown so far."""

    def __init__(
        self, session_id: str, max_bytes: int, max_count: int, max_pixels: int, text_line: bool
    ) -> None:
        self.session_id = session_id
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.max_pixels = max_pixels
        self.text_line = text_line
        self.seen = 0  # images the program showed, refused ones included
        self.shown: list[Shown] = []

    def take(self, record: DisplayRecord, room: int) -> tuple[Shown | None, str]:
        """The image if it may be shown, and the text line that goes with it: the
        notice of a refusal, or the short line for clients without `display`.
        ``room`` is what is left of the output budget."""
        self.seen += 1
        n = self.seen
        info = image_info(record.data) if record.data else None
        if info is not None and info[0] == SVG and not _is_utf8(record.data):
            info = None
        if record.size > self.max_bytes or len(record.data) > self.max_bytes:
            return None, f"[figure {n} not shown: larger than {size_text(self.max_bytes)}]\r\n"
        if len(self.shown) >= self.max_count:
            return None, f"[figure {n} not shown: more than {self.max_count} figures]\r\n"
        if info is None:
            return None, f"[figure {n} not shown: not a PNG, JPEG or SVG image]\r\n"
        mime, width, height = info
        if width * height > self.max_pixels:
            why = f"{width}{TIMES}{height} is more than {self.max_pixels} pixels"
            return None, f"[figure {n} not shown: {why}]\r\n"
        if len(record.data) > room:
            return None, f"[figure {n} not shown: the output limit is reached]\r\n"
        shown = Shown(n, mime, width, height, len(record.data), self._payload(n, record, info))
        self.shown.append(shown)
        return shown, (f"[figure {n}: {width}{TIMES}{height}]\r\n" if self.text_line else "")

    def _payload(self, n: int, record: DisplayRecord, info: tuple[str, int, int]) -> dict[str, Any]:
        """Jupyter's display_data content, with the session and the figure's number."""
        mime, width, height = info
        # As Jupyter has it: an SVG is its text, other images are base64.
        text = record.data.decode() if mime == SVG else base64.b64encode(record.data).decode()
        data = {mime: text}
        data["text/plain"] = record.text or f"<image {width}x{height}>"
        return {
            "sessionId": self.session_id,
            "index": n,
            "data": data,
            "metadata": {mime: {"width": width, "height": height}},
        }

    @classmethod
    def of(cls, session_id: str, s: Settings) -> Displays:
        bounds = (s.display_max_bytes, s.display_max_count, s.display_max_pixels)
        return cls(session_id, *bounds, text_line=s.display_text_line)

    def image(self, index: int) -> tuple[str, bytes] | None:
        """(content type, bytes) of the image numbered ``index``, if it was shown."""
        for shown in self.shown:
            if shown.index == index:
                content = shown.payload["data"][shown.mime]
                raw = content.encode() if shown.mime == SVG else base64.b64decode(content)
                return shown.mime, raw
        return None

    def listing(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.shown]
