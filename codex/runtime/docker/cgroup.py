"""What the kernel counted for a container: OOM kills, CPU time, peak memory.

Read from the host's cgroup files, found through the supervisor's /proc/<pid>/cgroup
(cgroup v1 and v2). These are the kernel's own counters: `memory_limit` is decided
from the OOM-kill count, never guessed from an exit status of 137. Where the files
cannot be read (a server in its own cgroup namespace, no privilege) every value is
None and the verdict says what it can without them.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    # os.open/os.read: open() in text mode adds an fstat, an lseek and a tty ioctl to
    # each read, and a class of waiting sessions reads these files every CPU_TICK.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _field(text: str | None, name: str) -> int | None:
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return None


class CgroupStats:
    def __init__(self, memory: Path | None, cpu: Path | None, unified: bool) -> None:
        self.memory = memory
        self.cpu = cpu
        self.unified = unified

    @classmethod
    def of_pid(cls, pid: int) -> CgroupStats | None:
        text = _read(Path(f"/proc/{pid}/cgroup"))
        if not text:
            return None
        memory = cpu = None
        for line in text.splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if controllers == "":  # cgroup v2: one hierarchy for everything
                unified = ROOT / rel
                if (unified / "memory.events").exists():
                    return cls(unified, unified, unified=True)
            names = controllers.split(",")
            if "memory" in names:
                memory = ROOT / "memory" / rel
            if "cpuacct" in names:
                cpu = ROOT / controllers / rel
                if not cpu.exists():
                    cpu = ROOT / "cpuacct" / rel
        # Paths from /proc/<pid>/cgroup are relative to the root of *our* view of the
        # hierarchy: a server in its own cgroup namespace may not see them at all.
        memory = memory if memory is not None and memory.exists() else None
        cpu = cpu if cpu is not None and cpu.exists() else None
        if memory is None and cpu is None:
            return None
        return cls(memory, cpu, unified=False)

    @classmethod
    def of_container(cls, container_id: str) -> CgroupStats | None:
        """The same, found from the container's id (the engine's usual layouts: the
        cgroupfs driver's ``docker/<id>``, systemd's ``docker-<id>.scope``), for when
        the supervisor's PID was never learned (the program was killed first)."""
        for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
            if (ROOT / rel / "memory.events").exists():
                return cls(ROOT / rel, ROOT / rel, unified=True)
            memory = ROOT / "memory" / rel
            cpu = next(
                (p for p in (ROOT / "cpu,cpuacct" / rel, ROOT / "cpuacct" / rel) if p.exists()),
                None,
            )
            if memory.exists() or cpu is not None:
                return cls(memory if memory.exists() else None, cpu, unified=False)
        return None

    def oom_kills(self) -> int | None:
        if self.memory is None:
            return None
        if self.unified:
            return _field(_read(self.memory / "memory.events"), "oom_kill")
        return _field(_read(self.memory / "memory.oom_control"), "oom_kill")

    def cpu_ns(self) -> int | None:
        if self.cpu is None:
            return None
        if self.unified:
            usec = _field(_read(self.cpu / "cpu.stat"), "usage_usec")
            return None if usec is None else usec * 1000
        text = _read(self.cpu / "cpuacct.usage")
        return int(text) if text and text.strip().isdigit() else None

    def memory_now(self) -> int | None:
        """Bytes charged to the container now (its processes, their page cache)."""
        return self._memory_count("memory.current", "memory.usage_in_bytes")

    def memory_peak(self) -> int | None:
        return self._memory_count("memory.peak", "memory.max_usage_in_bytes")

    def _memory_count(self, v2_name: str, v1_name: str) -> int | None:
        if self.memory is None:
            return None
        text = _read(self.memory / (v2_name if self.unified else v1_name))
        return int(text) if text and text.strip().isdigit() else None
