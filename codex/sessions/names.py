"""File names a client or a sandbox may use for the program's working directory:
relative paths of plain parts. One rule for files in (a request's `files`) and
files out (what the sandbox sends back)."""

from __future__ import annotations

MAX_NAME_CHARS = 255  # a whole relative path
PROGRAM_NAME = "main.py"  # the program itself: never a file beside it


def relative_name_problem(name: str) -> str:
    """Why ``name`` is not a usable relative path, or "" if it is."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    if name.startswith("/") or "\\" in name:
        return "is not a relative path with / between its parts"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' part"
    return ""
