"""Ask the real engine what containers exist (via the docker CLI, independent of the server)."""

from __future__ import annotations

import asyncio
import subprocess


def containers_of(session_id: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=org.codex.session={session_id}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    return out.split()


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
