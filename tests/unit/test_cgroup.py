"""The kernel's counters for a sandbox: found from the container's id, and kept from
just before a kill (the container's death removes its cgroup, at times before the
verdict reads it)."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from codex.runtime.docker import cgroup
from codex.runtime.docker.cgroup import CgroupStats
from codex.runtime.docker.execution import DockerExecution

CID = "c0ffee" * 10


def v1_tree(root: Path, cpu_ns: int, peak: int, oom: int) -> Path:
    memory = root / "memory" / "docker" / CID
    cpu = root / "cpuacct" / "docker" / CID
    memory.mkdir(parents=True)
    cpu.mkdir(parents=True)
    (cpu / "cpuacct.usage").write_text(f"{cpu_ns}\n")
    (memory / "memory.max_usage_in_bytes").write_text(f"{peak}\n")
    (memory / "memory.usage_in_bytes").write_text(f"{peak // 2}\n")
    (memory / "memory.oom_control").write_text(f"oom_kill_disable 0\noom_kill {oom}\n")
    return root


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cgroup, "ROOT", tmp_path)
    return tmp_path


def test_found_from_the_container_id_in_v1_and_v2(root: Path) -> None:
    assert CgroupStats.of_container(CID) is None
    v1_tree(root, cpu_ns=5_000_000, peak=1 << 20, oom=1)
    stats = CgroupStats.of_container(CID)
    assert stats is not None and not stats.unified
    assert (stats.cpu_ns(), stats.memory_peak(), stats.oom_kills()) == (5_000_000, 1 << 20, 1)
    shutil.rmtree(root / "memory")
    shutil.rmtree(root / "cpuacct")
    v2 = root / "system.slice" / f"docker-{CID}.scope"
    v2.mkdir(parents=True)
    (v2 / "memory.events").write_text("oom 0\noom_kill 2\n")
    (v2 / "cpu.stat").write_text("usage_usec 7000\n")
    (v2 / "memory.peak").write_text("4096\n")
    stats = CgroupStats.of_container(CID)
    assert stats is not None and stats.unified
    assert (stats.cpu_ns(), stats.memory_peak(), stats.oom_kills()) == (7_000_000, 4096, 2)


class Host:
    """The runtime as an execution sees it; `on_kill` runs as the engine kills."""

    def __init__(self, on_kill: Callable[[], None]) -> None:
        self.on_kill = on_kill

    def api(self) -> Any:
        host = self

        class Api:
            def exec_inspect(self, exec_id: str) -> dict[str, Any]:
                return {"Pid": 0, "Running": True}  # never learned: the race it covers

            def kill(self, container_id: str) -> None:
                host.on_kill()

        return Api()

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    async def remove(self, client: str, container_id: str) -> bool:
        return True


def test_a_killed_program_keeps_the_counters_its_cgroup_had(root: Path) -> None:
    async def scenario() -> None:
        v1_tree(root, cpu_ns=900_000_000, peak=3 << 20, oom=0)

        def the_container_dies() -> None:  # and the runtime removes its cgroup
            shutil.rmtree(root / "memory")
            shutil.rmtree(root / "cpuacct")

        ours, theirs = socket.socketpair()
        execution = DockerExecution(Host(the_container_dies), CID, "exec", ours, "n" * 32, "x")  # type: ignore[arg-type]
        try:
            await execution.kill()
            assert not (root / "cpuacct").exists()
            info = await execution.wait()
            assert (info.cpu_ms, info.memory_peak_bytes, info.oom_killed) == (900, 3 << 20, False)
        finally:
            await execution.close()
            theirs.close()
        await asyncio.sleep(0)

    asyncio.run(scenario())
