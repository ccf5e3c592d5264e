"""In-memory stand-ins for the engine, the kernel's view of a read, and Redis.

No Docker, no network, no processes. :class:`FakeExecution` is a real
:class:`~codex.runtime.base.Execution`: it speaks the supervisor's protocol (the
`ready`, `go`, `sync` and result records) into the base class's own scanner, so what
the session sees is what a backend would hand it. The test plays the program:

    ex = await runtime.next_execution()
    ex.emit(b"Name: ")
    ex.block_on_input()          # the kernel would now say: it reads its terminal
    await ex.typed_line()        # what the session typed
    ex.exit(0)                   # the supervisor's result record, then the stream ends

:class:`FakeDetector` stands in for ``ProcDetector`` (the watcher builds one from the
execution's root pid): it reports the fake program's read. :class:`FakeRedis` holds
keys and pub/sub channels in a dict, enough for :class:`codex.cluster.directory.Cluster`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from codex.runtime.base import (
    ExecSpec,
    Execution,
    ExitInfo,
    Readiness,
    Runtime,
    exit_info_from_record,
)
from codex.runtime.protocol import RESULT_END, RESULT_OSC, new_nonce

# -- everything this file needs from codex, in one place (modules are about to move) ------
from codex.sessions.input.detector import Block

WAIT = 2.0  # seconds any single wait of a test may take before it fails
READ_SIZE = 65536  # the most one read of the terminal returns (the local backend's)


def run(scenario: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
    """Run one test's coroutine on a fresh loop, bounded; then cancel what it left
    running, bounded too (asyncio.run would wait forever for a task that swallows
    its cancellation) and fail if something would not stop."""
    loop = asyncio.new_event_loop()
    stuck: list[asyncio.Task[Any]] = []
    try:
        return loop.run_until_complete(asyncio.wait_for(scenario(), timeout))
    finally:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=1.0))
        stuck = [t for t in left if not t.done()]
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        if stuck and sys.exc_info()[0] is None:
            raise AssertionError(f"tasks that would not stop when cancelled: {stuck}")


async def eventually(
    condition: Callable[[], object], timeout: float = WAIT, what: str = ""
) -> None:
    """Return once ``condition()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.002)


async def settle(steps: int = 10) -> None:
    """Let every ready callback run a few times (no wall time passes)."""
    for _ in range(steps):
        await asyncio.sleep(0)


# Above Linux's pid_max (2**22): never a real process, so nothing can reach one through
# /proc even if a real detector or a real terminal write were tried with it.
_pids = itertools.count(5_000_000)


class FakeExecution(Execution):
    """One fake program on a fake terminal. Bytes the test pushes come out of the
    base class's ``output()``; bytes the session sends are recorded (the first send is
    the job, as ``begin`` writes it)."""

    def __init__(self, spec: ExecSpec, *, echo: bool = True) -> None:
        super().__init__(new_nonce())
        self.spec = spec
        self.pid = next(_pids)
        self.echo = echo  # a terminal in canonical mode echoes what is typed
        self._chunks: deque[bytes] = deque()  # pushed, not read yet; b"" ends the stream
        self._arrived = asyncio.Event()
        self._typed_changed = asyncio.Event()
        self.job: bytes | None = None
        self.typed = bytearray()  # typed after the job, in order (typed_line() consumes)
        self.resizes: list[tuple[int, int]] = []
        self.kills = 0
        self.closed = False
        self.ended = False  # the stream's end was pushed
        self.oom_killed = False
        self.cpu: float | None = None  # what cpu_seconds() reports (None: unknown)
        self.sync_works = True  # False: the terminal refuses the sync record
        # The kernel's view, for FakeDetector: blocked in a read of the terminal?
        self.reading = False
        self.password = False  # echo off while it reads (getpass)
        self.reads = 0  # counts sleeps: a new read is a new Block
        self.detector_usable = True

    # -- what the test does (the program's side) ------------------------------------------

    def ready(self) -> None:
        self.record(b"ready")

    def go(self) -> None:
        self.record(b"go")

    def emit(self, data: bytes) -> None:
        assert not self.ended, "the program has ended"
        self._push(data)

    def block_on_input(self, *, password: bool = False) -> None:
        self.reading, self.password = True, password

    def stop_reading(self) -> None:
        """The read ended without input (a signal, a timeout)."""
        self.reading = False
        self.reads += 1

    def exit(
        self,
        code: int | None = 0,
        *,
        error: dict[str, Any] | None = None,
        signal: str | None = None,
        oom_killed: bool = False,
    ) -> None:
        """The supervisor's result record, then the end of the stream."""
        self.oom_killed = oom_killed
        record = {"exitCode": code, "signal": signal, "error": error}
        self.record(json.dumps(record).encode())
        self.end()

    def end(self) -> None:
        """The stream ends, with no result record unless one was pushed (a crash)."""
        if not self.ended:
            self.ended = True
            self.reading = False
            self._push(b"")

    @property
    def unread(self) -> int:
        """Chunks pushed that the session has not read yet."""
        return len(self._chunks)

    async def typed_line(self, timeout: float = WAIT) -> bytes:
        """Wait for a whole line typed by the session; return (and consume) it."""

        async def line() -> bytes:
            while b"\n" not in self.typed:
                self._typed_changed.clear()
                await self._typed_changed.wait()
            at = self.typed.index(b"\n") + 1
            got = bytes(self.typed[:at])
            del self.typed[:at]
            return got

        return await asyncio.wait_for(line(), timeout)

    def record(self, body: bytes) -> None:
        self.emit(RESULT_OSC + self.nonce.encode() + b";" + body + RESULT_END)

    def _push(self, data: bytes) -> None:
        self._chunks.append(data)
        self._arrived.set()

    # -- the Execution interface (the runtime's side) ------------------------------------

    async def _recv(self) -> bytes:
        while not self._chunks:
            self._arrived.clear()
            await self._arrived.wait()
        return self._chunks.popleft()

    def _recv_now(self) -> bytes:
        # What one non-blocking read would return: what is there, short of the end,
        # up to a read's size (whole chunks only, to keep the fake simple).
        got = b""
        while self._chunks and self._chunks[0] and len(got) + len(self._chunks[0]) <= READ_SIZE:
            got += self._chunks.popleft()
        return got

    async def _send(self, data: bytes) -> None:
        if self.closed or self.ended:
            return  # the program is gone: dropped, as the interface says
        if self.job is None:
            self.job = data
            return
        self.typed += data
        self._typed_changed.set()
        if self.echo:
            self._push(data.replace(b"\n", b"\r\n"))
        if self.reading and (b"\n" in data or b"\r" in data or b"\x04" in data):
            self.stop_reading()  # a completed line satisfies a canonical read

    def _write_sync(self, number: int) -> bool:
        # The base class writes the record through /proc/<pid>/fd/0; here it joins the
        # stream behind what was pushed, which is what the real terminal guarantees.
        # The base class's output() and _wake_syncs() then resolve it.
        if self.ended or not self.sync_works:
            return False
        self.record(b"sync:%d" % number)
        return True

    async def resize(self, rows: int, cols: int) -> None:
        self.resizes.append((rows, cols))

    async def wait(self) -> ExitInfo:
        if self.scanner.result is not None:
            info = exit_info_from_record(self.scanner.result)
        else:
            info = ExitInfo(detail="the fake sandbox ended without a result")
        info.oom_killed = self.oom_killed
        return info

    async def kill(self) -> None:
        self.kills += 1
        self.end()  # the program and its supervisor die: the stream ends, no record

    async def close(self) -> None:
        self.closed = True
        self.end()

    def root_pid(self) -> int | None:
        return self.pid

    def cpu_seconds(self) -> float | None:
        return self.cpu


class FakeRuntime(Runtime):
    """Makes FakeExecutions. ``hold()`` makes starts wait (an engine queue) before
    anything is made; ``auto_go``: the supervisor says `go` as soon as the job is in."""

    name = "fake"
    instance = "fake-instance"

    def __init__(self, *, auto_go: bool = True, echo: bool = True) -> None:
        self.auto_go = auto_go
        self.echo = echo
        self.specs: list[ExecSpec] = []  # every start asked for
        self.executions: list[FakeExecution] = []  # every execution made
        self.by_pid: dict[int, FakeExecution] = {}
        self.starts_cancelled = 0  # starts cancelled while held, before anything existed
        self.fail: Exception | None = None  # the next starts raise this
        self.readiness_result = Readiness(True, detector="proc")
        self.readiness_gate: asyncio.Event | None = None  # readiness() waits for it
        self.headroom: Callable[[], int] | None = None
        self.after_start: Callable[[], None] | None = None  # call_soon'd as start returns
        self._gate: asyncio.Event | None = None
        self._made: asyncio.Queue[FakeExecution] = asyncio.Queue()

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()

    async def next_execution(self, timeout: float = WAIT) -> FakeExecution:
        return await asyncio.wait_for(self._made.get(), timeout)

    def detector(self, root_pid: int) -> FakeDetector:
        """A ProcDetector stand-in, built as the watcher builds the real one."""
        return FakeDetector(self.by_pid.get(root_pid))

    async def start(self, spec: ExecSpec) -> Execution:
        self.specs.append(spec)
        if self._gate is not None:
            try:
                await self._gate.wait()
            except asyncio.CancelledError:
                self.starts_cancelled += 1
                raise
        if self.fail is not None:
            raise self.fail
        execution = FakeExecution(spec, echo=self.echo)
        self.executions.append(execution)
        self.by_pid[execution.pid] = execution
        execution.ready()
        await execution.prepare(timeout=WAIT)
        await execution.begin(spec)
        if self.auto_go:
            execution.go()
        self._made.put_nowait(execution)
        if self.after_start is not None:
            asyncio.get_running_loop().call_soon(self.after_start)
        return execution

    async def readiness(self) -> Readiness:
        if self.readiness_gate is not None:
            await self.readiness_gate.wait()
        return self.readiness_result

    def set_headroom(self, headroom: Callable[[], int]) -> None:
        self.headroom = headroom


class FakeDetector:
    """A Detector (codex.sessions.input.watcher: name, usable, poll, still, echo_on)
    over a fake program: it waits for input exactly while the test says it reads."""

    name = "proc"

    def __init__(self, execution: FakeExecution | None) -> None:
        self.execution = execution
        self.polls = 0

    @property
    def usable(self) -> bool:
        return self.execution is not None and self.execution.detector_usable

    def _block(self) -> Block | None:
        ex = self.execution
        if ex is None or not ex.reading:
            return None
        return Block(ex.pid, ex.pid, 0, ex.reads)

    def poll(self) -> Block | None:
        self.polls += 1
        return self._block()

    def still(self, block: Block) -> bool:
        return self._block() == block

    def echo_on(self) -> bool | None:
        return None if self.execution is None else not self.execution.password


# -- Redis --------------------------------------------------------------------------------


class FakeRedis:
    """Keys with expiry and pub/sub channels, in memory: what Cluster calls of
    ``redis.asyncio.Redis`` (decode_responses=True: strings in, strings out). Several
    clients share one FakeRedis.Server, as instances share one Redis."""

    class Server:
        def __init__(self) -> None:
            self.data: dict[str, tuple[str, float | None]] = {}
            self.subscribers: dict[str, list[FakePubSub]] = {}
            self.calls: list[tuple[str, Any]] = []  # (command, its key or channel)
            self.fail: dict[str, Exception] = {}  # command -> raise this, once

    def __init__(self, server: FakeRedis.Server | None = None) -> None:
        self.server = server or FakeRedis.Server()
        self.closed = False

    def _note(self, command: str, key: Any) -> None:
        self.server.calls.append((command, key))
        failure = self.server.fail.pop(command, None)
        if failure is not None:
            raise failure

    def _live(self, key: str) -> str | None:
        item = self.server.data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and time.monotonic() >= expires:
            del self.server.data[key]
            return None
        return value

    def ttl_of(self, key: str) -> float | None:
        """Seconds left before ``key`` expires (None: no expiry or no key)."""
        item = self.server.data.get(key)
        if item is None or item[1] is None:
            return None
        return item[1] - time.monotonic()

    async def set(self, key: str, value: str, *, ex: float | None = None, px: int | None = None):
        self._note("set", key)
        ttl = ex if ex is not None else (px / 1000 if px is not None else None)
        self.server.data[key] = (str(value), time.monotonic() + ttl if ttl else None)
        return True

    async def get(self, key: str) -> str | None:
        self._note("get", key)
        return self._live(key)

    async def delete(self, *keys: str) -> int:
        self._note("delete", keys)
        return sum(1 for k in keys if self.server.data.pop(k, None) is not None)

    async def exists(self, *keys: str) -> int:
        self._note("exists", keys)
        return sum(1 for k in keys if self._live(k) is not None)

    async def scan_iter(self, match: str = "*") -> AsyncIterator[str]:
        self._note("scan_iter", match)
        for key in list(self.server.data):
            if fnmatch.fnmatchcase(key, match) and self._live(key) is not None:
                yield key

    async def publish(self, channel: str, message: str) -> int:
        self._note("publish", channel)
        receivers = list(self.server.subscribers.get(channel, []))
        for pubsub in receivers:
            pubsub.queue.put_nowait({"type": "message", "channel": channel, "data": message})
        return len(receivers)

    def pubsub(self) -> FakePubSub:
        return FakePubSub(self.server)

    async def aclose(self) -> None:
        self.closed = True


class FakePubSub:
    def __init__(self, server: FakeRedis.Server) -> None:
        self.server = server
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.channels: list[str] = []
        self.closed = False

    async def subscribe(self, *channels: str) -> None:
        for channel in channels:
            self.server.subscribers.setdefault(channel, []).append(self)
            self.channels.append(channel)
            self.queue.put_nowait({"type": "subscribe", "channel": channel, "data": 1})

    async def get_message(self, timeout: float = 0.0) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout or 0.001)
        except TimeoutError:
            return None

    async def listen(self) -> AsyncIterator[dict[str, Any]]:
        while not self.closed:
            yield await self.queue.get()

    async def aclose(self) -> None:
        self.closed = True
        for channel in self.channels:
            with_me = self.server.subscribers.get(channel, [])
            if self in with_me:
                with_me.remove(self)
