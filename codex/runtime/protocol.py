"""The records the sandbox's supervisor and the server exchange on the terminal.

Both backends run the same supervisor (``codex.runtime.sandbox``). The server sends
the job (its length on a line, then JSON); the supervisor answers with records framed
as ``ESC ] 6973 ; <nonce> ; <body> BEL`` in the terminal's output: ``ready``, ``go``,
``sync:<n>`` (written by the server, see ``Execution.sync``) and last the result, a
JSON object. The nonce is fresh per execution and known only to the server and the
supervisor, so printed text cannot pass for a record. :class:`ResultScanner` takes
the records out of the byte stream.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from codex.runtime.sandbox import CHILD_SOURCE, SUPERVISOR_SOURCE

RESULT_OSC = b"\x1b]6973;"
RESULT_END = b"\x07"

NEW, READY, GO = 0, 1, 2  # where the supervisor's protocol is


def supervisor_command(python: str) -> list[str]:
    return [python, "-I", "-S", "-c", SUPERVISOR_SOURCE, CHILD_SOURCE]


def job_bytes(code: str, rows: int, cols: int) -> bytes:
    payload = json.dumps({"code": code, "rows": rows, "cols": cols}).encode()
    return b"%d\n" % len(payload) + payload


def new_nonce() -> str:
    return secrets.token_hex(16)


def sync_record(nonce: str, number: int) -> bytes:
    return RESULT_OSC + nonce.encode() + b";sync:%d" % number + RESULT_END


class ResultScanner:
    """Takes the supervisor's records (`ready`, `go`, the result) out of the stream.

    Work per chunk is one ``bytes.find``; only a chunk ending in a possible start of
    a record is held back, a few bytes at most.
    """

    def __init__(self, nonce: str) -> None:
        self._marker = RESULT_OSC + nonce.encode() + b";"
        self._held = b""
        self._record: bytearray | None = None
        self.state = NEW
        self.synced = 0  # the highest sync record seen
        self.result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def feed(self, data: bytes) -> bytes:
        """Bytes to pass on; advances ``state`` and sets ``result`` from records."""
        if (
            self._record is None
            and not self._held
            and self.result is None
            and data.find(self._marker) < 0
            and not self._partial_suffix(data)
        ):
            return data  # the common case: no record here, nothing copied
        out = bytearray()
        while data and self.result is None:
            if self._record is not None:
                data = self._feed_record(data)
                continue
            if self._held:
                data, self._held = self._held + data, b""
            at = data.find(self._marker)
            if at >= 0:
                out += data[:at]
                self._record = bytearray()
                data = data[at + len(self._marker) :]
                continue
            keep = self._partial_suffix(data)
            if keep:
                self._held = data[-keep:]
                data = data[:-keep]
            out += data
            break
        # Whatever orphans print after the result is not the program's.
        return bytes(out)

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def _feed_record(self, data: bytes) -> bytes:
        """Consume record bytes; returns what follows the record."""
        assert self._record is not None
        end = data.find(RESULT_END)
        if end < 0:
            self._record += data
            if len(self._record) > 65536:
                self._record = None  # not ours after all; drop it rather than buffer
            return b""
        self._record += data[:end]
        body, self._record = bytes(self._record), None
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
        return data[end + 1 :]

    def _partial_suffix(self, data: bytes) -> int:
        tail = data[-(len(self._marker) - 1) :]
        start = tail.rfind(b"\x1b")
        if start < 0:
            return 0
        candidate = tail[start:]
        return len(candidate) if self._marker.startswith(candidate) else 0
