"""Several instances behind one load balancer, sharing Redis (``redis_url``).

Without ``redis_url`` this module is not used and everything stays in-process.
With it, each instance

- holds a lease, ``codex:instance:<id>``, renewed every third of ``instance_lease``;
- records each session it owns in a directory, ``codex:session:<id>`` (owner, state,
  and the verdict once finished), so any instance can answer for any session;
- listens on ``codex:commands:<id>`` for commands that other instances relay from
  their clients (follow, input, resize, write, cancel, leave).

Socket.IO fan-out rides on python-socketio's own AsyncRedisManager: the owner emits
to a client connected to another instance as if it were local. Rate limits share
Redis through the `limits` library. Neither is home-made here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]

SESSION_RECORD_TTL = 24 * 3600  # seconds a directory entry outlives its session at most


class RemoteSession:
    """A session owned by another instance: what a client asks of it is relayed."""

    def __init__(self, cluster: Cluster, owner: str, session_id: str, sid: str = "") -> None:
        self.cluster = cluster
        self.owner = owner
        self.id = session_id
        self.sid = sid

    async def send_command(self, op: str, **args: Any) -> None:
        await self.cluster.send(
            self.owner, {"op": op, "sessionId": self.id, "sid": self.sid, **args}
        )

    async def send_input(self, text: str) -> None:
        await self.send_command("input", input=text)

    async def write(self, data: bytes) -> None:
        await self.send_command("write", data=data.decode("utf-8", "replace"))

    async def resize(self, rows: int, cols: int, *, wait: bool = False) -> None:
        # `wait` is the owner's business: a relayed resize is applied there.
        await self.send_command("resize", rows=rows, cols=cols)


class Cluster:
    def __init__(self, redis_url: str, instance: str, lease: float) -> None:
        self.instance = instance
        self.lease = lease
        self.redis = aioredis.from_url(redis_url, decode_responses=True)
        self._handler: Handler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: Any = None

    # -- life -----------------------------------------------------------------------------

    async def start(self, handler: Handler) -> None:
        """Take the lease, then listen for commands (before any session exists)."""
        self._handler = handler
        await self._renew()
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self._channel(self.instance))
        self._tasks = [
            asyncio.ensure_future(self._keep_lease()),
            asyncio.ensure_future(self._listen()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            if self._pubsub is not None:
                await self._pubsub.aclose()
            await self.redis.delete(self._lease_key(self.instance))
        await self.redis.aclose()

    # -- leases ---------------------------------------------------------------------------

    async def _renew(self) -> None:
        await self.redis.set(
            self._lease_key(self.instance), str(time.time()), px=int(self.lease * 1000)
        )

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._renew()
            except Exception as exc:  # Redis away for a moment: try again
                log.warning("could not renew the instance lease: %s", exc)

    async def alive(self, instance: str) -> bool:
        return bool(await self.redis.exists(self._lease_key(instance)))

    async def live_instances(self) -> set[str]:
        keys = [key async for key in self.redis.scan_iter("codex:instance:*")]
        return {key.rsplit(":", 1)[1] for key in keys}

    # -- the session directory ------------------------------------------------------------

    async def record(self, session_id: str, state: dict[str, Any]) -> None:
        body = json.dumps({"owner": self.instance, **state})
        await self.redis.set(self._session_key(session_id), body, ex=SESSION_RECORD_TTL)

    async def lookup(self, session_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._session_key(session_id))
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    async def forget(self, session_id: str) -> None:
        await self.redis.delete(self._session_key(session_id))

    async def lost_ending(
        self, session_id: str, record: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The `error` and `execution_complete` payloads that tell a client the session
        died with its instance (recorded once, the same for every client)."""
        result = record.get("result") if record.get("lost") else None
        if result is None:
            result = await self.mark_lost(session_id, record)
        error = {
            "error": "The server running this program stopped; the program is lost.",
            "code": "internal_error",
            "sessionId": session_id,
        }
        return error, result

    async def mark_lost(self, session_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """A session whose owner died: finished, as an internal error, for everyone."""
        result = {
            "sessionId": session_id,
            "status": "internal_error",
            "exitCode": None,
            "signal": None,
            "durationMs": 0,
            "cpuMs": None,
            "memoryPeakBytes": None,
            "outputBytes": 0,
            "truncated": False,
        }
        lost = {**record, "state": "finished", "result": result, "lost": True}
        await self.redis.set(self._session_key(session_id), json.dumps(lost), ex=SESSION_RECORD_TTL)
        return result

    # -- commands between instances -----------------------------------------------------------

    async def send(self, instance: str, command: dict[str, Any]) -> None:
        await self.redis.publish(self._channel(instance), json.dumps(command))

    async def _listen(self) -> None:
        assert self._pubsub is not None and self._handler is not None
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                command = json.loads(message["data"])
                if isinstance(command, dict):
                    await self._handler(command)
            except Exception:
                log.exception("a command from another instance failed")

    # -- terminal streams relayed from the owner ---------------------------------------------

    async def publish(self, channel: str, message: list[Any]) -> None:
        await self.redis.publish(f"codex:relay:{channel}", json.dumps(message))

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[Any]:
        """A relay channel, subscribed before the owner is asked to publish on it."""
        pubsub: Any = self.redis.pubsub()
        await pubsub.subscribe(f"codex:relay:{channel}")
        try:
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    @staticmethod
    def _channel(instance: str) -> str:
        return f"codex:commands:{instance}"

    @staticmethod
    def _lease_key(instance: str) -> str:
        return f"codex:instance:{instance}"

    @staticmethod
    def _session_key(session_id: str) -> str:
        return f"codex:session:{session_id}"
