"""Host-wide kernel counters that no container limit divides: make room for every
sandbox at its own bound, or say plainly that there is none.

Ptys (``kernel.pty.max``) and Linux AIO events (``fs.aio-max-nr``) are counted for
the whole host, so one sandbox that takes all it can would leave none for the others
(or the host). Each sandbox's share is bounded by its own limits; the host limit must
fit ``max_sessions`` of them. Raised when the server may (root on the host), warned
about when it may not. docs/security.md has the table.
"""

from __future__ import annotations

import logging

from codex.config import Settings

log = logging.getLogger(__name__)

PTY_MAX = "/proc/sys/kernel/pty/max"
PTY_RESERVE = "/proc/sys/kernel/pty/reserve"
PTY_KERNEL_LIMIT = 1 << 20  # NR_UNIX98_PTY_MAX

AIO_MAX = "/proc/sys/fs/aio-max-nr"
AIO_HOST_SHARE = 65536  # the kernel's default, left for the host's own programs
AIO_BYTES_PER_EVENT = 32  # measured: 64 bytes of the container's memory per event


def _read(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None  # not Linux, or /proc hidden: nothing to say


def _raise_to(path: str, name: str, wanted: int, risk: str) -> None:
    current = _read(path)
    if current is None or current >= wanted:
        return
    try:
        with open(path, "w") as f:
            f.write(str(wanted))
        log.info("raised %s from %d to %d (room for every sandbox)", name, current, wanted)
    except OSError:
        log.warning(
            "%s is %d: %s; set %s=%d (scripts/ensure-docker.sh does, as root)",
            name,
            current,
            risk,
            name,
            wanted,
        )


def ensure_pty_room(settings: Settings) -> None:
    """A sandbox's processes (pids_limit, less docker-init and the idle sleep) may
    each hold nofile_limit ptys, and its uid about as many again in flight in unix
    sockets (measured: 60 processes held 15 060)."""
    reserve = _read(PTY_RESERVE)
    if reserve is None:
        return
    per_sandbox = (settings.pids_limit - 1) * settings.nofile_limit
    needed = reserve + settings.max_sessions * per_sandbox
    if needed > PTY_KERNEL_LIMIT:
        log.warning(
            "max_sessions x %d ptys per sandbox exceeds what the kernel can count (%d): "
            "lower pids_limit or nofile_limit so one sandbox cannot starve the others",
            per_sandbox,
            PTY_KERNEL_LIMIT,
        )
    risk = f"one sandbox may open {per_sandbox} ptys and leave none for the others"
    _raise_to(PTY_MAX, "kernel.pty.max", min(PTY_KERNEL_LIMIT, needed), risk)


def ensure_aio_room(settings: Settings) -> None:
    """AIO rings are charged to the sandbox's memory cgroup (64 bytes an event), so
    its memory limit bounds one sandbox."""
    per_sandbox = (settings.memory_limit_mb << 20) // AIO_BYTES_PER_EVENT
    wanted = AIO_HOST_SHARE + settings.max_sessions * per_sandbox
    _raise_to(AIO_MAX, "fs.aio-max-nr", wanted, "one sandbox may take every AIO event of the host")


def ensure_room(settings: Settings) -> None:
    """Both host-wide counters above have room for a full server of sandboxes."""
    ensure_pty_room(settings)
    ensure_aio_room(settings)
