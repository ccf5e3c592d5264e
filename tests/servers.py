"""Real server processes and a real redis-server, for tests that need more than one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import tornado.httpclient

from tests.harness import Harness
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


async def _wait_until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError("did not become ready")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="codex-redis-")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def answers() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    try:
        await _wait_until(answers, 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        await proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


class ServerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"

    @property
    def harness(self) -> Harness:
        """HTTP and Socket.IO clients for this server."""
        return Harness(None, self.base_url)

    def kill(self) -> None:
        """Die at once, like a crashed machine would (no cleanup at all)."""
        self.proc.send_signal(signal.SIGKILL)


@contextlib.asynccontextmanager
async def codex_process(*flags: str) -> AsyncIterator[ServerProcess]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codex",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *flags,
        cwd=ROOT,
        env=env,
    )
    server = ServerProcess(proc, port)
    client = tornado.httpclient.AsyncHTTPClient()

    async def ready() -> bool:
        if proc.returncode is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            resp = await client.fetch(server.base_url + "/readyz", raise_error=False)
        except OSError:
            return False  # not listening yet
        return resp.code == 200

    try:
        await _wait_until(ready, 60)
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
