"""Several instances behind one load balancer, sharing Redis (``redis_url``).

Without ``redis_url`` this module is not used and everything stays in-process.
With it, each instance

- holds a lease, ``codex:instance:<id>``, renewed every third of ``instance_lease``;
- records each session it owns in a directory, ``codex:session:<id>`` (owner, state,
  and the verdict once finished), so any instance can answer for any session;
- listens on ``codex:commands:<id>`` for the commands (codex.cluster.commands) that
  other instances send for their clients, and streams a session's log to a follower
  elsewhere on ``codex:relay:<channel>`` (codex.cluster.locator).

Rate limits share Redis through the `limits` library, not through this module.
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

from codex.cluster.commands import Command, Relayed, decode_command, decode_relayed, encode
from codex.wire import FINISHED, INTERNAL_ERROR, result_object

log = logging.getLogger(__name__)

Handler = Callable[[Command], Awaitable[None]]

SESSION_RECORD_TTL = 24 * 3600  # seconds a directory entry outlives its session at most


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
            "code": INTERNAL_ERROR,
            "sessionId": session_id,
        }
        return error, result

    async def mark_lost(self, session_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """A session whose owner died: finished, as an internal error, for everyone."""
        result = result_object(session_id, INTERNAL_ERROR)
        lost = {**record, "state": FINISHED, "result": result, "lost": True}
        await self.redis.set(self._session_key(session_id), json.dumps(lost), ex=SESSION_RECORD_TTL)
        return result

    # -- commands between instances -----------------------------------------------------------

    async def send(self, instance: str, command: Command) -> None:
        await self.redis.publish(self._channel(instance), encode(command))

    async def _listen(self) -> None:
        assert self._pubsub is not None and self._handler is not None
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            command = decode_command(message["data"])
            if command is None:
                continue  # decode_command said why
            try:
                await self._handler(command)
            except Exception:
                log.exception("a command from another instance failed")

    # -- a session's log relayed from its owner ------------------------------------------------

    async def publish(self, channel: str, message: Relayed) -> int:
        """Publish on a relay channel; the number of followers that got it (0: gone)."""
        receivers = await self.redis.publish(f"codex:relay:{channel}", encode(message))
        return int(receivers)

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[Subscription]:
        """A relay channel, subscribed before the owner is asked to publish on it."""
        pubsub: Any = self.redis.pubsub()
        await pubsub.subscribe(f"codex:relay:{channel}")
        try:
            subscription = Subscription(pubsub)
            await subscription.confirmed()
            yield subscription
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


class Subscription:
    """The follower's end of a relay channel: decoded messages, in order."""

    CONFIRM_WAIT = 5.0  # seconds to wait for Redis to confirm the subscription

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def confirmed(self) -> None:
        # The owner stops relaying when nobody receives what it publishes, so the
        # subscription must be in place before it is asked to start.
        deadline = time.monotonic() + self.CONFIRM_WAIT
        while time.monotonic() < deadline:
            raw = await self._pubsub.get_message(timeout=deadline - time.monotonic())
            if raw is not None and raw.get("type") == "subscribe":
                return
        log.warning("Redis did not confirm a relay subscription in %g s", self.CONFIRM_WAIT)

    async def next(self, timeout: float) -> Relayed | None:
        """The next message; None if none came within ``timeout`` seconds."""
        while True:
            raw = await self._pubsub.get_message(timeout=timeout)
            if raw is None:
                return None
            if raw.get("type") != "message":
                continue
            message = decode_relayed(raw["data"])
            if message is not None:
                return message
