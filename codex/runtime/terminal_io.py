"""Reaching a session's terminal from the host, through the supervisor's fd 0.

Used both to queue records behind the program's output (``Execution.sync``) and by the
input detector, which must be sure it reads a pty slave and nothing the program
substituted for one.
"""

from __future__ import annotations

import os
import stat

PTY_SLAVE_MAJORS = range(136, 144)  # UNIX98 pty slaves


def open_terminal(pid: int, flags: int) -> int | None:
    """The session's terminal, opened through the supervisor's fd 0 and checked to be
    a pty slave before anything else is done with it; None if it cannot be."""
    try:
        fd = os.open(f"/proc/{pid}/fd/0", flags | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in PTY_SLAVE_MAJORS:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def write_to_terminal(pid: int, data: bytes) -> bool:
    """Queue bytes on the terminal's output side (they come out of the stream).
    Never blocks: a terminal stopped by Ctrl-S just refuses."""
    fd = open_terminal(pid, os.O_WRONLY)
    if fd is None:
        return False
    try:
        return os.write(fd, data) == len(data)
    except OSError:
        return False
    finally:
        os.close(fd)
