"""Ask the real engine what containers exist (via the docker CLI, independent of the server)."""

from __future__ import annotations

import asyncio
import subprocess


def _ids(*filters: str) -> set[str]:
    args = ["docker", "ps", "-aq"]
    for f in filters:
        args += ["--filter", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=20).stdout
    return set(out.split())


def containers_of(session_id: str) -> list[str]:
    """A cold container carries the session's label; a pooled one gets its name when
    taken (labels are fixed at creation)."""
    return sorted(
        _ids(f"label=org.codex.session={session_id}") | _ids(f"name=^codex-{session_id}$")
    )


async def containers_of_soon(session_id: str, within: float = 5.0) -> list[str]:
    """The session's containers, once the engine shows them (a rename is asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await loop.run_in_executor(None, containers_of, session_id)
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def assert_gone_soon(session_id: str, within: float = 2.0) -> None:
    """After a session ends, none of its containers may be left (within 2 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        left = await loop.run_in_executor(None, containers_of, session_id)
        if not left:
            return
        assert loop.time() < deadline, f"containers left for {session_id}: {left}"
        await asyncio.sleep(0.1)
