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
descriptor cost ~2.5 ms a poll instead of ~430 ms (bench/hostile.py, tests/e2e/test_detector.py).

This needs the server to see the sandbox's processes (the engine's PID namespace, and
root or CAP_SYS_PTRACE). Where it cannot, the session falls back to the heuristic in
:func:`codex.sessions.input.watcher.heuristic_waiting`; docs/terminal.md states the
precision of both. When to look is :class:`codex.sessions.input.watcher.InputWatcher`'s
business; decoding the /proc files is :mod:`codex.sessions.input.procfs`'s.
"""

from __future__ import annotations

import os
import termios
from dataclasses import dataclass

from codex.runtime.terminal_io import open_terminal
from codex.sessions.input.procfs import (
    CALLS,
    EPOLL,
    EPOLL2,
    PSELECT,
    READ,
    SELECT,
    epoll_readers,
    fd_set_members,
    int32,
    open_descriptors,
    peek,
    poll_readers,
    read_text,
    schedule_count,
    terminal_of,
    waits_forever,
)

# What one poll may do, whatever the program does (docs/architecture.md: the server is
# shared; one session's poll is every session's stall). A session has at most
# pids_limit (64) tasks; the caps hold for any setting.
MAX_TASKS = 128  # tasks looked at per poll (a fork bomb is not an unbounded walk)
MAX_FDS = 1024  # select's FD_SETSIZE; a poll() array longer than this is not read
MAX_FD_CHECKS = 512  # descriptors resolved (one readlink each) per poll, all tasks together
MAX_FD_LISTED = 4096  # entries of /proc/<pid>/fd read per process per poll
MAX_EPOLL_INFO = 64 * 1024  # bytes of an epoll descriptor's fdinfo read (~900 members)


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
    if not CALLS:
        return False
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/syscall") as f:
            f.read()
        return os.path.exists(f"/proc/{me}/task/{me}/children")
    except OSError:
        return False


class ProcDetector:
    name = "proc"

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.terminal = terminal_of(root_pid)
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
        children = (read_text(f"/proc/{self.root_pid}/task/{self.root_pid}/children") or "").split()
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
                    children = read_text(base + "/children")
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
        text = read_text(base + "/syscall")
        if not text or not text[0].isdigit():
            return None  # "running", or a kernel thread
        parts = text.split()
        kind = CALLS.get(int(parts[0]))
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
            waiting = int32(args[3]) < 0 and self._epoll_watches(pid, args[0])
        elif kind == EPOLL2:
            waiting = args[3] == 0 and self._epoll_watches(pid, args[0])
        else:
            if not waits_forever(kind, args):
                return None  # a wait with a timeout is not a prompt: costs nothing
            switches = self._switches(base)
            waiting = self._judge(pid, tid, kind, text, args, switches)
        if not waiting:
            return None
        if switches is None:
            switches = self._switches(base)
        return Block(pid, tid, int(parts[0]), switches)

    def _judge(
        self, pid: int, tid: int, kind: int, text: str, args: list[int], switches: int
    ) -> bool | None:
        """Does this select/poll wait watch the terminal? Remembered while the task
        sleeps in it; None: out of budget, undecided this time."""
        key = (pid, tid)
        known = self._verdicts.get(key)
        same = known is not None and known[0] == text and known[1] == switches
        if known is not None and same and known[2] is not None:
            return known[2]
        # A wait left undecided by the last poll resumes where it stopped, so one with
        # more descriptors than a poll's budget is decided in a few.
        self._resume_at = known[3] if known is not None and same else 0
        if kind in (SELECT, PSELECT):
            waiting = self._select_watches(pid, args[0], args[1])
        else:
            waiting = self._poll_watches(pid, args[0], args[1])
        self._resume_at = 0
        self._verdicts[key] = (text, switches, waiting, self._stopped_at)
        return waiting

    def _switches(self, base: str) -> int:
        self.ops += 1
        return schedule_count(base)

    def still(self, block: Block) -> bool:
        """Is this task still in the same wait (same call, no sleep since)?"""
        base = f"/proc/{block.pid}/task/{block.tid}"
        text = read_text(base + "/syscall")
        if not text or not text[0].isdigit() or int(text.split()[0]) != block.call:
            return False
        return schedule_count(base) == block.switches

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
        self._open[pid] = open_descriptors(pid, MAX_FD_LISTED)
        return self._open[pid]

    def _candidates(self, pid: int, fds: set[int]) -> list[int]:
        """The descriptors worth a readlink, lowest first (0-2 are the usual terminal)."""
        open_fds, complete = self._open_fds(pid)
        return sorted(fds & open_fds if complete else fds)

    def _select_watches(self, pid: int, nfds: int, readfds: int) -> bool | None:
        if readfds == 0 or not 0 < nfds <= MAX_FDS:
            return False
        self.ops += 1
        raw = peek(pid, readfds, (nfds + 7) // 8)
        if raw is None:
            return False
        bits = int.from_bytes(raw, "little")
        if not bits:
            return False
        open_fds, complete = self._open_fds(pid)
        wanted = fd_set_members(bits, nfds, open_fds if complete else None)
        return self._any_terminal(pid, wanted)

    def _poll_watches(self, pid: int, fds: int, nfds: int) -> bool | None:
        if fds == 0 or not 0 < nfds <= MAX_FDS:
            return False
        self.ops += 1
        raw = peek(pid, fds, 8 * nfds)
        if raw is None:
            return False
        return self._any_terminal(pid, self._candidates(pid, poll_readers(raw)))

    def _epoll_watches(self, pid: int, epfd: int) -> bool | None:
        self.ops += 1
        info = read_text(f"/proc/{pid}/fdinfo/{epfd}", MAX_EPOLL_INFO) or ""
        return self._any_terminal(pid, self._candidates(pid, epoll_readers(info)))

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
