"""Display and stderr records, the image header check and the display bounds."""

from __future__ import annotations

import base64
import json
import struct
import zlib

from codex.runtime.protocol import (
    RESULT_END,
    RESULT_OSC,
    DisplayRecord,
    ResultScanner,
    StreamSwitch,
    stream_token,
)
from codex.sessions.displays import Displays, inline_image, size_text
from codex.sessions.images import SVG, image_info

NONCE = "0123456789abcdef0123456789abcdef"
MARK = RESULT_OSC + NONCE.encode() + b";"
SWITCH = RESULT_OSC + stream_token(NONCE).encode() + b";"  # what the child writes


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + bytes(3)
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def display_record(image: bytes, text: str = "<Figure>") -> bytes:
    header = json.dumps({"mime": "image/png", "text": text, "bytes": len(image)}).encode()
    body = b"display:%d:" % len(header) + header + base64.b64encode(image)
    return MARK + body + RESULT_END


def test_images_and_switches_come_out_in_their_places_whatever_the_cuts() -> None:
    image = png(64, 48)
    stream = (
        b"before\r\n"
        + display_record(image)
        + b"mid"
        + SWITCH
        + b"stderr:on"
        + RESULT_END
        + b"err"
        + SWITCH
        + b"stderr:off"
        + RESULT_END
        + b"after"
    )
    for cut in range(1, len(stream)):
        scanner = ResultScanner(NONCE)
        items = scanner.feed_items(stream[:cut]) + scanner.feed_items(stream[cut:])
        items.append(scanner.flush())
        merged: list[object] = []
        for item in items:
            if isinstance(item, bytes) and merged and isinstance(merged[-1], bytes):
                merged[-1] += item
            elif item != b"":
                merged.append(item)
        assert merged == [
            b"before\r\n",
            DisplayRecord("image/png", "<Figure>", len(image), image),
            b"mid",
            StreamSwitch(True),
            b"err",
            StreamSwitch(False),
            b"after",
        ], cut


def test_switches_come_only_with_the_stream_token_and_records_only_with_the_nonce() -> None:
    scanner = ResultScanner(NONCE)
    forged_result = SWITCH + b'{"exitCode": 0}' + RESULT_END  # the token cannot end a run
    forged_image = SWITCH + display_record(png(2, 2))[len(MARK) :]
    switch_by_nonce = MARK + b"stderr:on" + RESULT_END
    items = scanner.feed_items(forged_result + forged_image + switch_by_nonce + b"x")
    assert items == [b"x"] and scanner.result is None
    assert stream_token(NONCE) != NONCE and len(stream_token(NONCE)) == len(NONCE)
    other = RESULT_OSC + b"f" * 32 + b";stderr:on" + RESULT_END  # nobody's token: text
    assert scanner.feed_items(other) == [other]


def test_a_display_record_longer_than_64_kib_passes_within_its_bound() -> None:
    image = png(10, 10) + bytes(300_000)
    scanner = ResultScanner(NONCE)
    scanner.display_max = 1 << 20
    record = display_record(image)
    items = [
        x for at in range(0, len(record), 4096) for x in scanner.feed_items(record[at : at + 4096])
    ]
    assert items == [DisplayRecord("image/png", "<Figure>", len(image), image)]


def test_a_forged_display_record_is_text() -> None:
    forged = b"\x1b]6973;" + b"f" * 32 + b";display:2:{}AAAA" + RESULT_END
    scanner = ResultScanner(NONCE)
    assert [*scanner.feed_items(forged), scanner.flush()] == [forged, b""]


def test_a_malformed_display_record_still_counts_as_a_figure() -> None:
    scanner = ResultScanner(NONCE)
    [item] = scanner.feed_items(MARK + b"display:nonsense" + RESULT_END)
    assert item == DisplayRecord("", "", 0, b"")


def test_header_check_reads_png_and_jpeg_sizes_and_refuses_the_rest() -> None:
    assert image_info(png(640, 480)) == ("image/png", 640, 480)
    assert image_info(jpeg(7, 5)) == ("image/jpeg", 7, 5)
    assert image_info(b"GIF89a" + bytes(20)) is None
    assert image_info(png(0, 10)) is None
    assert image_info(b"\xff\xd8\xff\xe0") is None  # a JPEG cut before its frame
    assert image_info(b"\x89PNG\r\n\x1a\n") is None


def test_bounds_give_numbered_notices_never_silence() -> None:
    d = Displays("s", max_bytes=2 << 20, max_count=2, max_pixels=100 * 100, text_line=True)
    ok = png(10, 10)
    shown, line = d.take(DisplayRecord("image/png", "<Figure>", len(ok), ok), room=1 << 20)
    assert shown is not None and line == "[figure 1: 10\u00d710]\r\n"
    assert shown.payload["metadata"] == {"image/png": {"width": 10, "height": 10}}
    assert base64.b64decode(shown.payload["data"]["image/png"]) == ok
    big = DisplayRecord("image/png", "", 3 << 20, b"")
    assert d.take(big, 1 << 20) == (None, "[figure 2 not shown: larger than 2 MiB]\r\n")
    wide = png(1000, 1000)
    _, line = d.take(DisplayRecord("image/png", "", len(wide), wide), 1 << 20)
    assert line == "[figure 3 not shown: 1000\u00d71000 is more than 10000 pixels]\r\n"
    bad = b"not an image"
    _, line = d.take(DisplayRecord("image/png", "", len(bad), bad), 1 << 20)
    assert line == "[figure 4 not shown: not a PNG, JPEG or SVG image]\r\n"
    _, line = d.take(DisplayRecord("image/png", "", len(ok), ok), room=10)
    assert line == "[figure 5 not shown: the output limit is reached]\r\n"
    assert d.take(DisplayRecord("image/png", "", len(ok), ok), 1 << 20)[0] is not None
    _, line = d.take(DisplayRecord("image/png", "", len(ok), ok), 1 << 20)
    assert line == "[figure 7 not shown: more than 2 figures]\r\n"
    assert [s["index"] for s in d.listing()] == [1, 6]
    assert size_text(4096) == "4 KiB" and size_text(1000) == "1000 bytes"


def test_a_display_is_an_inline_image_in_the_terminal_stream_at_its_place() -> None:
    from codex.api.terminal_ws import terminal_messages
    from codex.sessions.eventlog import Entry
    from codex.wire import DISPLAY, OUTPUT

    for image, name in ((png(3, 2), b"figure-7.png"), (jpeg(5, 4) + b"x", b"figure-7.jpg")):
        mime = "image/png" if name.endswith(b"png") else "image/jpeg"
        encoded = base64.b64encode(image).decode()
        payload = {"index": 7, "data": {mime: encoded, "text/plain": "<image>"}}
        sequence = inline_image(payload)
        head, _, body = sequence.partition(":")
        fields = dict(f.split("=", 1) for f in head.removeprefix("\x1b]1337;File=").split(";"))
        assert base64.b64decode(fields["name"]) == name and fields["inline"] == "1"
        assert int(fields["size"]) == len(image)  # whatever the base64 padding
        assert body == encoded + "\x07\r\n"  # the next line starts below the image
        entries = [Entry(1, OUTPUT, "a"), Entry(2, DISPLAY, payload=payload), Entry(3, OUTPUT, "b")]
        assert terminal_messages(entries) == [
            ["stdout", "a"],
            ["stdout", sequence],
            ["stdout", "b"],
        ]


SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


def test_an_svg_is_read_as_far_as_its_root_and_sized_like_a_browser_would() -> None:
    def info(text: str) -> tuple[str, int, int] | None:
        return image_info(text.encode())

    assert info(f'<svg {SVG_NS} width="40" height="30"/>') == ("image/svg+xml", 40, 30)
    decl = '<?xml version="1.0"?>\n<!-- a comment -->\n'
    assert info(decl + f'<svg {SVG_NS} viewBox="0 0 200 100"></svg>') == (SVG, 200, 100)
    assert info(f'<svg {SVG_NS} width="2in" height="72pt"/>') == (SVG, 192, 96)
    assert info(f'<svg {SVG_NS} width="100" viewBox="0,0,200,100"/>') == (SVG, 100, 50)
    assert info(f"<svg {SVG_NS}/>") == (SVG, 300, 150)  # no size: the browser default
    assert info("<svg/>") == (SVG, 300, 150)  # no namespace: browsers still draw it as <img>
    assert info(f'<svg {SVG_NS} width="50%" height="3em" viewBox="0 0 8 6"/>') == (SVG, 8, 6)
    refused = [
        '<html><svg width="1" height="1"/></html>',  # not the root
        f'<svg {SVG_NS} width="0" height="10"/>',
        '<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg width="&a;"/>',  # no DOCTYPE: no entities
        "<svg",  # never closed within the limit
        " " * 9000 + f"<svg {SVG_NS}/>",  # the root too far in
        "plain text",
    ]
    assert [info(text) for text in refused] == [None] * len(refused)
    assert image_info(b"<svg width='1' height='1'>\xff</svg>")  # the header is what is read


def test_an_svg_is_shown_as_text_and_served_as_its_bytes() -> None:
    d = Displays("s1", 1 << 20, 10, 4096 * 4096, text_line=True)
    svg = f'<svg {SVG_NS} width="40" height="30"><text>é</text></svg>'.encode()
    shown, line = d.take(DisplayRecord(SVG, "<svg>", len(svg), svg), room=1 << 20)
    assert shown is not None and line == "[figure 1: 40\u00d730]\r\n"
    assert shown.payload["data"][SVG] == svg.decode()  # Jupyter's form: the text
    assert d.image(1) == (SVG, svg)
    assert inline_image(shown.payload) == ""  # addon-image draws no SVG
    bad = b"<svg width='1' height='1'>\xff</svg>"
    refused, line = d.take(DisplayRecord(SVG, "", len(bad), bad), room=1 << 20)
    assert refused is None and line == "[figure 2 not shown: not a PNG, JPEG or SVG image]\r\n"
