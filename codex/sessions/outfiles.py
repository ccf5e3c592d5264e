"""The files a program left in its working directory, as the sandbox sent them:
checked (names, bounds), described with their SHA-256, kept for download until the
session expires. What was not collected is listed with the reason, never missing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from codex.runtime.job import Collect, FileRecord, FilesEnd
from codex.sessions.names import relative_name_problem

LISTED_OMITTED = 100  # omitted files named (as the sandbox's workdir.py); the rest counted


@dataclass(frozen=True)
class OutputFile:
    name: str
    size: int
    data: bytes
    omitted: str = ""

    def describe(self) -> dict[str, Any]:
        if self.omitted:
            return {"name": self.name, "size": self.size, "omitted": self.omitted}
        sha = hashlib.sha256(self.data).hexdigest()  # the server's own, of the bytes
        return {"name": self.name, "size": self.size, "sha256": sha}


class OutputFiles:
    def __init__(self, bounds: Collect) -> None:
        self.bounds = bounds
        self.files: dict[str, OutputFile] = {}
        self.unlisted = 0  # omitted files the sandbox only counted
        self._total = 0
        self._sent_omitted = 0  # files the sandbox listed as omitted
        self._taken = 0  # files collected (not omitted) so far
        self._omitted = 0  # omitted files listed so far
        self._listing: list[dict[str, Any]] | None = None

    def take(self, record: FileRecord | FilesEnd) -> None:
        """One record from the sandbox, held to the bounds the job gave it."""
        self._listing = None
        if isinstance(record, FilesEnd):
            self.unlisted += max(0, record.omitted - self._sent_omitted)
            return
        self._sent_omitted += bool(record.omitted)
        if relative_name_problem(record.name) or record.name in self.files:
            self.unlisted += 1  # not a name the sandbox would send: not ours to list
            return
        why = record.omitted
        if not why and len(record.data) > self.bounds.file_bytes:
            why = f"larger than {self.bounds.file_bytes} bytes"
        elif not why and self._taken >= self.bounds.count:
            why = f"more than {self.bounds.count} files"
        elif not why and self._total + len(record.data) > self.bounds.total_bytes:
            why = f"over the total of {self.bounds.total_bytes} bytes"
        if why:
            # The sandbox names at most LISTED_OMITTED; so does this list, whatever comes.
            if self._omitted >= LISTED_OMITTED:
                self.unlisted += 1
                return
            self._omitted += 1
            self.files[record.name] = OutputFile(record.name, record.size, b"", why)
            return
        self._taken += 1
        self._total += len(record.data)
        self.files[record.name] = OutputFile(record.name, len(record.data), record.data)

    def listing(self) -> list[dict[str, Any]]:
        if self._listing is None:
            self._listing = [f.describe() for f in sorted(self.files.values(), key=_name)]
        return self._listing

    def get(self, name: str) -> bytes | None:
        """The bytes of a collected file (None: no such file, or it was omitted)."""
        found = self.files.get(name)
        return found.data if found is not None and not found.omitted else None

    @property
    def retained_bytes(self) -> int:
        return self._total

    def release(self) -> None:
        self.files.clear()
        self._listing = None
        self._total = self._taken = self._omitted = 0


def _name(f: OutputFile) -> str:
    return f.name
