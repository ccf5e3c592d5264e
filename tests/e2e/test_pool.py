"""The warm pool against real Docker: single use, refilled, capped, drained."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from codex.runtime.docker.runtime import DockerRuntime
from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]


def pool_of(h: Harness):  # type: ignore[no-untyped-def]
    runtime = h.app.runtime
    assert isinstance(runtime, DockerRuntime) and runtime.pool is not None
    return runtime.pool


async def wait_ready(h: Harness, count: int, timeout: float = 20) -> None:
    pool = pool_of(h)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pool.ready != count:
        assert loop.time() < deadline, f"pool has {pool.ready}, expected {count}"
        await asyncio.sleep(0.05)


def instance_containers(h: Harness) -> set[str]:
    runtime = h.app.runtime
    assert isinstance(runtime, DockerRuntime)
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=org.codex.instance={runtime.instance}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    return set(out.split())


async def test_each_pooled_container_serves_one_execution_then_goes() -> None:
    async with running_app(pool_size=2) as h:
        await wait_ready(h, 2)
        pool = pool_of(h)
        code = "import socket\nprint(socket.gethostname())\ninput('? ')\n"
        first = await h.execute(code)
        second = await h.execute(code)
        used = [await containers_of_soon(first), await containers_of_soon(second)]
        assert pool.hits == 2 and pool.misses == 0
        assert len(used[0]) == len(used[1]) == 1 and used[0] != used[1]
        for session_id in (first, second):
            await h.request("DELETE", f"/api/sessions/{session_id}")
            await h.wait_finished(session_id)
            await assert_gone_soon(session_id)
        await wait_ready(h, 2)  # refilled with new ones
        assert not (set(used[0]) | set(used[1])) & instance_containers(h)
        t = await h.run("print('warm')")
        assert t.output == "warm\r\n" and t.complete["status"] == "ok"


async def test_pool_stays_within_the_global_cap() -> None:
    async with running_app(pool_size=4, max_sessions=2) as h:
        await wait_ready(h, 2)
        await asyncio.sleep(0.5)
        assert pool_of(h).ready == 2
        running = await h.execute("input('wait? ')\n")
        await wait_ready(h, 1)  # one runs, so one spare at most
        await h.request("DELETE", f"/api/sessions/{running}")
        await h.wait_finished(running)
        await wait_ready(h, 2)


async def test_a_new_image_replaces_pooled_containers() -> None:
    async with running_app(pool_size=2) as h:
        await wait_ready(h, 2)
        before = instance_containers(h)
        pool_of(h).note_image("sha256:another-image")
        await asyncio.sleep(0.2)
        await wait_ready(h, 2)
        await asyncio.sleep(0.5)
        after = instance_containers(h)
        assert len(after) == 2 and not (before & after)


async def test_shutdown_removes_pooled_containers() -> None:
    async with running_app(pool_size=3) as h:
        await wait_ready(h, 3)
        assert len(instance_containers(h)) == 3
    assert instance_containers(h) == set()


async def test_pool_off_starts_cold() -> None:
    async with running_app(pool_size=0) as h:
        assert isinstance(h.app.runtime, DockerRuntime) and h.app.runtime.pool is None
        t = await h.run("print('cold')")
        assert t.output == "cold\r\n"


def _labelled_container(owner: str, name: str = "") -> str:
    extra = ["--label", f"org.codex.instance-name={name}"] if name else []
    return subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--network",
            "none",
            "--label",
            "org.codex.managed=1",
            "--label",
            f"org.codex.owner={owner}",
            *extra,
            "codex-sandbox:latest",
            "sleep",
            "60",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


def _remove(*container_ids: str) -> None:
    subprocess.run(["docker", "rm", "-f", *container_ids], capture_output=True, timeout=30)


def _exists(container_id: str) -> bool:
    probe = subprocess.run(["docker", "inspect", container_id], capture_output=True, timeout=20)
    return probe.returncode == 0


async def test_startup_sweeps_orphans_but_not_live_servers() -> None:
    from codex.runtime.docker.owner import identity

    boot, namespace, _, _ = identity().split("/")
    orphan_other_boot = _labelled_container("another-boot/1/2/3")
    orphan_dead_pid = _labelled_container(f"{boot}/{namespace}/999999/1")
    unlabelled_owner = _labelled_container("")
    live = _labelled_container(identity())  # this very process: alive
    foreign_namespace = _labelled_container(f"{boot}/4026599999/12/34")
    try:
        async with running_app(pool_size=0):
            pass
        assert not _exists(orphan_other_boot)
        assert not _exists(orphan_dead_pid)
        assert not _exists(unlabelled_owner)
        assert _exists(live)
        assert _exists(foreign_namespace)
    finally:
        _remove(live, foreign_namespace)


async def test_a_named_server_removes_what_its_earlier_run_left() -> None:
    from codex.runtime.docker.owner import identity

    boot, _, _, _ = identity().split("/")
    # Left by a run of "web-1" in a PID namespace we cannot see into (a container).
    leftover = _labelled_container(f"{boot}/4026599998/7/8", name="web-1")
    other = _labelled_container(f"{boot}/4026599998/7/8")  # unnamed: not ours to judge
    try:
        async with running_app(pool_size=0, instance_name="web-1"):
            pass
        assert not _exists(leftover)
        assert _exists(other)
    finally:
        _remove(leftover, other)
