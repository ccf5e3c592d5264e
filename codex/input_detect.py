"""Is the program waiting for its terminal? Asked of the kernel, not guessed from text.

The proc detector walks the execution's process tree from the supervisor's host PID
(every task of every process, children through ``/proc/<pid>/task/<tid>/children``) and
reads each task's current system call from ``/proc/<pid>/task/<tid>/syscall``. A task
waits for input when it sits in

- ``read``/``readv``/``pread64`` on a descriptor that is the session's terminal
  (``/dev/tty`` included, which is how ``getpass`` reads), or
- ``select``/``pselect6``/``poll``/``ppoll``/``epoll_wait``/``epoll_pwait(2)`` with no
  timeout, watching the terminal for reading (the descriptor sets are read from
  ``/proc/<pid>/mem``, an epoll set's members from ``/proc/<pid>/fdinfo``).

A read with data already waiting never blocks, so type-ahead never looks like a prompt,
and a program sleeping after printing ``Enter:`` is in ``clock_nanosleep``, not ``read``.

This needs the server to see the sandbox's processes (the engine's PID namespace, and
root or CAP_SYS_PTRACE). Where it cannot, the session falls back to the heuristic in
:func:`heuristic_waiting`; docs/terminal.md states the precision of both.
"""

from __future__ import annotations

import asyncio
import os
import platform
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from codex.runtime.base import open_terminal

READ, SELECT, PSELECT, POLL, PPOLL, EPOLL, EPOLL2 = range(7)

# System call numbers per architecture, with how their arguments name descriptors.
_CALLS = {
    "x86_64": {
        0: READ, 17: READ, 19: READ,
        23: SELECT, 270: PSELECT, 7: POLL, 271: PPOLL,
        232: EPOLL, 281: EPOLL, 441: EPOLL2,
    },
    "aarch64": {
        63: READ, 65: READ, 67: READ,
        72: PSELECT, 73: PPOLL, 22: EPOLL, 441: EPOLL2,
    },
}.get(platform.machine(), {})  # fmt: skip

MAX_TASKS = 512  # a fork bomb must not turn one poll into an unbounded walk
MAX_FDS = 1024  # descriptors inspected per select/poll call
POLLIN_MASK = 0x1 | 0x2  # POLLIN | POLLPRI
EPOLLIN_MASK = 0x1 | 0x2


@dataclass(frozen=True)
class Block:
    """One blocking wait: which task, in which call, and which of its sleeps.

    ``switches`` (voluntary context switches) tells two waits of one task apart: a
    new read after an answer is a new sleep, hence a new event.
    """

    pid: int
    tid: int
    call: int
    switches: int


def proc_detector_available() -> bool:
    if not _CALLS:
        return False
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/syscall") as f:
            f.read()
        return os.path.exists(f"/proc/{me}/task/{me}/children")
    except OSError:
        return False


def _read(path: str) -> str | None:
    # os.open/os.read: a fifth of the cost of open() for these tiny kernel files,
    # which matters when hundreds of sessions are checked many times a second.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


class ProcDetector:
    name = "proc"

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.terminal = _terminal_of(root_pid)

    @property
    def usable(self) -> bool:
        """The supervisor's terminal is known and its child's files can be read (the
        program runs as another uid: reading them needs root's DAC override or
        CAP_DAC_READ_SEARCH as well as ptrace access)."""
        if self.terminal is None:
            return False
        children = (_read(f"/proc/{self.root_pid}/task/{self.root_pid}/children") or "").split()
        if not children:
            return True  # nothing to probe yet; the supervisor's own files were readable
        try:
            fd = os.open(f"/proc/{children[0]}/task/{children[0]}/syscall", os.O_RDONLY)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        os.close(fd)
        return True

    def poll(self) -> Block | None:
        """The first task found waiting on the session's terminal, if any."""
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
        if not text or not text[0].isdigit():
            return None  # "running", or a kernel thread
        parts = text.split()
        kind = _CALLS.get(int(parts[0]))
        if kind is None:
            return None
        args = [int(a, 16) for a in parts[1:7]]
        if kind == READ:
            waiting = self._is_terminal(pid, args[0])
        elif kind in (SELECT, PSELECT):
            waiting = args[4] == 0 and self._select_watches(pid, args[0], args[1])
        elif kind in (POLL, PPOLL):
            no_timeout = args[2] == 0 if kind == PPOLL else _int32(args[2]) < 0
            waiting = no_timeout and self._poll_watches(pid, args[0], args[1])
        else:
            no_timeout = args[3] == 0 if kind == EPOLL2 else _int32(args[3]) < 0
            waiting = no_timeout and self._epoll_watches(pid, args[0])
        if not waiting:
            return None
        return Block(pid, tid, int(parts[0]), _switches(base))

    def still(self, block: Block) -> bool:
        """Is this task still in the same wait (same call, no sleep since)?"""
        base = f"/proc/{block.pid}/task/{block.tid}"
        text = _read(base + "/syscall")
        if not text or not text[0].isdigit() or int(text.split()[0]) != block.call:
            return False
        return _switches(base) == block.switches

    def _is_terminal(self, pid: int, fd: int) -> bool:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return False
        return target == self.terminal or target == "/dev/tty"

    def _select_watches(self, pid: int, nfds: int, readfds: int) -> bool:
        if readfds == 0 or not 0 < nfds <= MAX_FDS:
            return False
        raw = _peek(pid, readfds, (nfds + 7) // 8)
        if raw is None:
            return False
        return any(
            raw[fd // 8] >> (fd % 8) & 1 and self._is_terminal(pid, fd) for fd in range(nfds)
        )

    def _poll_watches(self, pid: int, fds: int, nfds: int) -> bool:
        if fds == 0 or not 0 < nfds <= MAX_FDS:
            return False
        raw = _peek(pid, fds, 8 * nfds)
        if raw is None:
            return False
        for fd, events, _ in struct.iter_unpack("ihh", raw):
            if fd >= 0 and events & POLLIN_MASK and self._is_terminal(pid, fd):
                return True
        return False

    def _epoll_watches(self, pid: int, epfd: int) -> bool:
        info = _read(f"/proc/{pid}/fdinfo/{epfd}") or ""
        for line in info.splitlines():
            if not line.startswith("tfd:"):
                continue
            fields = line.split()
            try:
                fd = int(fields[1])
                events = int(fields[3], 16)
            except (IndexError, ValueError):
                continue
            if events & EPOLLIN_MASK and self._is_terminal(pid, fd):
                return True
        return False

    def echo_on(self) -> bool | None:
        """The terminal's ECHO flag (off while getpass reads), or None if unknown."""
        fd = open_terminal(self.root_pid, os.O_RDONLY)
        if fd is None:
            return None
        try:
            return bool(termios.tcgetattr(fd)[3] & termios.ECHO)
        except OSError:
            return None
        finally:
            os.close(fd)


def _int32(value: int) -> int:
    """A C int argument as the kernel sees it (registers may carry garbage above)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _peek(pid: int, address: int, size: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            data = mem.read(size)
    except (OSError, OverflowError, ValueError):
        return None
    return data if len(data) == size else None


def _terminal_of(pid: int) -> str | None:
    try:
        target = os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return None
    return target if target.startswith("/dev/pts/") else None


def _switches(base: str) -> int:
    """How many times the task has been scheduled: a new wait is a new count.
    schedstat's third field is cheap to read; status is the fallback."""
    stat = _read(base + "/schedstat")
    if stat:
        return int(stat.split()[2])
    status = _read(base + "/status") or ""
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


HEURISTIC_QUIET_SECONDS = 0.3


def heuristic_waiting(prompt: str, quiet_for: float) -> bool:
    """The fallback when the processes cannot be seen: output went quiet for a while
    on a line that does not end in a newline. It misses prompts that end in a newline
    (``input()`` after ``print("Name:")``) and fires for a program that prints a partial
    line and then computes or sleeps."""
    return quiet_for >= HEURISTIC_QUIET_SECONDS and prompt.strip() != ""


class WaitSink(Protocol):
    """What the watcher needs from a session."""

    @property
    def announced(self) -> bool:
        """An `input_required` is out and not yet answered."""

    @property
    def last_output(self) -> float:
        """When output last arrived (monotonic seconds)."""

    @property
    def output_bytes(self) -> int: ...

    def prompt(self) -> str: ...

    def announce(self, password: bool) -> None: ...

    async def sync(self) -> bool:
        """Wait until the program's output so far is in the session's log."""

    def withdraw(self) -> None: ...


FAST = 0.01  # check this soon after output or input: a prompt is likely near
SETTLE = 0.003  # output must have been quiet this long before the event
WAITING_RECHECK = 0.5  # while announced: has the wait ended by other means?
# A program quiet (no output, no input) this long is probably asleep or computing:
# checks slow down to IDLE_MAX_INTERVAL, so a sleeping session costs next to nothing.
# The price: a read with no prompt after a long quiet spell is seen within 250 ms.
IDLE_AFTER = 1.0
IDLE_MAX_INTERVAL = 0.25


class InputWatcher:
    """Decides when a session is waiting for input, at little cost.

    Checks come FAST after activity (output, input) and back off to ``max_interval``
    while nothing happens (to IDLE_MAX_INTERVAL after IDLE_AFTER of quiet); once a
    wait is announced, only that task is looked at, a few times a second. So a program
    waiting for an answer, or asleep, costs next to nothing, and a prompt is announced
    within about FAST + SETTLE of its read.
    """

    def __init__(
        self, sink: WaitSink, root_pid: Callable[[], int | None], max_interval: float
    ) -> None:
        self.sink = sink
        self.root_pid = root_pid
        self.max_interval = max(max_interval, FAST)
        self.name = "none"
        self._fired: Block | None = None
        self._last_activity = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._wake: asyncio.Future[None] | None = None

    def nudge(self) -> None:
        """Something happened: check within FAST from now (cheap; called per chunk)."""
        self._last_activity = time.monotonic()
        if self._wake is None or self._deadline - time.monotonic() <= FAST:
            return
        self._schedule(FAST)

    async def run(self) -> None:
        detector = await self._find_detector()
        if detector is None:
            self.name = "heuristic"
            await self._run_heuristic()
            return
        self.name = detector.name
        delay = FAST
        while True:
            await self._sleep(delay)
            if self.sink.announced and self._fired is not None:
                if detector.still(self._fired):
                    delay = WAITING_RECHECK
                    continue
                self.sink.withdraw()  # the read ended without us (a signal, a timeout)
                delay = FAST
                continue
            block = detector.poll()
            if block is None or block == self._fired:
                # Nothing, or the wait just answered and the answer still in flight.
                quiet = time.monotonic() - self._last_activity
                cap = self.max_interval if quiet < IDLE_AFTER else IDLE_MAX_INTERVAL
                delay = min(delay * 2, max(cap, self.max_interval))
                continue
            password = await self._settle(detector, block)
            if password is None:
                delay = FAST
                continue
            self._fired = block
            self.sink.announce(password)
            delay = WAITING_RECHECK

    async def _settle(self, detector: ProcDetector, block: Block) -> bool | None:
        """Once the program's output so far has arrived, the echo flag (password:
        echo off), or None if the program moved on meanwhile."""
        if not await self.sink.sync():
            # No sync through the terminal (it is stopped, or gone): fall back to a
            # quiet spell, which is right unless the engine's relay is very slow.
            await asyncio.sleep(SETTLE)
            if time.monotonic() - self.sink.last_output < SETTLE:
                return None
        if detector.poll() != block:
            return None
        return detector.echo_on() is False

    async def _find_detector(self) -> ProcDetector | None:
        for _ in range(400):  # the host PID is known within ms of the start
            pid = self.root_pid()
            if pid is not None:
                detector = ProcDetector(pid)
                return detector if detector.usable else None
            await asyncio.sleep(0.005)
        return None

    async def _run_heuristic(self) -> None:
        fired_at = -1
        while True:
            await self._sleep(0.1)
            if self.sink.announced or fired_at == self.sink.output_bytes:
                continue
            quiet = time.monotonic() - self.sink.last_output
            if quiet >= HEURISTIC_QUIET_SECONDS and heuristic_waiting(self.sink.prompt(), quiet):
                fired_at = self.sink.output_bytes
                self.sink.announce(False)

    async def _sleep(self, delay: float) -> None:
        self._wake = asyncio.get_running_loop().create_future()
        self._schedule(delay)
        try:
            await self._wake
        finally:
            self._wake = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = time.monotonic() + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self._ring)

    def _ring(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
