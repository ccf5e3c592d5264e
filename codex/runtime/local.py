"""Local backend: the program runs on this machine under a pty (ptyprocess).

UNSANDBOXED. It exists for development and fast unit tests, with the same interface and
the same supervisor as the Docker backend; the server refuses to expose it on a
non-loopback address unless told to.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable

from ptyprocess import PtyProcess

from codex.config import Settings
from codex.errors import SandboxError
from codex.runtime.base import (
    ExecSpec,
    Execution,
    ExitInfo,
    Readiness,
    Runtime,
    exit_info_from_record,
)
from codex.runtime.protocol import new_nonce, supervisor_command

READ_SIZE = 65536
# Variables a program may see; the server's own environment (its secrets) stays out.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, settings: Settings, python: str | None = None) -> None:
        self.settings = settings
        self.instance = uuid.uuid4().hex[:12]
        self.python = python or sys.executable

    async def readiness(self) -> Readiness:
        from codex.sessions.input.detector import proc_detector_available

        return Readiness(True, detector="proc" if proc_detector_available() else "heuristic")

    async def start(self, spec: ExecSpec) -> Execution:
        nonce = new_nonce()
        workdir = tempfile.mkdtemp(prefix="codex-local-")
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.update(HOME=workdir, TERM="xterm-256color", PYTHONIOENCODING="utf-8")
        env["CODEX_NONCE"] = nonce
        env.setdefault("LANG", "C.UTF-8")
        try:
            proc = PtyProcess.spawn(
                supervisor_command(self.python),
                cwd=workdir,
                env=env,
                dimensions=(spec.rows, spec.cols),
            )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise SandboxError(f"Could not start the program: {exc}") from exc
        execution = LocalExecution(proc, nonce, workdir)
        try:
            await execution.prepare()
            await execution.begin(spec)
        except BaseException:
            await execution.close()
            raise
        return execution


class LocalExecution(Execution):
    def __init__(self, proc: PtyProcess, nonce: str, workdir: str) -> None:
        super().__init__(nonce)
        self.proc = proc
        self.workdir = workdir
        self._closed = False
        os.set_blocking(proc.fd, False)

    def root_pid(self) -> int | None:
        return int(self.proc.pid)

    async def _recv(self) -> bytes:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                return os.read(self.proc.fd, READ_SIZE)
            except BlockingIOError:
                await _ready(self.proc.fd, loop.add_reader, loop.remove_reader)
            except OSError:  # EIO: every holder of the terminal's slave side is gone
                return b""
        return b""

    def _recv_now(self) -> bytes:
        try:
            return os.read(self.proc.fd, READ_SIZE)
        except OSError:  # nothing ready (BlockingIOError), or EIO: _recv says which
            return b""

    async def _send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view and not self._closed:
            try:
                view = view[os.write(self.proc.fd, view) :]
            except BlockingIOError:
                await _ready(self.proc.fd, loop.add_writer, loop.remove_writer)
            except OSError:
                return

    async def resize(self, rows: int, cols: int) -> None:
        if not self._closed:
            try:
                self.proc.setwinsize(rows, cols)
            except OSError:
                pass

    async def wait(self) -> ExitInfo:
        if self.scanner.result is not None:
            return exit_info_from_record(self.scanner.result)
        await self.kill()
        return ExitInfo(detail="the program ended without a result")

    async def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def close(self) -> None:
        if self._closed:
            return
        await self.kill()
        self._closed = True
        loop = asyncio.get_running_loop()
        # Reaping can block for a moment; keep it off the IOLoop.
        await loop.run_in_executor(None, self._reap)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _reap(self) -> None:
        try:
            self.proc.close(force=True)
        except Exception:
            pass


async def _ready(
    fd: int,
    add: Callable[..., object],
    remove: Callable[[int], object],
) -> None:
    """Wait until the loop says ``fd`` is readable (or writable)."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)
