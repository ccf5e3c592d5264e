"""How a run ended, in the words a learner reads: the status and its message.

The supervisor's record says whether the program ran to its own end (and how); the
engine says whether it was OOM-killed; the session says whether it stopped the
program itself (time, output, a cancel). This module weighs those, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

from codex.config import Settings
from codex.runtime.base import ExitInfo
from codex.wire import INTERNAL_ERROR, MEMORY_LIMIT, OK, OUTPUT_LIMIT, RUNTIME_ERROR, TIMEOUT


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str | None = None
    line: int | None = None  # where a runtime error was raised, if known


def judge(info: ExitInfo, stopped_for: str | None, abandoned: bool, s: Settings) -> Verdict:
    """``stopped_for``: the status the session killed the program for, if it did."""
    status = _status(info, stopped_for)
    if status == RUNTIME_ERROR:
        return _runtime_error(info)
    return Verdict(status, _message(status, info, abandoned, s))


def _status(info: ExitInfo, stopped_for: str | None) -> str:
    if stopped_for == OUTPUT_LIMIT:
        return OUTPUT_LIMIT  # the output was cut: even a program that ended itself failed
    natural = info.reported and not (stopped_for and info.signal == "SIGKILL")
    if natural and info.signal == "SIGKILL" and info.oom_killed:
        return MEMORY_LIMIT
    if natural:
        return OK if info.exit_code == 0 and not info.error else RUNTIME_ERROR
    if stopped_for is not None:
        return stopped_for
    return MEMORY_LIMIT if info.oom_killed else INTERNAL_ERROR


def _runtime_error(info: ExitInfo) -> Verdict:
    if info.error:
        kind = str(info.error.get("type", "Error"))
        text = str(info.error.get("message", ""))
        raw_line = info.error.get("line")
        line = raw_line if isinstance(raw_line, int) else None
        return Verdict(RUNTIME_ERROR, f"{kind}: {text}" if text else kind, line)
    if info.signal:
        return Verdict(RUNTIME_ERROR, f"The program was killed by {info.signal}.")
    return Verdict(RUNTIME_ERROR, f"The program exited with code {info.exit_code}.")


def _message(status: str, info: ExitInfo, abandoned: bool, s: Settings) -> str | None:
    if status == TIMEOUT and abandoned:
        return f"No input came for {s.input_wait_limit:g} s: the program was stopped."
    if status == TIMEOUT:
        return f"Time limit exceeded: the program ran for {s.time_limit:g} s."
    if status == MEMORY_LIMIT:
        return f"Memory limit exceeded: {s.memory_limit_mb} MiB."
    if status == OUTPUT_LIMIT:
        return f"Output limit exceeded: {s.output_limit_bytes} bytes."
    if status == INTERNAL_ERROR:
        return info.detail or "The sandbox failed."
    return None
