"""Is the program waiting for its terminal? Asked of the kernel, not guessed from text.

The proc detector walks the execution's process tree from the supervisor's host PID
(every task of every process, children through ``/proc/<pid>/task/<tid>/children``) and
reads each task's current system call from ``/proc/<pid>/task/<tid>/syscall``. A task
is waiting for input when it sits in ``read``/``readv``/``pread64`` on a descriptor
that is the session's terminal (``/dev/tty`` included, which is how ``getpass`` reads).
A read with data already waiting never blocks, so type-ahead never looks like a prompt,
and a program sleeping after printing ``Enter:`` is in ``clock_nanosleep``, not ``read``.

This needs the server to see the sandbox's processes (same PID namespace as the engine,
and root or CAP_SYS_PTRACE). Where it cannot, :class:`HeuristicDetector` guesses from
the output instead: see docs/api.md for its precision.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

# System call numbers that read a descriptor, per architecture.
_READ_CALLS = {
    "x86_64": {0: "read", 17: "pread64", 19: "readv"},
    "aarch64": {63: "read", 65: "readv", 67: "pread64"},
}.get(platform.machine(), {})

MAX_TASKS = 512  # a fork bomb must not turn one poll into an unbounded walk


@dataclass(frozen=True)
class Block:
    """One blocking read: which task, and which of its sleeps (context switches)."""

    pid: int
    tid: int
    fd: int
    switches: int


def proc_detector_available() -> bool:
    if not _READ_CALLS:
        return False
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/syscall") as f:
            f.read()
        return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    except OSError:
        return False


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class ProcDetector:
    name = "proc"

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.terminal = _terminal_of(root_pid)

    @property
    def usable(self) -> bool:
        return self.terminal is not None

    def poll(self) -> Block | None:
        """The first task found blocked reading the session's terminal, if any."""
        pending = [self.root_pid]
        seen = 0
        while pending and seen < MAX_TASKS:
            pid = pending.pop()
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid_text in tids:
                seen += 1
                base = f"/proc/{pid}/task/{tid_text}"
                block = self._blocked(pid, int(tid_text), base)
                if block is not None:
                    return block
                children = _read(base + "/children")
                if children:
                    pending.extend(int(c) for c in children.split())
        return None

    def _blocked(self, pid: int, tid: int, base: str) -> Block | None:
        text = _read(base + "/syscall")
        if not text:
            return None
        parts = text.split()
        if not parts or not parts[0].isdigit() or int(parts[0]) not in _READ_CALLS:
            return None
        fd = int(parts[1], 16)
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return None
        if target != self.terminal and target != "/dev/tty":
            return None
        return Block(pid, tid, fd, _switches(base))


def _terminal_of(pid: int) -> str | None:
    try:
        target = os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return None
    return target if target.startswith("/dev/pts/") or target == "/dev/tty" else None


def _switches(base: str) -> int:
    status = _read(base + "/status") or ""
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


class HeuristicDetector:
    """Fallback when the processes cannot be seen: the output went quiet on a line that
    does not end in a newline. It misses prompts that end in a newline and fires for a
    program that prints a partial line and then computes or sleeps."""

    name = "heuristic"
    quiet_seconds = 0.3
