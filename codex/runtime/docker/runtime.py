"""Docker backend: one hardened, single-use container per execution.

The container's own process is an idle ``sleep`` under Docker's init; the program runs
in a TTY-allocated ``docker exec`` (codex.runtime.docker.execution). Every blocking SDK
call goes to a thread pool, and every create and removal waits its turn in the engine
gate. An execution ends by removing its container with force, which kills whatever the
program left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
from codex.config import Settings
from codex.identity.credentials import is_learner
from codex.runtime.base import ExecSpec, Execution, Readiness, Runtime
from codex.runtime.docker import engine, hardening
from codex.runtime.docker.demand import Demand
from codex.runtime.docker.engine import short
from codex.runtime.docker.execution import DockerExecution, close_stream, open_exec
from codex.runtime.docker.gate import EngineGate
from codex.runtime.docker.host_limits import ensure_room
from codex.runtime.docker.labels import (
    cluster_label,
    container_labels,
    container_name,
    labelled_uids,
)
from codex.runtime.docker.owner import identity
from codex.runtime.docker.pace import Pacer
from codex.runtime.docker.pool import POOL_LANE, ContainerPool
from codex.runtime.docker.reaper import Reaper
from codex.runtime.docker.uids import UidAllocator
from codex.runtime.protocol import new_nonce
from codex.tasks import Tasks

log = logging.getLogger(__name__)

T = TypeVar("T")


def _pool(runtime: DockerRuntime, s: Settings) -> ContainerPool[DockerExecution] | None:
    if s.pool_size <= 0:
        return None
    demand = Demand(s.pool_size, s.pool_max, s.pool_memory_mb << 20, s.pool_linger)
    pacer = Pacer(s.pool_paced_rate, 1, s.pool_paced_waiting)

    def paced_after(client: str) -> float:
        # A learner signed in is one person: no class's burst to leave room for.
        return s.pool_paced_after_learner if is_learner(client) else s.pool_paced_after

    return ContainerPool(runtime, s.pool_size, s.pool_share_window, demand, pacer, paced_after)


def _adopt(api: docker.APIClient, container_id: str, session_id: str) -> None:
    """Name a pooled container after the session it now serves (labels are fixed at
    creation), so `docker ps` tells whose it is."""
    try:
        api.rename(container_id, container_name(session_id))
    except docker.errors.DockerException as exc:
        log.debug("rename %s: %s", container_id[:12], short(exc))


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = uuid.uuid4().hex[:12]
        self.owner = identity()
        self.cluster_label = cluster_label(settings.redis_url)
        self._threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker")
        self._api: docker.APIClient | None = None
        self._ready_cache: tuple[float, Readiness] | None = None
        self.tasks = Tasks("docker runtime")  # closes and removals: run to their end
        self.uids = UidAllocator(settings.sandbox_uid_base)
        self._uid_of: dict[str, int] = {}  # container id -> the uid it runs as
        self.oci_runtime = ""  # chosen at startup (hardening.choose_oci_runtime)
        self.reaper = Reaper(self.api, settings.instance_name, self._release_uid)
        # Every create and removal waits here: one fair path to the engine.
        self.gate = EngineGate(settings.engine_concurrency, unlimited=POOL_LANE)
        self.pool: ContainerPool[DockerExecution] | None = _pool(self, settings)

    # -- plumbing ---------------------------------------------------------------------

    def api(self) -> docker.APIClient:
        if self._api is None:
            self._api = engine.connect(self.settings)
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
            return Readiness(False, f"the Docker engine does not answer ({short(exc)})")
        result = engine.image_readiness(api, self.settings.sandbox_image)
        if result.ready:
            self.reaper.retry_unremoved()  # the engine is back: finish the job
        return result

    async def startup(self) -> None:
        try:
            removed = await self.call(self.reaper.sweep)
        except Exception as exc:
            log.warning("could not sweep old containers: %s", short(exc))
            return
        if removed:
            log.info("removed %d container(s) left by a previous run", removed)
        try:
            in_use = await self.call(lambda: labelled_uids(self.api()))
        except Exception as exc:
            log.warning("could not list the uids of other servers' sandboxes: %s", short(exc))
        else:
            # Another server on this engine may have drawn the same block.
            self.uids = UidAllocator(self.settings.sandbox_uid_base, in_use)
        self.oci_runtime = await self.call(
            engine.pick_oci_runtime, self.api(), self.settings, self._trial
        )
        ensure_room(self.settings)
        if self.pool is not None:
            await self.readiness()  # records the image the pooled containers come from
            self.pool.start()

    def set_headroom(self, headroom: Callable[[], int]) -> None:
        if self.pool is not None:
            self.pool.headroom = headroom

    def set_demand(self, idle_clients: Callable[[], int]) -> None:
        if self.pool is not None:
            self.pool.demand.idle_clients = idle_clients

    def admit(self, client: str) -> None:
        if self.pool is not None:
            self.pool.admit(client)

    def pool_stats(self) -> tuple[int, int, int, int]:
        if self.pool is None:
            return (0, 0, 0, 0)
        return (self.pool.ready, self.pool.hits, self.pool.misses, self.pool.pacer.paced)

    async def reap_dead_peers(self, live: set[str]) -> None:
        if not self.cluster_label:
            return
        removed = await self.call(self.reaper.reap_peers, self.cluster_label, live)
        if removed:
            log.info("removed %d sandbox(es) of instances whose lease ran out", removed)

    async def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.stop()
            # Their removals go through the thread pool, which is shut down below.
            await self.pool.closed()
        # A create still in the thread pool, a close or removal under way: each ends
        # (or is undone) before the sweep, or it could leave a container behind it.
        await self.gate.settle(self.settings.docker_timeout)
        await self.tasks.wait(self.settings.docker_timeout)
        try:
            await self.call(self.reaper.sweep, self.instance)
        except Exception as exc:
            log.warning("could not remove containers at shutdown: %s", short(exc))
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
            self._spawn(self.call(_adopt, self.api(), warm.container_id, spec.session_id))
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
        except (docker.errors.DockerException, OSError) as exc:
            if not isinstance(exc, docker.errors.ImageNotFound):
                self._ready_cache = None  # the engine may be down: ask it again
            raise engine.start_failure(exc, self.settings.sandbox_image) from exc
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
                self._threads, self.reaper.remove_now, container_id
            )

        # A removal is as urgent as a start: a session's container must be gone
        # within 2 s of its end (the program is killed at once, not through here).
        gone = await asyncio.shield(self._spawn(self.gate.run(client, removal)))
        if not gone:
            # The engine is away (restarting?): remove it once the engine is back.
            self.reaper.unremoved.add(container_id)
        return gone

    async def _discard(self, client: str, container_id: str, stream: Any) -> None:
        """Undo a creation nobody waits for any more: close its stream, remove it."""
        close_stream(stream)
        await self.remove(client, container_id)

    def _spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run work to its end, held here (the loop keeps only weak references)."""
        return self.tasks.spawn(work)

    # -- in the thread pool ----------------------------------------------------------------

    def create_started(self, session_id: str | None) -> str:
        """A new container, running its idle process; removed again if start fails."""
        api = self.api()
        uid = self.uids.take()
        try:
            labels = self._labels(uid, session_id)
            config = hardening.container_config(
                api, self.settings, uid, labels, session_id, self.oci_runtime
            )
            container_id: str = api.create_container(**config)["Id"]
        except BaseException:
            self.uids.release(uid)
            raise
        self._uid_of[container_id] = uid
        try:
            api.start(container_id)
        except BaseException:
            self.reaper.remove_now(container_id)
            raise
        return container_id

    def _trial(self, oci_runtime: str) -> None:
        self.oci_runtime = oci_runtime  # one idle sandbox, removed at once; raises if it fails
        self.reaper.remove_now(self.create_started(None))

    def _labels(self, uid: int, session_id: str | None) -> dict[str, str]:
        cluster, name = self.cluster_label, self.settings.instance_name
        return container_labels(self.instance, self.owner, uid, cluster, name, session_id)

    def _release_uid(self, container_id: str) -> None:
        uid = self._uid_of.pop(container_id, None)
        if uid is not None:
            self.uids.release(uid)

    def _create_exec(self, session_id: str | None, nonce: str) -> tuple[str, str, Any]:
        container_id = self.create_started(session_id)
        try:
            exec_id, stream = open_exec(self.api(), container_id, nonce)
        except BaseException:
            self.reaper.remove_now(container_id)
            raise
        return container_id, exec_id, stream
