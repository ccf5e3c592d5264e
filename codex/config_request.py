"""The settings of what one request may bring and take away: files, arguments, its own
limits and the files collected at the end. The base of codex.config.Settings (which
holds every other setting), declared here to keep each module small."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def setting(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class RequestSettings:
    max_files: int = setting(20, "Files one execute request may give the program (`files`).")
    max_file_bytes: int = setting(
        1024 * 1024, "Largest file an execute request may give, in bytes (decoded)."
    )
    max_files_bytes: int = setting(
        2 * 1024 * 1024,
        "Bytes of all files one execute request may give (decoded); must fit in the "
        "container's /tmp (tmpfs_size_mb).",
    )
    max_args: int = setting(64, "Most command-line arguments (`args`) of one execution.")
    max_args_bytes: int = setting(
        16 * 1024, "Bytes of all command-line arguments of one execution (UTF-8)."
    )
    files_out_max_count: int = setting(
        20,
        "Files collected from the working directory when a program ends (those it "
        "created or changed); 0 collects none. Files over a bound are listed as omitted.",
    )
    files_out_max_bytes: int = setting(
        1024 * 1024, "Largest file collected when a program ends, in bytes."
    )
    files_out_total_bytes: int = setting(
        2 * 1024 * 1024, "Bytes of all files collected from one execution."
    )
