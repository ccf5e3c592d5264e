"""The records the sandbox's supervisor and the server exchange on the terminal.

Both backends run the same supervisor (``codex.runtime.sandbox``). The server sends
the job (its length on a line, then JSON); the supervisor answers with records framed
as ``ESC ] 6973 ; <nonce> ; <body> BEL`` in the terminal's output: ``ready``, ``go``,
``sync:<n>`` (written by the server, see ``Execution.sync``), while the program runs
``display:<header length>:<header JSON><base64 image>`` (the child's display
channel, see ``sandbox/codex_display.py``), and last the result, a JSON object. The
nonce is fresh per execution and known only to the server and the supervisor, so
printed text cannot pass for a record.

Stream switches, ``ESC ] 6973 ; <stream token> ; stderr:on BEL`` and ``stderr:off``,
are written by the child itself around each write to ``sys.stderr``, in the same
write as the text (no round trip: a traceback costs what it did). Their token is
derived from the nonce (:func:`stream_token`) and known to the program, which may
forge a switch: that only marks its own text as stderr, as writing to stderr would.
:class:`ResultScanner` takes the records out of the byte stream.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from codex.runtime.job import (
    FILE,
    FILES_END,
    FileRecord,
    FilesEnd,
    JobOptions,
    file_record_bound,
    parse_file,
    parse_files_end,
    parse_framed,
)
from codex.runtime.sandbox import (
    CHILD_SOURCE,
    DISPLAY_SOURCE,
    SUPERVISOR_SOURCE,
    WORKDIR_SOURCE,
)

RESULT_OSC = b"\x1b]6973;"
RESULT_END = b"\x07"

NEW, READY, GO = 0, 1, 2  # where the supervisor's protocol is
RECORD_MAX = 65536  # a record longer than this that is not an image is not ours
DISPLAY = b"display:"


@dataclass(frozen=True)
class DisplayRecord:
    """An image the program displayed, at its place in the stream (not checked yet:
    the session's display policy does that)."""

    mime: str
    text: str
    size: int  # the image's bytes, as the supervisor counted them
    data: bytes  # the image; b"" when it was over the job's bound or undecodable


@dataclass(frozen=True)
class StreamSwitch:
    """What follows is the program's stderr (or, with False, its stdout again)."""

    stderr: bool


Item = bytes | DisplayRecord | StreamSwitch | FileRecord | FilesEnd


def display_record_bound(max_image: int) -> int:
    """The longest display record an image within max_image makes (base64 + header)."""
    return (max_image + 4096) * 4 // 3 + 8192


def parse_display(body: bytes) -> DisplayRecord | None:
    """A `display:` record's body (after the prefix), or None if it is malformed."""
    framed = parse_framed(body)
    if framed is None or not isinstance(framed[0].get("bytes"), int):
        return None
    header, data = framed
    mime, text = header.get("mime"), header.get("text")
    return DisplayRecord(
        mime if isinstance(mime, str) else "",
        text if isinstance(text, str) else "",
        header["bytes"],
        data,
    )


def supervisor_command(python: str) -> list[str]:
    sources = (SUPERVISOR_SOURCE, CHILD_SOURCE, DISPLAY_SOURCE, WORKDIR_SOURCE)
    return [python, "-I", "-S", "-c", *sources]


def job_bytes(
    code: str, rows: int, cols: int, max_image: int = 0, options: JobOptions | None = None
) -> bytes:
    """The job; `maxImage` bounds what the supervisor passes on of one image."""
    options = options or JobOptions()
    job: dict[str, Any] = {"code": code, "rows": rows, "cols": cols, "maxImage": max_image}
    job.update(options.to_json())
    del job["files"]
    # The files' base64 (JobFile: checked, no character to escape) is spliced in, not
    # run through the encoder: 17 ms of the event loop for 2 MiB of files.
    listed = ",".join(f'[{json.dumps(f.name)}, "{f.b64}"]' for f in options.files)
    payload = f'{json.dumps(job)[:-1]}, "files": [{listed}]}}'.encode()
    return b"%d\n" % len(payload) + payload


def new_nonce() -> str:
    return secrets.token_hex(16)


def stream_token(nonce: str) -> str:
    """The token of the stream switches (the supervisor computes the same): known to
    the child, and no way back from it to the nonce."""
    return hashlib.sha256(b"codex-stream:" + nonce.encode()).hexdigest()[:32]


def sync_record(nonce: str, number: int) -> bytes:
    return RESULT_OSC + nonce.encode() + b";sync:%d" % number + RESULT_END


class ResultScanner:
    """Takes the supervisor's records out of the stream: `ready`, `go`, `sync:<n>` and
    the result change its state; images and stream switches come out of
    ``feed_items`` in their place among the bytes.

    Work per chunk is one ``bytes.find``; only a chunk ending in a possible start of
    a record is held back, a few bytes at most.
    """

    def __init__(self, nonce: str) -> None:
        self._marker = RESULT_OSC + nonce.encode() + b";"
        self._switch = RESULT_OSC + stream_token(nonce).encode() + b";"
        self._held = b""
        self._record: bytearray | None = None
        self._is_switch = False  # the record being read came with the stream token
        self.state = NEW
        self.synced = 0  # the highest sync record seen
        self.result: dict[str, Any] | None = None
        self.display_max = display_record_bound(0)  # the job's image bound sets it
        self.file_max = file_record_bound(0)  # and its bound of a collected file
        self._items: list[Item] = []

    @property
    def done(self) -> bool:
        return self.result is not None

    def feed(self, data: bytes) -> bytes:
        """Bytes to pass on (images and switches left out: before `go` there are none)."""
        return b"".join(x for x in self.feed_items(data) if isinstance(x, bytes))

    def feed_items(self, data: bytes) -> list[Item]:
        """What to pass on, in order; advances ``state`` and sets ``result`` from records."""
        if (
            self._record is None
            and not self._held
            and self.result is None
            and data.find(RESULT_OSC) < 0
            and not self._partial_suffix(data)
        ):
            return [data]  # the common case: no record here, nothing copied
        out = bytearray()
        items = self._items = []
        while data and self.result is None:
            if self._record is not None:
                data = self._feed_record(data, out)
                continue
            if self._held:
                data, self._held = self._held + data, b""
            at, marker = self._next_marker(data)
            if at >= 0:
                out += data[:at]
                self._record = bytearray()
                self._is_switch = marker is self._switch
                data = data[at + len(marker) :]
                continue
            keep = self._partial_suffix(data)
            if keep:
                self._held = data[-keep:]
                data = data[:-keep]
            out += data
            break
        # Whatever orphans print after the result is not the program's.
        if out:
            items.append(bytes(out))
        return items

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def _next_marker(self, data: bytes) -> tuple[int, bytes]:
        """Where the first record of either kind starts in ``data`` (-1: none)."""
        at = data.find(RESULT_OSC)
        while at >= 0:
            for marker in (self._marker, self._switch):
                if data.startswith(marker, at):
                    return at, marker
            at = data.find(RESULT_OSC, at + 1)
        return -1, self._marker

    def _feed_record(self, data: bytes, out: bytearray) -> bytes:
        """Consume record bytes; returns what follows the record. An image or a switch
        goes to the items after the bytes before it (``out``, emptied)."""
        assert self._record is not None
        end = data.find(RESULT_END)
        if end < 0:
            self._record += data
            limit = RECORD_MAX
            if self._record.startswith(DISPLAY):
                limit = self.display_max
            elif self._record.startswith(FILE):
                limit = self.file_max
            if len(self._record) > limit:
                self._record = None  # not ours after all; drop it rather than buffer
            return b""
        self._record += data[:end]
        body, self._record = bytes(self._record), None
        item = self._item(body)
        if item is not None:
            if out:
                self._items.append(bytes(out))
                out.clear()
            self._items.append(item)
        elif not self._is_switch:
            self._state_record(body)
        return data[end + 1 :]

    def _item(self, body: bytes) -> Item | None:
        if self._is_switch:
            if body == b"stderr:on" or body == b"stderr:off":
                return StreamSwitch(body == b"stderr:on")
            return None  # nothing else comes with this token; dropped, like a bad record
        if body.startswith(DISPLAY):
            parsed = parse_display(body[len(DISPLAY) :])
            return parsed or DisplayRecord("", "", 0, b"")  # shown as refused, never dropped
        if body.startswith(FILE):
            return parse_file(body[len(FILE) :])
        if body.startswith(FILES_END):
            return parse_files_end(body[len(FILES_END) :])
        return None

    def _state_record(self, body: bytes) -> None:
        if body == b"ready":
            self.state = max(self.state, READY)
        elif body == b"go":
            self.state = max(self.state, GO)
        elif body.startswith(b"sync:") and body[5:].isdigit():
            self.synced = max(self.synced, int(body[5:]))
        else:
            try:
                parsed = json.loads(body.decode("utf-8", "replace"))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                self.result = parsed

    def _partial_suffix(self, data: bytes) -> int:
        tail = data[-(len(self._marker) - 1) :]
        start = tail.rfind(b"\x1b")
        if start < 0:
            return 0
        candidate = tail[start:]
        if self._marker.startswith(candidate) or self._switch.startswith(candidate):
            return len(candidate)
        return 0
