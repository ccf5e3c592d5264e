"""Which server owns a container, and is that server still alive?

Every container is labelled with its server's identity: the machine's boot id, the
server's PID namespace, its PID and the process's start time. At start-up a server
removes the containers whose owner is provably gone (another boot, or a PID in our
namespace that is no longer that process), and leaves alone those of servers it
cannot see (another PID namespace): those are reaped by their owner, or, with Redis,
once the owner's lease expires.
"""

from __future__ import annotations

import os
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime, in clock ticks


def identity() -> str:
    pid = os.getpid()
    return f"{_boot_id()}/{_pid_namespace()}/{pid}/{_start_time(pid)}"


def owner_gone(owner: str | None) -> bool:
    """True when the server that labelled a container has certainly stopped."""
    if not owner:
        return True  # made before owners were recorded
    try:
        boot, namespace, pid_text, start = owner.split("/")
        pid = int(pid_text)
    except ValueError:
        return True
    if boot != _boot_id():
        return True
    if namespace != _pid_namespace():
        return False  # a server we cannot see into; not ours to judge
    return _start_time(pid) != start
