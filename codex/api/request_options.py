"""The options of an execute request besides the program: `files`, `args`,
`interactive` and `limits`, each checked against the server's settings, each error
naming its field (a file's error names the file: ``files[2].name``)."""

from __future__ import annotations

from typing import Any

from codex.config import Settings
from codex.errors import InvalidField, LimitTooHigh, field_error, text_field
from codex.runtime.job import JobFile
from codex.sessions.names import PROGRAM_NAME, relative_name_problem
from codex.sessions.registry import Limits

ENCODINGS = ("utf-8", "base64")
MIN_MEMORY_MB = 16


def parse_files(value: object, s: Settings) -> tuple[JobFile, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error("files", "a list of {name, content, encoding}")
    if len(value) > s.max_files:
        raise InvalidField(f"At most {s.max_files} files may be given.", field="files")
    files: list[JobFile] = []
    total = 0
    for i, item in enumerate(value):
        where = f"files[{i}]"
        if not isinstance(item, dict):
            raise field_error(where, "an object {name, content, encoding}")
        file = _one_file(item, where, s)
        if any(f.name == file.name for f in files):
            raise InvalidField(f"The file {file.name!r} is given twice.", field=where + ".name")
        total += file.size
        if total > s.max_files_bytes:
            raise InvalidField(
                f"The files are larger than {s.max_files_bytes} bytes in all.", field="files"
            )
        files.append(file)
    _no_file_inside_a_file(files)
    return tuple(files)


def _one_file(item: dict[str, Any], where: str, s: Settings) -> JobFile:
    name = text_field(item.get("name"), where + ".name")
    problem = relative_name_problem(name)
    if name == PROGRAM_NAME:
        problem = "is the program's own name"
    if problem:
        raise InvalidField(f"The file name {name!r} {problem}.", field=where + ".name")
    content = text_field(item.get("content"), where + ".content")
    encoding = item.get("encoding")
    encoding = "utf-8" if encoding is None else text_field(encoding, where + ".encoding")
    if encoding not in ENCODINGS:
        raise InvalidField(
            f"The encoding of {name!r} must be utf-8 or base64.", field=where + ".encoding"
        )
    if encoding == "utf-8":
        file = JobFile.of(name, content.encode("utf-8"))
    else:
        checked = JobFile.from_base64(name, content)
        if checked is None:
            raise InvalidField(f"The content of {name!r} is not base64.", field=where + ".content")
        file = checked
    if file.size > s.max_file_bytes:
        raise InvalidField(
            f"The file {name!r} is larger than {s.max_file_bytes} bytes.", field=where + ".content"
        )
    return file


def _no_file_inside_a_file(files: list[JobFile]) -> None:
    names = {f.name for f in files}
    for i, f in enumerate(files):
        parts = f.name.split("/")
        for n in range(1, len(parts)):
            if "/".join(parts[:n]) in names:
                raise InvalidField(
                    f"The file {f.name!r} is inside {'/'.join(parts[:n])!r}, which is a file.",
                    field=f"files[{i}].name",
                )


def parse_args(value: object, s: Settings) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise field_error("args", "a list of strings")
    if len(value) > s.max_args:
        raise InvalidField(f"At most {s.max_args} arguments may be given.", field="args")
    args = tuple(text_field(a, f"args[{i}]") for i, a in enumerate(value))
    if any("\0" in a for a in args):
        raise InvalidField("An argument may not contain a NUL character.", field="args")
    if sum(len(a.encode("utf-8")) for a in args) > s.max_args_bytes:
        raise InvalidField(
            f"The arguments are longer than {s.max_args_bytes} bytes in all.", field="args"
        )
    return args


def parse_flag(value: object, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise field_error(name, "true or false")
    return value


def parse_limits(value: object, s: Settings) -> Limits:
    """{timeLimit, memoryLimitMb, outputLimitBytes}: each at most the server's."""
    if value is None:
        return Limits()
    if not isinstance(value, dict):
        raise field_error("limits", "an object {timeLimit, memoryLimitMb, outputLimitBytes}")
    unknown = set(value) - {"timeLimit", "memoryLimitMb", "outputLimitBytes"}
    if unknown:
        raise InvalidField(f"Unknown limit {sorted(unknown)[0]!r}.", field="limits")
    time_limit = _limit(value, "timeLimit", s.time_limit, 0.1, number=True)
    memory = _limit(value, "memoryLimitMb", s.memory_limit_mb, MIN_MEMORY_MB)
    output = _limit(value, "outputLimitBytes", s.output_limit_bytes, 1)
    return Limits(
        time_limit,
        int(memory) if memory is not None else None,
        int(output) if output is not None else None,
    )


def _limit(
    limits: dict[str, Any], name: str, cap: float, floor: float, *, number: bool = False
) -> float | None:
    value = limits.get(name)
    if value is None:
        return None
    kinds = (int, float) if number else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise field_error(f"limits.{name}", "a number" if number else "a whole number")
    if value < floor:
        raise InvalidField(f"limits.{name} must be at least {floor}.", field=f"limits.{name}")
    if value > cap:
        raise LimitTooHigh(
            f"limits.{name} may be at most {cap:g}, the server's limit.",
            field=f"limits.{name}",
            cap=cap,
        )
    return float(value)


def body_limit(s: Settings) -> int:
    """The largest execute request body the server reads: code, stdin, files (base64
    with JSON escapes), arguments, and room for the rest."""
    return (
        s.max_code_bytes
        + s.max_stdin_bytes
        + s.max_files_bytes * 4 // 3
        + 1024 * s.max_files
        + s.max_args_bytes * 2
        + 64 * 1024
    )
