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

A poll's work is bounded whatever the program does (MAX_TASKS, MAX_FD_CHECKS): a wait
with a timeout is dismissed from its arguments alone; a process's descriptors are listed
and resolved once per poll, for all its threads; a select/poll wait already judged is
not judged again while its task sleeps in it. 60 threads in ``select()`` on every
descriptor cost ~2.5 ms a poll instead of ~430 ms (bench/hostile.py, tests/unit).

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

# What one poll may do, whatever the program does (docs/architecture.md: the server is
# shared; one session's poll is every session's stall). A session has at most
# pids_limit (64) tasks; the caps hold for any setting.
MAX_TASKS = 128  # tasks looked at per poll (a fork bomb is not an unbounded walk)
MAX_FDS = 1024  # select's FD_SETSIZE; a poll() array longer than this is not read
MAX_FD_CHECKS = 512  # descriptors resolved (one readlink each) per poll, all tasks together
MAX_FD_LISTED = 4096  # entries of /proc/<pid>/fd read per process per poll
MAX_EPOLL_INFO = 64 * 1024  # bytes of an epoll descriptor's fdinfo read (~900 members)
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


def _read(path: str, limit: int = 4096) -> str | None:
    # os.open/os.read: a fifth of the cost of open() for these tiny kernel files,
    # which matters when hundreds of sessions are checked many times a second.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, min(limit, 4096))
        # Most of these files are one line: one read. Longer ones (an epoll set's
        # fdinfo) come a page at a time, up to `limit`.
        while limit > 4096 and data and len(data) < limit:
            more = os.read(fd, min(65536, limit - len(data)))
            if not more:
                break
            data += more
        return data.decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


class ProcDetector:
    name = "proc"

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.terminal = _terminal_of(root_pid)
        # A select/poll wait's verdict, kept while the task sleeps in that same wait
        # (same call and arguments, same schedule count): a thread parked on other
        # descriptors costs two small reads per poll, not a check of each descriptor.
        # Undecided (out of budget): None, and the descriptor the next poll resumes at.
        self._verdicts: dict[tuple[int, int], tuple[str, int, bool | None, int]] = {}
        self._resume_at = 0
        self._stopped_at = 0
        # Per poll: which descriptors of a process are open, which are the terminal
        # (threads share their process's table: each is resolved once per poll), and
        # how many readlinks are left.
        self._open: dict[int, tuple[frozenset[int], bool]] = {}
        self._memo: dict[tuple[int, int], bool] = {}
        self._budget = MAX_FD_CHECKS
        self.ops = 0  # /proc reads and readlinks of the last poll (its cost)
        self.fd_checks = 0  # readlinks of the last poll
        self.tasks = 0  # tasks looked at by the last poll

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
        """The first task found waiting on the session's terminal, if any.

        Bounded whatever the program does: at most MAX_TASKS tasks, MAX_FD_CHECKS
        readlinks, one listing of /proc/<pid>/fd per process. A select or poll wait
        found before is not inspected again while its task sleeps in it. A wait left
        undecided because the budget ran out is decided by a later poll (the decided
        ones are then remembered and cost nothing)."""
        self._open = {}
        self._memo = {}
        self._budget = MAX_FD_CHECKS
        self.ops = 0
        seen: set[tuple[int, int]] = set()
        pending = [self.root_pid]
        complete = True
        try:
            while pending:
                pid = pending.pop()
                self.ops += 1
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid_text in tids:
                    if len(seen) >= MAX_TASKS:
                        complete = False
                        return None
                    tid = int(tid_text)
                    seen.add((pid, tid))
                    base = f"/proc/{pid}/task/{tid_text}"
                    block = self._blocked(pid, tid, base)
                    if block is not None:
                        complete = False  # the rest was not looked at
                        return block
                    self.ops += 1
                    children = _read(base + "/children")
                    if children:
                        pending.extend(int(c) for c in children.split())
            return None
        finally:
            self.tasks = len(seen)
            self.fd_checks = MAX_FD_CHECKS - self._budget
            if complete:  # tasks not seen have ended: forget their waits
                for key in [k for k in self._verdicts if k not in seen]:
                    del self._verdicts[key]
            self._open = {}
            self._memo = {}

    def _blocked(self, pid: int, tid: int, base: str) -> Block | None:
        self.ops += 1
        text = _read(base + "/syscall")
        if not text or not text[0].isdigit():
            return None  # "running", or a kernel thread
        parts = text.split()
        kind = _CALLS.get(int(parts[0]))
        if kind is None:
            return None
        args = [int(a, 16) for a in parts[1:7]]
        switches: int | None = None
        waiting: bool | None
        if kind == READ:
            waiting = self._is_terminal(pid, args[0])
        elif kind == EPOLL:
            # Not remembered: another thread may add the terminal to the set while
            # this one sleeps (epoll_ctl does not wake it).
            waiting = _int32(args[3]) < 0 and self._epoll_watches(pid, args[0])
        elif kind == EPOLL2:
            waiting = args[3] == 0 and self._epoll_watches(pid, args[0])
        else:
            if kind in (SELECT, PSELECT):
                no_timeout = args[4] == 0
            else:
                no_timeout = args[2] == 0 if kind == PPOLL else _int32(args[2]) < 0
            if not no_timeout:
                return None  # a wait with a timeout is not a prompt: costs nothing
            switches = self._switches(base)
            key = (pid, tid)
            known = self._verdicts.get(key)
            same = known is not None and known[0] == text and known[1] == switches
            if known is not None and same and known[2] is not None:
                waiting = known[2]
            else:
                # A wait left undecided by the last poll resumes where it stopped, so
                # one with more descriptors than a poll's budget is decided in a few.
                self._resume_at = known[3] if known is not None and same else 0
                if kind in (SELECT, PSELECT):
                    waiting = self._select_watches(pid, args[0], args[1])
                else:
                    waiting = self._poll_watches(pid, args[0], args[1])
                self._resume_at = 0
                self._verdicts[key] = (text, switches, waiting, self._stopped_at)
                if waiting is None:  # out of budget: undecided this time
                    return None
        if not waiting:
            return None
        if switches is None:
            switches = self._switches(base)
        return Block(pid, tid, int(parts[0]), switches)

    def _switches(self, base: str) -> int:
        self.ops += 1
        return _switches(base)

    def still(self, block: Block) -> bool:
        """Is this task still in the same wait (same call, no sleep since)?"""
        base = f"/proc/{block.pid}/task/{block.tid}"
        text = _read(base + "/syscall")
        if not text or not text[0].isdigit() or int(text.split()[0]) != block.call:
            return False
        return _switches(base) == block.switches

    def _is_terminal(self, pid: int, fd: int) -> bool | None:
        """Is this descriptor the session's terminal? None: out of budget."""
        key = (pid, fd)
        known = self._memo.get(key)
        if known is not None:
            return known
        if self._budget <= 0:
            return None
        self._budget -= 1
        self.ops += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            result = False
        else:
            result = target == self.terminal or target == "/dev/tty"
        self._memo[key] = result
        return result

    def _any_terminal(self, pid: int, fds: list[int]) -> bool | None:
        """Is one of these (ascending) the terminal? None: the budget ran out first;
        _stopped_at is then the descriptor to resume at."""
        for fd in fds:
            if fd < self._resume_at:
                continue
            verdict = self._is_terminal(pid, fd)
            if verdict is None:
                self._stopped_at = fd
                return None
            if verdict:
                return True
        return False

    def _open_fds(self, pid: int) -> tuple[frozenset[int], bool]:
        """The process's open descriptors (listed once per poll), and whether that is
        all of them: a set bit for a closed descriptor costs no readlink."""
        known = self._open.get(pid)
        if known is not None:
            return known
        self.ops += 1
        fds: set[int] = set()
        complete = True
        try:
            with os.scandir(f"/proc/{pid}/fd") as entries:
                for entry in entries:
                    if len(fds) >= MAX_FD_LISTED:
                        complete = False
                        break
                    fds.add(int(entry.name))
        except (OSError, ValueError):
            complete = False
        self._open[pid] = (frozenset(fds), complete)
        return self._open[pid]

    def _candidates(self, pid: int, fds: set[int]) -> list[int]:
        """The descriptors worth a readlink, lowest first (0-2 are the usual terminal)."""
        open_fds, complete = self._open_fds(pid)
        return sorted(fds & open_fds if complete else fds)

    def _select_watches(self, pid: int, nfds: int, readfds: int) -> bool | None:
        if readfds == 0 or not 0 < nfds <= MAX_FDS:
            return False
        self.ops += 1
        raw = _peek(pid, readfds, (nfds + 7) // 8)
        if raw is None:
            return False
        bits = int.from_bytes(raw, "little")  # fd_set: bit fd of little-endian longs
        if not bits:
            return False
        open_fds, complete = self._open_fds(pid)
        if complete:
            wanted = [fd for fd in sorted(open_fds) if fd < nfds and bits >> fd & 1]
        else:
            wanted = [fd for fd in range(nfds) if bits >> fd & 1]
        return self._any_terminal(pid, wanted)

    def _poll_watches(self, pid: int, fds: int, nfds: int) -> bool | None:
        if fds == 0 or not 0 < nfds <= MAX_FDS:
            return False
        self.ops += 1
        raw = _peek(pid, fds, 8 * nfds)
        if raw is None:
            return False
        wanted = {
            fd
            for fd, events, _ in struct.iter_unpack("ihh", raw)
            if fd >= 0 and events & POLLIN_MASK
        }
        return self._any_terminal(pid, self._candidates(pid, wanted))

    def _epoll_watches(self, pid: int, epfd: int) -> bool | None:
        self.ops += 1
        info = _read(f"/proc/{pid}/fdinfo/{epfd}", MAX_EPOLL_INFO) or ""
        wanted: set[int] = set()
        for line in info.splitlines():
            if not line.startswith("tfd:"):
                continue
            fields = line.split()
            try:
                fd = int(fields[1])
                events = int(fields[3], 16)
            except (IndexError, ValueError):
                continue
            if events & EPOLLIN_MASK:
                wanted.add(fd)
        return self._any_terminal(pid, self._candidates(pid, wanted))

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
# The detector's share of the server, measured in CPU time of the polls: after a poll
# that cost c seconds, the next waits at least c / share. One session's polls take at
# most SESSION_SHARE of a core, and all sessions' together about TOTAL_SHARE, split
# evenly: a cheap session (one task, ~50 us a poll) keeps its 10 ms reaction, a session
# of 60 threads parked in select() is looked at less often, and neither slows the rest.
SESSION_SHARE = 0.02
TOTAL_SHARE = 0.25


def _no_pid() -> int | None:
    return None


class _Gone:
    """The sink of a released watcher: nothing waits, nothing is announced."""

    announced = False
    last_output = 0.0
    output_bytes = 0

    def prompt(self) -> str:
        return ""

    def announce(self, password: bool) -> None:
        pass

    async def sync(self) -> bool:
        return False

    def withdraw(self) -> None:
        pass


_GONE = _Gone()


class InputWatcher:
    """Decides when a session is waiting for input, at little cost.

    Checks come FAST after activity (output, input) and back off to ``max_interval``
    while nothing happens (to IDLE_MAX_INTERVAL after IDLE_AFTER of quiet); once a
    wait is announced, only that task is looked at, a few times a second. So a program
    waiting for an answer, or asleep, costs next to nothing, and a prompt is announced
    within about FAST + SETTLE of its read. A poll's own CPU time spaces the next one
    (SESSION_SHARE, TOTAL_SHARE): output cannot make an expensive tree be walked
    every 10 ms, and sessions share the detector evenly.
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
        self._not_before = 0.0  # no poll before this (monotonic): the detector's share
        self.polls = 0
        self.poll_seconds = 0.0  # CPU time spent in polls

    # Watchers polling a process tree now, across the server: each gets an equal
    # part of TOTAL_SHARE.
    polling = 0

    def release(self) -> None:
        """The session is gone: drop the references back to it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.root_pid = _no_pid
        self.sink = _GONE

    def nudge(self) -> None:
        """Something happened: check within FAST from now (cheap; called per chunk)."""
        now = time.monotonic()
        self._last_activity = now
        soon = max(FAST, self._not_before - now)
        if self._wake is None or self._deadline - now <= soon:
            return
        self._schedule(soon)

    async def run(self) -> None:
        detector = await self._find_detector()
        if detector is None:
            self.name = "heuristic"
            await self._run_heuristic()
            return
        self.name = detector.name
        InputWatcher.polling += 1
        try:
            await self._watch(detector)
        finally:
            InputWatcher.polling -= 1

    async def _watch(self, detector: ProcDetector) -> None:
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
            block = self._poll(detector)
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
        if self._poll(detector) != block:
            return None
        return detector.echo_on() is False

    def _poll(self, detector: ProcDetector) -> Block | None:
        """detector.poll(), charged to this session: its CPU time sets how soon the
        next poll may come (SESSION_SHARE, TOTAL_SHARE)."""
        t0 = time.thread_time()
        block = detector.poll()
        cost = time.thread_time() - t0
        self.polls += 1
        self.poll_seconds += cost
        share = min(SESSION_SHARE, TOTAL_SHARE / max(1, InputWatcher.polling))
        self._not_before = time.monotonic() + cost / share
        return block

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
        delay = max(delay, self._not_before - time.monotonic())
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
