"""The sessions of this server: created here, found by id, capped, forgotten.

A finished session is kept for late joins and GETs, but not without bound: beyond
``max_finished_sessions``, or beyond the memory budget of all of them
(``finished_memory_mb``), the oldest go first; the rest go after ``session_ttl``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from codex.cluster.directory import Cluster
from codex.config import Settings
from codex.errors import RateLimited, RuntimeUnavailable, SessionNotFound, Unavailable
from codex.identity.credentials import Identity
from codex.identity.guard import Guard
from codex.languages import check_policy, check_syntax
from codex.metrics import Metrics
from codex.runtime.base import Runtime
from codex.runtime.job import Collect, JobFile, JobOptions
from codex.sessions.admission import RateLimiter, check_room, client_ip, parse_networks
from codex.sessions.session import Session
from codex.sessions.waitlist import Waitlist
from codex.tasks import Tasks
from codex.wire import QUEUED, RUNNING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """A request's own limits, each at most the server's (None: the server's)."""

    time_limit: float | None = None
    memory_limit_mb: int | None = None
    output_limit_bytes: int | None = None

    def applied(self, s: Settings) -> Settings:
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return dataclasses.replace(s, **given) if given else s


def identity_limits(limits: Limits, identity: Identity) -> Limits:
    """The request's limits, lowered further by the identity's (never raised)."""

    def lowest(mine: float | None, theirs: float | None) -> float | None:
        given = [x for x in (mine, theirs) if x is not None]
        return min(given) if given else None

    memory = lowest(limits.memory_limit_mb, identity.memory_limit_mb)
    return Limits(
        lowest(limits.time_limit, identity.time_limit),
        int(memory) if memory is not None else None,
        limits.output_limit_bytes,
    )


@dataclass(frozen=True)
class ExecuteRequest:
    code: str
    language: str = "python"
    stdin: str = ""
    rows: int | None = None  # the client's terminal size, if it knows it already
    cols: int | None = None
    files: tuple[JobFile, ...] = ()
    args: tuple[str, ...] = ()
    interactive: bool = False
    limits: Limits = Limits()


class SessionRegistry:
    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.limiter = RateLimiter(settings)
        self.guard = Guard(settings, self.limiter)  # who requests come from, if anyone asks
        self.cluster: Cluster | None = None  # set by the app when redis_url is given
        self.accepting = True
        self.metrics = Metrics()
        self.metrics.watch(
            active=lambda: self.running,
            pool=runtime.pool_stats,
            rate_limited=lambda: self.limiter.rejections,
        )
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self._sessions: dict[str, Session] = {}
        # Admitted and not finished, counted as they come and go: a create must not
        # walk every finished session kept for replay (thousands under churn).
        self._live: set[str] = set()
        self._live_per_client: Counter[str] = Counter()
        self.waitlist: Waitlist[Session] = Waitlist(settings.queue_max)  # beyond max_sessions
        # Socket.IO connections and terminal WebSockets open now, per client address.
        self.open_clients: Counter[str] = Counter()
        self.tasks = Tasks("registry")  # directory updates
        self._finished_order: deque[str] = deque()
        self._finished_chars: dict[str, int] = {}  # what each finished session holds
        self._retained = 0  # their sum
        runtime.set_headroom(lambda: settings.max_sessions - self.running)
        runtime.set_demand(lambda: max(0, sum(self.open_clients.values()) - self.running))

    @property
    def running(self) -> int:
        """Executions that hold a slot (queued ones wait for one)."""
        return len(self._live) - len(self.waitlist)

    def _count_in(self, session: Session) -> None:
        self._live.add(session.id)
        self._live_per_client[session.client] += 1

    def _count_out(self, session: Session) -> None:
        if session.id in self._live:
            self._live.discard(session.id)
            self._live_per_client[session.client] -= 1
            if self._live_per_client[session.client] <= 0:
                del self._live_per_client[session.client]

    def get(self, session_id: object) -> Session:
        session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None:
            raise SessionNotFound("No session has that id (it may have expired).")
        return session

    def client_of(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self.trusted_proxies)

    async def admit(
        self, action: str, client: str, identity: Identity | None = None
    ) -> dict[str, str]:
        """Count an `execute` or `join` by this client (an identity's subject when there
        is one, else an address); RateLimited over the limit."""
        who = identity.subject if identity is not None else client
        headers = await self.limiter.hit(action, who)
        if identity is not None and identity.executions_per_minute and action == "execute":
            await self.limiter.hit_rate(action, who, identity.executions_per_minute)
        return headers

    async def create(
        self, request: ExecuteRequest, client: str = "local", identity: Identity | None = None
    ) -> Session:
        """A session for a validated request (codex.api.requests): started, or
        finished at once if the program does not compile (no container for that).
        With an identity, it is theirs, within their limits, and counted as theirs."""
        limits = request.limits if identity is None else identity_limits(request.limits, identity)
        s = limits.applied(self.settings)
        problem = check_syntax(request.code, request.language)
        if problem is None:
            check_policy(request.code, s.forbidden_imports, s.forbidden_calls)
        session = Session(
            s,
            self.runtime,
            request.code,
            request.language,
            request.stdin,
            on_finish=self._finished,
            metrics=self.metrics,
        )
        session.client = client if identity is None else identity.subject
        session.creator = identity.subject if identity is not None else None
        session.job = JobOptions(
            request.files,
            request.args,
            request.interactive,
            limits.memory_limit_mb or 0,
            Collect(s.files_out_max_count, s.files_out_max_bytes, s.files_out_total_bytes),
        )
        if request.rows and request.cols:
            session.set_initial_size(request.rows, request.cols)
        if problem is not None:
            session.finish_without_running(problem)
            self._sessions[session.id] = session
            return session
        if await self._admit_run(session):
            session.queued(self.waitlist.add(session.id, session))
            log.info("session %s queued, %d in line", session.id[:8], len(self.waitlist))
        else:
            session.start()
        return session

    async def _admit_run(self, session: Session) -> bool:
        """Count the session in; True if it must wait in the queue for a slot."""
        # Every await comes before the caps are checked: between the checks and the
        # session counting, nothing may let another create through.
        ready = await self.runtime.readiness()
        if not ready.ready:
            raise RuntimeUnavailable(f"Programs cannot run now: {ready.reason}.")
        mine = self._live_per_client[session.client]
        try:
            wait = check_room(
                self.settings,
                accepting=self.accepting,
                running=self.running,
                mine=mine,
                queued=len(self.waitlist),
            )
            self.runtime.admit(session.client)  # a paced network's queue may be full
        except RateLimited:
            self.limiter.rejections += 1
            raise
        self._sessions[session.id] = session  # counts from here on
        self._count_in(session)
        if self.cluster is not None:
            try:
                await self.cluster.record(session.id, self._record(session, RUNNING))
            except Exception as exc:
                # A Redis failure must not leave a session that holds capacity and
                # never runs.
                del self._sessions[session.id]
                self._count_out(session)
                raise Unavailable(f"The shared session directory failed: {exc}") from exc
        return wait

    async def remote_record(self, session_id: object) -> dict[str, Any]:
        """The directory entry of a session another instance owns."""
        record = None
        if self.cluster is not None and isinstance(session_id, str):
            record = await self.cluster.lookup(session_id)
        if record is None or record.get("owner") == getattr(self.cluster, "instance", None):
            raise SessionNotFound("No session has that id (it may have expired).")
        return record

    def _next_in_line(self) -> None:
        """Start the first queued executions while slots are free; tell the rest their
        new place."""
        started = 0
        while self.accepting and self.running < self.settings.max_sessions:
            session = self.waitlist.pop()
            if session is None:
                break
            session.start()
            started += 1
        if started:
            for position, waiting in self.waitlist.positions():
                waiting.queued(position)

    def _finished(self, session: Session) -> None:
        self._count_out(session)
        if self.waitlist.discard(session.id):  # cancelled while it waited
            for position, waiting in self.waitlist.positions():
                waiting.queued(position)
        self._next_in_line()
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.session_ttl, self._expire, session.id)
        self._finished_order.append(session.id)
        self._finished_chars[session.id] = session.retained_chars
        self._retained += session.retained_chars
        budget = self.settings.finished_memory_mb * 1024 * 1024
        while self._finished_order and (
            len(self._finished_order) > self.settings.max_finished_sessions
            or (self._retained > budget and len(self._finished_order) > 1)
        ):
            self._expire(self._finished_order.popleft())
        if self.cluster is not None:
            self.tasks.spawn(self.cluster.record(session.id, self._record(session)))

    @staticmethod
    def _record(session: Session, state: str | None = None) -> dict[str, Any]:
        """What the shared directory knows of a session (with its owner, added there)."""
        record: dict[str, Any] = {"state": state or session.state}
        if state is None:
            record["result"] = session.result
        if session.creator is not None:
            record["creator"] = session.creator  # whose it is, for the other servers
        return record

    def _expire(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._retained -= self._finished_chars.pop(session_id, 0)
            session.release()
        if self.cluster is not None:
            self.tasks.spawn(self.cluster.forget(session_id))

    async def drain(self, grace: float) -> None:
        """Stop taking executions; let running ones finish for up to ``grace``
        seconds; then cancel the rest, saying why."""
        self.accepting = False
        for session in [s for s in self._sessions.values() if s.state == QUEUED]:
            session.cancel("The server is shutting down; run the program again.")
        running = [
            asyncio.ensure_future(s.wait()) for s in self._sessions.values() if not s.finished
        ]
        if running:
            await asyncio.wait(running, timeout=grace)
        await self.shutdown()

    async def shutdown(self) -> None:
        self.accepting = False
        sessions = list(self._sessions.values())
        for session in sessions:
            session.cancel("The server is shutting down.")
        # Finished sessions may still be removing their container: wait for that too.
        await asyncio.gather(*(s.wait() for s in sessions), return_exceptions=True)
        await self.tasks.wait()  # the directory learns how they ended
