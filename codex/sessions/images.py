"""What an image is, read from its own bytes: PNG, JPEG or SVG, and its size.

The sandbox says what it sends; the server believes only these headers. An SVG is
read only as far as its root element (expat, which never fetches anything), never
rendered or fully parsed here: clients show it as an image (``<img>``), where it
runs no script, and the REST route serves it under a sandboxing CSP.
"""

from __future__ import annotations

import re
import struct
import xml.parsers.expat

PNG, JPEG, SVG = "image/png", "image/jpeg", "image/svg+xml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# JPEG start-of-frame markers (they carry the size); C4, C8 and CC are not frames.
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_SCAN_LIMIT = 1 << 20  # bytes of a JPEG searched for its frame header
SVG_ROOT_LIMIT = 8192  # bytes of an SVG within which its root element must start
SVG_DEFAULT = (300, 150)  # a browser's size for an SVG that gives none
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
# CSS lengths an SVG's width and height may use, in pixels per unit.
SVG_UNITS = {
    "": 1.0,
    "px": 1.0,
    "pt": 4 / 3,
    "pc": 16.0,
    "in": 96.0,
    "cm": 96 / 2.54,
    "mm": 9.6 / 2.54,
}
LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$")


def image_info(data: bytes) -> tuple[str, int, int] | None:
    """(mime, width, height) from the image's own header, or None if it is not a
    PNG, JPEG or SVG with a readable, non-zero size."""
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return (PNG, width, height) if width and height else None
    if data.startswith(JPEG_SIGNATURE):
        size = _jpeg_size(data)
        return (JPEG, *size) if size else None
    size = _svg_size(data)
    return (SVG, *size) if size else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    end = min(len(data), JPEG_SCAN_LIMIT)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in JPEG_FRAMES and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return (width, height) if width and height else None
        at += 2 + length
    return None


class _Root(Exception):
    """Raised by the parser's handler at the root element: nothing more is read."""

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name, self.attrs = name, attrs


def _svg_size(data: bytes) -> tuple[int, int] | None:
    """The size of an SVG document: UTF-8 text whose root is <svg> in the SVG namespace,
    with no DOCTYPE (so no entities); from width/height, else the viewBox."""
    head = data[:SVG_ROOT_LIMIT]
    if b"<svg" not in head or b"<!DOCTYPE" in head.upper():
        return None
    root = _root_element(head)
    if root is None or root.name not in (SVG_NAMESPACE + " svg", "svg"):
        return None
    width, height = _length(root.attrs.get("width")), _length(root.attrs.get("height"))
    box = _view_box(root.attrs.get("viewBox"))
    if width is None and height is None:
        width, height = box or SVG_DEFAULT
    elif width is None or height is None:
        # One side given: the other follows the viewBox's aspect ratio, if any.
        ratio = box[0] / box[1] if box else SVG_DEFAULT[0] / SVG_DEFAULT[1]
        width = width if width is not None else (height or 0) * ratio
        height = height if height is not None else width / ratio
    w, h = round(width), round(height)
    return (w, h) if w > 0 and h > 0 else None


def _root_element(head: bytes) -> _Root | None:
    parser = xml.parsers.expat.ParserCreate(encoding="utf-8", namespace_separator=" ")

    def start(name: str, attrs: dict[str, str]) -> None:
        raise _Root(name, attrs)

    def no_doctype(*args: object) -> None:
        raise xml.parsers.expat.ExpatError("a DOCTYPE")

    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = no_doctype
    try:
        parser.Parse(head, False)
    except _Root as root:
        return root
    except (xml.parsers.expat.ExpatError, ValueError):
        return None
    return None  # no element within the first SVG_ROOT_LIMIT bytes


def _length(value: str | None) -> float | None:
    match = LENGTH.match(value or "")
    if match is None or match[2] not in SVG_UNITS:
        return None  # absent, a percentage, or a unit of the page's font: not a size
    return float(match[1]) * SVG_UNITS[match[2]]


def _view_box(value: str | None) -> tuple[float, float] | None:
    parts = (value or "").replace(",", " ").split()
    try:
        width, height = float(parts[2]), float(parts[3])
    except (IndexError, ValueError):
        return None
    return (width, height) if len(parts) == 4 and width > 0 and height > 0 else None
