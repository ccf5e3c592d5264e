"""What a job carries besides the program, and the files that come back.

The job goes to the supervisor through the terminal (codex.runtime.protocol): the
program, its terminal size, and these options: files written into the working
directory before the program starts, its arguments, whether a Python shell follows
it, and the bounds of the files collected when it ends. Each collected file comes back
as a record framed with the nonce, ``file:<header length>:<header JSON><base64>``,
and the list ends with ``files:{"collected": n, "omitted": m}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

FILE = b"file:"
FILES_END = b"files:"


# What strict base64 is made of, besides its final padding.
B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(frozen=True)
class JobFile:
    """A file for the program's working directory: a relative path, its bytes as
    base64 (what the job carries; the sandbox decodes it) and how many bytes that is.
    The text is strict base64, checked once: it needs no escaping in the job's JSON."""

    name: str
    b64: str
    size: int

    @classmethod
    def of(cls, name: str, data: bytes) -> JobFile:
        return cls(name, base64.b64encode(data).decode("ascii"), len(data))

    @classmethod
    def from_base64(cls, name: str, text: str) -> JobFile | None:
        """The file whose content is ``text``, or None if that is not strict base64
        (what ``b64decode(validate=True)`` accepts), told without decoding it: a
        request's megabytes are read once, as the client sent them."""
        if len(text) % 4 or not text.isascii():
            return None
        raw = text.encode("ascii")
        pad = len(raw) - len(raw.rstrip(b"="))
        if pad > 2 or raw.translate(None, B64_ALPHABET) != b"=" * pad:
            return None
        return cls(name, text, len(raw) // 4 * 3 - pad)


@dataclass(frozen=True)
class Collect:
    """Bounds of the files collected at the end (count 0: none are)."""

    count: int = 0
    file_bytes: int = 0
    total_bytes: int = 0


@dataclass(frozen=True)
class JobOptions:
    files: tuple[JobFile, ...] = ()
    args: tuple[str, ...] = ()
    interactive: bool = False  # a Python shell in the program's namespace after it
    memory_mb: int = 0  # the request's memory limit; 0: the server's
    collect: Collect = Collect()

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [[f.name, f.b64] for f in self.files],
            "args": list(self.args),
            "interactive": self.interactive,
            "collect": [self.collect.count, self.collect.file_bytes, self.collect.total_bytes],
        }


@dataclass(frozen=True)
class FileRecord:
    """A file the program left, as the supervisor sent it (not checked yet)."""

    name: str
    size: int
    data: bytes  # b"" when omitted
    omitted: str = ""  # why it was not collected, e.g. "larger than 1 MiB"


@dataclass(frozen=True)
class FilesEnd:
    """The end of the collected files: how many were collected and omitted in all."""

    collected: int
    omitted: int


def file_record_bound(file_bytes: int) -> int:
    """The longest file record a file within file_bytes makes (base64 + header)."""
    return (file_bytes + 3) * 4 // 3 + 8192


def parse_framed(body: bytes) -> tuple[dict[str, Any], bytes] | None:
    """``<header length>:<header JSON><base64>`` (a `display:` or `file:` record's body
    after its prefix) as (header, bytes), or None if it is malformed."""
    length, sep, rest = body.partition(b":")
    if not sep or not length.isdigit() or int(length) > len(rest):
        return None
    try:
        header = json.loads(rest[: int(length)].decode("ascii"))
        data = binascii.a2b_base64(rest[int(length) :], strict_mode=True)
    except (ValueError, binascii.Error):
        return None
    return (header, data) if isinstance(header, dict) else None


def parse_file(body: bytes) -> FileRecord | None:
    """A `file:` record's body (after the prefix), or None if it is malformed."""
    framed = parse_framed(body)
    if framed is None:
        return None
    header, data = framed
    name, size, omitted = header.get("name"), header.get("size"), header.get("omitted", "")
    if not isinstance(name, str) or not isinstance(size, int) or not isinstance(omitted, str):
        return None
    return FileRecord(name, size, data, omitted[:200])


def parse_files_end(body: bytes) -> FilesEnd | None:
    try:
        parsed = json.loads(body.decode("ascii"))
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    collected, omitted = parsed.get("collected"), parsed.get("omitted")
    if not isinstance(collected, int) or not isinstance(omitted, int):
        return None
    return FilesEnd(collected, omitted)
