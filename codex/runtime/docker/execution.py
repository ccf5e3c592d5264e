"""One program in a Docker sandbox: the supervisor's TTY exec and its hijacked socket.

The socket is read and written without blocking the IOLoop; engine calls (inspect,
resize, kill) go through the runtime's thread pool. Closing removes the container,
which kills whatever the program left behind.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import docker
from codex.errors import SandboxError
from codex.runtime.base import ExecSpec, Execution, ExitInfo, exit_info_from_record
from codex.runtime.docker.cgroup import CgroupStats
from codex.runtime.docker.engine import short
from codex.runtime.docker.hardening import exec_config

log = logging.getLogger(__name__)

# The engine's per-container shim (containerd-shim-runc-v2) lives outside the
# container's cgroup: ~3 MiB private memory each, measured with smaps_rollup.
SHIM_BYTES = 3 << 20

T = TypeVar("T")

READ_SIZE = 65536
# Seconds a killed execution's stream may stay open: the engine closes it when the
# container dies; if it does not, it is shut down so the output loop ends.
KILL_STREAM_GRACE = 2.0


class Host(Protocol):
    """What an execution needs of the runtime that made it (typed here so that this
    module does not import the runtime's)."""

    def api(self) -> docker.APIClient: ...

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    async def remove(self, client: str, container_id: str) -> bool: ...


class DockerExecution(Execution):
    def __init__(
        self,
        runtime: Host,
        container_id: str,
        exec_id: str,
        stream: Any,
        nonce: str,
        client: str,
    ) -> None:
        super().__init__(nonce)
        self.runtime = runtime
        self.client = client  # whose lane of the engine gate its removal goes in
        self.container_id = container_id
        self.exec_id = exec_id
        self._stream = stream
        self.sock: socket.socket = getattr(stream, "_sock", stream)
        self.sock.setblocking(False)
        self._pid: int | None = None
        # Found from the container's id at once, not only from the PID the engine
        # reports a moment later: a program killed before then still has its counters.
        self._cgroup: CgroupStats | None = CgroupStats.of_container(container_id)
        self._at_kill: tuple[int | None, int | None, int | None] = (None, None, None)
        self._cpu_at_begin: int | None = None
        self._killed = False
        self._closed = False
        self._kill_timer: asyncio.TimerHandle | None = None
        self._pid_task: asyncio.Task[None] | None = asyncio.ensure_future(self._find_pid())

    def root_pid(self) -> int | None:
        return self._pid

    async def _find_pid(self) -> None:
        # exec_inspect reports Pid 0 until the process exists; it shows up within ms.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not self._closed:
            try:
                info = await self.runtime.call(self.runtime.api().exec_inspect, self.exec_id)
            except Exception:
                return
            pid = info.get("Pid") or 0
            if pid > 0:
                self._pid = int(pid)
                self._cgroup = self._cgroup or CgroupStats.of_pid(self._pid)
                return
            if not info.get("Running", True) and info.get("ExitCode") is not None:
                return
            await asyncio.sleep(0.005)

    async def _recv(self) -> bytes:
        try:
            return await asyncio.get_running_loop().sock_recv(self.sock, READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    def _recv_now(self) -> bytes:
        try:
            return self.sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
        except OSError:  # nothing ready (BlockingIOError), or closed: _recv says which
            return b""

    async def _send(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)
        except OSError:
            pass  # the program is gone; its end is reported by output()/wait()

    async def resize(self, rows: int, cols: int) -> None:
        if self._closed or self.scanner.done:
            return
        try:
            await self.runtime.call(
                self.runtime.api().exec_resize, self.exec_id, height=rows, width=cols
            )
        except Exception as exc:
            log.debug("resize failed: %s", short(exc))

    def footprint(self) -> int | None:
        """Bytes this sandbox holds: its cgroup's charge and the engine's shim."""
        charged = self._cgroup.memory_now() if self._cgroup is not None else None
        return None if charged is None else charged + SHIM_BYTES

    def cpu_seconds(self) -> float | None:
        ns = self._cgroup.cpu_ns() if self._cgroup is not None else None
        return None if ns is None else ns / 1e9

    def alive(self) -> bool:
        """Is the exec stream still open (a pooled sandbox may have died waiting)?"""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True  # nothing to read, still connected
        except OSError:
            return False

    async def begin(self, spec: ExecSpec) -> None:
        # A pooled sandbox spent CPU getting warm: count only the program's.
        if self._cgroup is not None:
            self._cpu_at_begin = self._cgroup.cpu_ns()
        memory = spec.options.memory_mb
        if memory:
            # The request's own limit (at most the server's, which the container was
            # made with, pooled or not): the same for both, before the program runs.
            limit = f"{memory}m"
            await self.runtime.call(
                self.runtime.api().update_container,
                self.container_id,
                mem_limit=limit,
                memswap_limit=limit,
            )
        await super().begin(spec)

    async def wait(self) -> ExitInfo:
        if self.scanner.result is not None:
            info = exit_info_from_record(self.scanner.result)
        else:
            info = ExitInfo(detail="the sandbox ended without a result")
            try:
                state = await self.runtime.call(self.runtime.api().exec_inspect, self.exec_id)
                code = state.get("ExitCode")
                info.exit_code = code if isinstance(code, int) else None
            except Exception as exc:
                info.detail = f"the Docker engine failed: {short(exc)}"
        if self._cgroup is not None:
            oom, cpu, peak = self._counters()
            info.oom_killed = bool(oom)
            if cpu is not None:
                info.cpu_ms = round((cpu - (self._cpu_at_begin or 0)) / 1e6)
            info.memory_peak_bytes = peak
        elif info.signal == "SIGKILL" or not info.reported:
            # No cgroup files to read: ask the engine (it sees only its own init's
            # OOM kills, so this can miss one).
            try:
                inspected = await self.runtime.call(
                    self.runtime.api().inspect_container, self.container_id
                )
                info.oom_killed = bool(inspected.get("State", {}).get("OOMKilled"))
            except Exception:
                pass
        return info

    def _counters(self) -> tuple[int | None, int | None, int | None]:
        """OOM kills, CPU ns and peak memory now, or as they were just before the kill:
        the container's death removes its cgroup, at times before wait() reads it."""
        cg, (oom0, cpu0, peak0) = self._cgroup, self._at_kill
        if cg is None:
            return oom0, cpu0, peak0
        oom, cpu, peak = cg.oom_kills(), cg.cpu_ns(), cg.memory_peak()
        return (
            oom0 if oom is None else oom,
            cpu0 if cpu is None else cpu,
            peak0 if peak is None else peak,
        )

    async def kill(self) -> None:
        if self._killed or self._closed:
            return
        self._killed = True
        self._at_kill = self._counters()
        try:
            await self.runtime.call(self.runtime.api().kill, self.container_id)
        except Exception as exc:
            log.debug("kill %s: %s", self.container_id[:12], short(exc))
            self._shutdown_stream()  # the engine may never close it: end the output now
            return
        # The container's death ends the stream (its last bytes are still read); if
        # the engine does not close it, shut it down so the output loop ends anyway.
        if not self._closed:
            loop = asyncio.get_running_loop()
            self._kill_timer = loop.call_later(KILL_STREAM_GRACE, self._shutdown_stream)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pid_task is not None:
            # Dropped, not kept: a cancelled task holds its CancelledError, whose
            # traceback holds the task's frame, which holds this execution (a cycle).
            self._pid_task.cancel()
            self._pid_task = None
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        self._close_socket()
        await self.runtime.remove(self.client, self.container_id)

    def _shutdown_stream(self) -> None:
        """End the stream both ways without closing the fd: a pending read wakes up
        with end-of-file (closing the fd under a registered reader would not)."""
        self._kill_timer = None
        if self._stream is None:
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _close_socket(self) -> None:
        """Release the exec stream now, explicitly: the fd here and its peer in dockerd.

        ``exec_start(socket=True)`` returns the ``SocketIO`` that the HTTP response
        reads through, with the response attached to it (``_response``), which refers
        back to it: a cycle only the cyclic GC would free. And ``socket.close()`` alone
        does not close the fd while that ``SocketIO`` holds a reference (``_io_refs``).
        So close the stream, the socket and the response, and break the cycle."""
        stream, self._stream = self._stream, None
        if stream is not None:
            close_stream(stream)


def open_exec(api: docker.APIClient, container_id: str, nonce: str) -> tuple[str, Any]:
    """The supervisor's exec in a started container, and its hijacked stream."""
    exec_id: str = api.exec_create(container_id, **exec_config(nonce))["Id"]
    # The hijacked stream; it holds the HTTP response, whose finalizer would
    # close the socket, so the execution keeps it alive.
    raw = api.exec_start(exec_id, tty=True, socket=True)
    if not isinstance(getattr(raw, "_sock", raw), socket.socket):
        raise SandboxError("the Docker engine's exec stream is not a socket")
    return exec_id, raw


def close_stream(stream: Any) -> None:
    """Close a hijacked exec stream for real (see DockerExecution._close_socket)."""
    response = getattr(stream, "_response", None)
    sock = getattr(stream, "_sock", stream)
    for closer in (stream.close, sock.close, getattr(response, "close", None)):
        if closer is None:
            continue
        try:
            closer()
        except Exception as exc:  # closing what is half gone may fail; it is still gone
            log.debug("closing an exec stream: %s", short(exc))
    if response is not None:
        try:
            del stream._response  # the response refers back to the stream
        except AttributeError:
            pass
