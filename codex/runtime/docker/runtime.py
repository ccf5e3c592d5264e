"""Docker backend: one hardened, single-use container per execution.

The container's own process is an idle ``sleep`` under Docker's init; the program runs
in a TTY-allocated ``docker exec`` whose hijacked socket is read and written without
blocking the IOLoop. Every blocking SDK call goes to a thread pool. An execution ends by
removing its container with force, which kills whatever the program left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
from codex.config import Settings
from codex.errors import RuntimeUnavailable, SandboxError
from codex.runtime.base import (
    ExecSpec,
    Execution,
    ExitInfo,
    Readiness,
    Runtime,
    exit_info_from_record,
    new_nonce,
    supervisor_command,
)
from codex.runtime.docker.cgroup import CgroupStats
from codex.runtime.docker.gate import EngineGate
from codex.runtime.docker.host_limits import ensure_aio_room, ensure_pty_room
from codex.runtime.docker.owner import identity, owner_gone
from codex.runtime.docker.pool import ContainerPool
from codex.runtime.docker.seccomp import security_opt
from codex.runtime.docker.uids import UidAllocator
from docker.types import LogConfig, Ulimit

log = logging.getLogger(__name__)

T = TypeVar("T")

LABEL_MANAGED = "org.codex.managed"
LABEL_INSTANCE = "org.codex.instance"
LABEL_SESSION = "org.codex.session"
LABEL_OWNER = "org.codex.owner"
LABEL_CLUSTER = "org.codex.cluster.directory"
LABEL_NAME = "org.codex.instance-name"
LABEL_UID = "org.codex.uid"
SANDBOX_PYTHON = "python3"
READ_SIZE = 65536
POOL_LANE = "(pool)"  # the engine gate's lane for pool refills (never a client address)
# Seconds a killed execution's stream may stay open: the engine closes it when the
# container dies; if it does not, it is shut down so the output loop ends.
KILL_STREAM_GRACE = 2.0


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = uuid.uuid4().hex[:12]
        self.owner = identity()
        # Instances sharing one Redis form a cluster; they may reap each other's
        # sandboxes once a lease runs out, and never anyone else's.
        self.cluster_label = (
            hashlib.sha256(settings.redis_url.encode()).hexdigest()[:12]
            if settings.redis_url
            else ""
        )
        self._threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker")
        self._api: docker.APIClient | None = None
        self._ready_cache: tuple[float, Readiness] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.unremoved: set[str] = set()  # containers a failed removal left behind
        self.uids = UidAllocator(settings.sandbox_uid_base)
        self._uid_of: dict[str, int] = {}  # container id -> the uid it runs as
        # Every create and removal waits here: one fair path to the engine.
        self.gate = EngineGate(settings.engine_concurrency, unlimited=POOL_LANE)
        self.pool: ContainerPool | None = (
            ContainerPool(self, settings.pool_size, settings.pool_share_window)
            if settings.pool_size > 0
            else None
        )

    # -- plumbing ---------------------------------------------------------------------

    def api(self) -> docker.APIClient:
        if self._api is None:
            kwargs: dict[str, Any] = {
                "timeout": self.settings.docker_timeout,
                "max_pool_size": 64,
                "version": "auto",
            }
            if self.settings.docker_url:
                kwargs["base_url"] = self.settings.docker_url
            else:
                kwargs.update(docker.utils.kwargs_from_env())
                kwargs.setdefault("base_url", "unix:///var/run/docker.sock")
            try:
                self._api = docker.APIClient(**kwargs)
            except docker.errors.DockerException as exc:
                raise RuntimeUnavailable(f"No Docker engine answers: {exc}") from exc
        return self._api

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, lambda: fn(*args, **kwargs))

    # -- Runtime interface --------------------------------------------------------------

    async def readiness(self) -> Readiness:
        now = time.monotonic()
        if self._ready_cache and now - self._ready_cache[0] < 2.0:
            return self._ready_cache[1]
        result = await self.call(self._probe)
        self._ready_cache = (now, result)
        if self.pool is not None and "image" in result.extra:
            self.pool.note_image(result.extra["image"])
        return result

    def _probe(self) -> Readiness:
        try:
            api = self.api()
            api.ping()
        except Exception as exc:  # any failure here means "not ready", said plainly
            self._api = None
            return Readiness(False, f"the Docker engine does not answer ({_short(exc)})")
        try:
            image = api.inspect_image(self.settings.sandbox_image)
        except docker.errors.ImageNotFound:
            return Readiness(
                False,
                f"the sandbox image {self.settings.sandbox_image} is missing "
                "(build it with `make image`)",
            )
        except Exception as exc:
            return Readiness(False, f"the Docker engine failed: {_short(exc)}")
        from codex.sessions.input.detector import proc_detector_available

        for container_id in list(self.unremoved):  # the engine is back: finish the job
            if self.remove_now(container_id):
                self.unremoved.discard(container_id)
        detector = "proc" if proc_detector_available() else "heuristic"
        return Readiness(True, detector=detector, extra={"image": image["Id"]})

    async def startup(self) -> None:
        try:
            removed = await self.call(self.sweep)
        except Exception as exc:
            log.warning("could not sweep old containers: %s", _short(exc))
            return
        if removed:
            log.info("removed %d container(s) left by a previous run", removed)
        try:
            in_use = await self.call(self._uids_in_use)
        except Exception as exc:
            log.warning("could not list the uids of other servers' sandboxes: %s", _short(exc))
        else:
            # Another server on this engine may have drawn the same block.
            self.uids = UidAllocator(self.settings.sandbox_uid_base, in_use)
        ensure_pty_room(self.settings)
        ensure_aio_room(self.settings)
        if self.pool is not None:
            await self.readiness()  # records the image the pooled containers come from
            self.pool.start()

    def set_headroom(self, headroom: Callable[[], int]) -> None:
        if self.pool is not None:
            self.pool.headroom = headroom

    def pool_stats(self) -> tuple[int, int, int]:
        if self.pool is None:
            return (0, 0, 0)
        return (self.pool.ready, self.pool.hits, self.pool.misses)

    def _uids_in_use(self) -> list[int]:
        found = self.api().containers(all=True, filters={"label": LABEL_MANAGED})
        uids = [c.get("Labels", {}).get(LABEL_UID, "") for c in found]
        return [int(u) for u in uids if u.isdigit()]

    def sweep(self, instance: str | None = None) -> int:
        """Remove one instance's containers, or (None) those whose server is gone."""
        label = f"{LABEL_INSTANCE}={instance}" if instance else LABEL_MANAGED
        api = self.api()
        found = api.containers(all=True, filters={"label": label})
        if instance is None:
            name = self.settings.instance_name
            found = [
                c
                for c in found
                if owner_gone(c.get("Labels", {}).get(LABEL_OWNER))
                or (name and c.get("Labels", {}).get(LABEL_NAME) == name)
            ]
        for c in found:
            remove_quietly(api, c["Id"])
        return len(found)

    async def reap_dead_peers(self, live: set[str]) -> None:
        if not self.cluster_label:
            return

        def reap() -> int:
            api = self.api()
            found = api.containers(
                all=True, filters={"label": f"{LABEL_CLUSTER}={self.cluster_label}"}
            )
            dead = [c for c in found if c.get("Labels", {}).get(LABEL_INSTANCE) not in live]
            for c in dead:
                remove_quietly(api, c["Id"])
            return len(dead)

        removed = await self.call(reap)
        if removed:
            log.info("removed %d sandbox(es) of instances whose lease ran out", removed)

    async def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        try:
            await self.call(self.sweep, self.instance)
        except Exception as exc:
            log.warning("could not remove containers at shutdown: %s", _short(exc))
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def start(self, spec: ExecSpec) -> Execution:
        """Cancellation-safe: a caller cancelled while its start waits in the engine
        gate costs no container; one cancelled later leaves nothing behind either."""
        refused = self.pool.refused if self.pool is not None else 0
        warm = await self.pool.acquire(spec.client) if self.pool is not None else None
        if warm is not None:
            warm.client = spec.client  # its removal is this client's engine work
            execution = warm
        else:
            # A network the pool's share rule turned away is taking more than others:
            # its cold start waits behind refills and everyone else's starts.
            heavy = self.pool is not None and self.pool.refused > refused
            execution = await self.prepare(spec.session_id, spec.client, later=heavy)
        try:
            await execution.begin(spec)
        except asyncio.CancelledError:
            self._spawn(execution.close())  # runs to its end whatever happens to us
            raise
        except BaseException:
            await execution.close()
            raise
        if warm is not None:
            self._spawn(self.call(self._adopt, warm.container_id, spec.session_id))
        return execution

    async def prepare(
        self, session_id: str | None, client: str = POOL_LANE, *, later: bool = False
    ) -> DockerExecution:
        """A started container with the supervisor ready for a job. Its creation waits
        for a turn in `client`'s lane of the engine gate (``later``: behind every
        other start, see EngineGate.run)."""
        nonce = new_nonce()
        loop = asyncio.get_running_loop()
        try:
            container_id, exec_id, stream = await self.gate.run(
                client,
                lambda: loop.run_in_executor(self._threads, self._create_exec, session_id, nonce),
                # Cancelled while the engine created it: remove it once it exists.
                orphan=lambda made: self._discard(client, made[0], made[2]),
                later=later,
            )
        except docker.errors.ImageNotFound as exc:
            raise RuntimeUnavailable(
                f"The sandbox image {self.settings.sandbox_image} is missing; build it "
                "with `make image`."
            ) from exc
        except (docker.errors.DockerException, OSError) as exc:
            self._ready_cache = None
            raise SandboxError(
                f"The Docker engine could not start the sandbox: {_short(exc)}"
            ) from exc
        execution = DockerExecution(self, container_id, exec_id, stream, nonce, client)
        try:
            await execution.prepare()
        except asyncio.CancelledError:
            self._spawn(execution.close())
            raise
        except BaseException:
            await execution.close()
            raise
        return execution

    async def remove(self, client: str, container_id: str) -> bool:
        """Remove a container with force, in `client`'s lane of the engine gate; True
        once it is gone. The removal goes on even if the caller is cancelled."""

        def removal() -> asyncio.Future[bool]:
            return asyncio.get_running_loop().run_in_executor(
                self._threads, self.remove_now, container_id
            )

        # A removal is as urgent as a start: a session's container must be gone
        # within 2 s of its end (the program is killed at once, not through here).
        task = asyncio.ensure_future(self.gate.run(client, removal))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _discard(self, client: str, container_id: str, stream: Any) -> None:
        """Undo a creation nobody waits for any more: close its stream, remove it."""
        close_stream(stream)
        if not await self.remove(client, container_id):
            self.unremoved.add(container_id)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def container_config(self, session_id: str | None, uid: int) -> dict[str, Any]:
        """Every container's hardening; docs/security.md explains each line."""
        s = self.settings
        api = self.api()
        memory = f"{s.memory_limit_mb}m"
        host_config = api.create_host_config(
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=security_opt(s.seccomp),
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={s.tmpfs_size_mb}m,"
                f"nr_inodes={s.tmpfs_inodes},mode=1777"
            },
            mem_limit=memory,
            memswap_limit=memory,
            pids_limit=s.pids_limit,
            nano_cpus=int(s.cpus * 1e9),
            init=True,
            log_config=LogConfig(type="none"),
            ulimits=[
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="nofile", soft=s.nofile_limit, hard=s.nofile_limit),
                Ulimit(name="fsize", soft=s.tmpfs_size_mb << 20, hard=s.tmpfs_size_mb << 20),
            ],
            ipc_mode="private",
            shm_size=f"{s.shm_size_mb}m",
        )
        labels = {
            LABEL_MANAGED: "1",
            LABEL_INSTANCE: self.instance,
            LABEL_OWNER: self.owner,
            LABEL_UID: str(uid),
        }
        if self.cluster_label:
            labels[LABEL_CLUSTER] = self.cluster_label
        if self.settings.instance_name:
            labels[LABEL_NAME] = self.settings.instance_name
        if session_id is not None:
            labels[LABEL_SESSION] = session_id
        return {
            "image": s.sandbox_image,
            "command": ["sleep", "infinity"],
            "user": f"{uid}:{uid}",  # its own: see codex/runtime/docker/uids.py
            "hostname": "sandbox",
            "working_dir": "/tmp",
            # The uid has no passwd entry: USER and LOGNAME answer getpass.getuser().
            "environment": {
                "HOME": "/tmp",
                "USER": "sandbox",
                "LOGNAME": "sandbox",
                "LANG": "C.UTF-8",
                "PYTHONIOENCODING": "utf-8",
            },
            "labels": labels,
            "name": container_name(session_id) if session_id else None,
            "network_disabled": True,
            "use_config_proxy": False,
            "host_config": host_config,
        }

    def create_started(self, session_id: str | None) -> str:
        """A new container, running its idle process; removed again if start fails."""
        api = self.api()
        uid = self.uids.take()
        try:
            container_id: str = api.create_container(**self.container_config(session_id, uid))["Id"]
        except BaseException:
            self.uids.release(uid)
            raise
        self._uid_of[container_id] = uid
        try:
            api.start(container_id)
        except BaseException:
            self.remove_now(container_id)
            raise
        return container_id

    def remove_now(self, container_id: str) -> bool:
        """Remove a container with force (in this thread) and free its uid once gone."""
        gone = remove_quietly(self.api(), container_id)
        if gone:
            uid = self._uid_of.pop(container_id, None)
            if uid is not None:
                self.uids.release(uid)
        return gone

    def _create_exec(self, session_id: str | None, nonce: str) -> tuple[str, str, Any]:
        container_id = self.create_started(session_id)
        try:
            exec_id, stream = self._exec(container_id, nonce)
        except BaseException:
            self.remove_now(container_id)
            raise
        return container_id, exec_id, stream

    def _adopt(self, container_id: str, session_id: str) -> None:
        """Name a pooled container after the session it now serves (labels are fixed
        at creation), so `docker ps` tells whose it is."""
        try:
            self.api().rename(container_id, container_name(session_id))
        except docker.errors.DockerException as exc:
            log.debug("rename %s: %s", container_id[:12], _short(exc))

    def _exec(self, container_id: str, nonce: str) -> tuple[str, Any]:
        api = self.api()
        exec_id: str = api.exec_create(
            container_id,
            supervisor_command(SANDBOX_PYTHON),
            stdin=True,
            tty=True,
            environment={
                "CODEX_NONCE": nonce,
                "CODEX_HARDEN": "1",
                "TERM": "xterm-256color",
            },
            workdir="/tmp",
        )["Id"]
        # The hijacked stream; it holds the HTTP response, whose finalizer would
        # close the socket, so the execution keeps it alive.
        raw = api.exec_start(exec_id, tty=True, socket=True)
        if not isinstance(getattr(raw, "_sock", raw), socket.socket):
            raise SandboxError("the Docker engine's exec stream is not a socket")
        return exec_id, raw


def container_name(session_id: str) -> str:
    return f"codex-{session_id}"


class DockerExecution(Execution):
    def __init__(
        self,
        runtime: DockerRuntime,
        container_id: str,
        exec_id: str,
        stream: Any,
        nonce: str,
        client: str = POOL_LANE,
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
        self._cgroup: CgroupStats | None = None
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
                self._cgroup = CgroupStats.of_pid(self._pid)
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
            log.debug("resize failed: %s", _short(exc))

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
                info.detail = f"the Docker engine failed: {_short(exc)}"
        if self._cgroup is None:
            # The PID lookup lost the race with the end (a busy engine, a quick kill):
            # the container's own cgroup still holds the counters until its removal.
            self._cgroup = CgroupStats.of_container(self.container_id)
        if self._cgroup is not None:
            info.oom_killed = bool(self._cgroup.oom_kills())
            cpu = self._cgroup.cpu_ns()
            if cpu is not None:
                info.cpu_ms = round((cpu - (self._cpu_at_begin or 0)) / 1e6)
            info.memory_peak_bytes = self._cgroup.memory_peak()
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

    async def kill(self) -> None:
        if self._killed or self._closed:
            return
        self._killed = True
        try:
            await self.runtime.call(self.runtime.api().kill, self.container_id)
        except Exception as exc:
            log.debug("kill %s: %s", self.container_id[:12], _short(exc))
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
        if not await self.runtime.remove(self.client, self.container_id):
            # The engine is away (restarting?): remove it once the engine is back.
            self.runtime.unremoved.add(self.container_id)

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
            log.debug("closing an exec stream: %s", _short(exc))
    if response is not None:
        try:
            del stream._response  # the response refers back to the stream
        except AttributeError:
            pass


def remove_quietly(api: docker.APIClient, container_id: str) -> bool:
    """Remove a container with force; True once it is gone (or going)."""
    try:
        api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # removal already in progress: someone else has it
            return True
        log.warning("could not remove container %s: %s", container_id[:12], _short(exc))
        return False
    except Exception as exc:
        log.warning("could not remove container %s: %s", container_id[:12], _short(exc))
        return False
    return True


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
