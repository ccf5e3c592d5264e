"""Reading and decoding the /proc files the proc detector asks (codex.sessions.input.detector).

Each function reads or decodes one thing: a small kernel file, a task's schedule count,
a few bytes of a process's memory, or the descriptors a select/poll/epoll wait watches for
reading. None of them keeps state or counts its cost; the detector does both.
"""

from __future__ import annotations

import os
import platform
import struct

READ, SELECT, PSELECT, POLL, PPOLL, EPOLL, EPOLL2 = range(7)

# System call numbers per architecture, with how their arguments name descriptors.
CALLS = {
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

POLLIN_MASK = 0x1 | 0x2  # POLLIN | POLLPRI
EPOLLIN_MASK = 0x1 | 0x2


def read_text(path: str, limit: int = 4096) -> str | None:
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


def int32(value: int) -> int:
    """A C int argument as the kernel sees it (registers may carry garbage above)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def waits_forever(kind: int, args: list[int]) -> bool:
    """Does this select/pselect/poll/ppoll wait have no timeout? A wait with one is not
    a prompt, and is dismissed from its arguments alone."""
    if kind in (SELECT, PSELECT):
        return args[4] == 0
    return args[2] == 0 if kind == PPOLL else int32(args[2]) < 0


def peek(pid: int, address: int, size: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            data = mem.read(size)
    except (OSError, OverflowError, ValueError):
        return None
    return data if len(data) == size else None


def terminal_of(pid: int) -> str | None:
    try:
        target = os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return None
    return target if target.startswith("/dev/pts/") else None


def schedule_count(base: str) -> int:
    """How many times the task has been scheduled: a new wait is a new count.
    schedstat's third field is cheap to read; status is the fallback."""
    stat = read_text(base + "/schedstat")
    if stat:
        return int(stat.split()[2])
    status = read_text(base + "/status") or ""
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def open_descriptors(pid: int, limit: int) -> tuple[frozenset[int], bool]:
    """A process's open descriptors (at most ``limit``), and whether that is all."""
    fds: set[int] = set()
    complete = True
    try:
        with os.scandir(f"/proc/{pid}/fd") as entries:
            for entry in entries:
                if len(fds) >= limit:
                    complete = False
                    break
                fds.add(int(entry.name))
    except (OSError, ValueError):
        complete = False
    return frozenset(fds), complete


def fd_set_members(bits: int, nfds: int, open_fds: frozenset[int] | None) -> list[int]:
    """The descriptors below nfds set in an fd_set (bit fd of little-endian longs),
    ascending; only the open ones when the open ones are known (``open_fds``)."""
    if open_fds is not None:
        return [fd for fd in sorted(open_fds) if fd < nfds and bits >> fd & 1]
    return [fd for fd in range(nfds) if bits >> fd & 1]


def poll_readers(raw: bytes) -> set[int]:
    """The descriptors of a struct pollfd array that are watched for reading."""
    return {
        fd for fd, events, _ in struct.iter_unpack("ihh", raw) if fd >= 0 and events & POLLIN_MASK
    }


def epoll_readers(fdinfo: str) -> set[int]:
    """The members of an epoll set (its descriptor's fdinfo) watched for reading."""
    wanted: set[int] = set()
    for line in fdinfo.splitlines():
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
    return wanted
