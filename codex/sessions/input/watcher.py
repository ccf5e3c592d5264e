"""When to ask whether a session's program waits for its terminal, and what to tell the
session.

:class:`InputWatcher` asks a :class:`Detector` (the kernel's view:
:class:`codex.sessions.input.detector.ProcDetector`) often right after activity and
rarely while nothing happens, charges each poll's CPU time against the session's share
of the server, syncs the program's output before announcing a wait, and withdraws an
announcement whose wait ended by other means. Where no detector is usable it falls back
to :func:`heuristic_waiting`. It tells the session through a :class:`WaitSink`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from codex.sessions.input import sweep
from codex.sessions.input.detector import Block, ProcDetector


class Detector(Protocol):
    """What the watcher needs from the kernel's view of one execution."""

    name: str

    @property
    def usable(self) -> bool:
        """This execution's processes can be seen (else: the heuristic)."""

    def poll(self) -> Block | None:
        """The first task found waiting on the session's terminal, if any."""

    def still(self, block: Block) -> bool:
        """Is this task still in the same wait?"""

    def echo_on(self) -> bool | None:
        """The terminal's ECHO flag (off: a password is read), or None if unknown."""


HEURISTIC_QUIET_SECONDS = 0.3


def heuristic_waiting(prompt: str, quiet_for: float) -> bool:
    """The fallback when the processes cannot be seen: output went quiet for a while
    on a line that does not end in a newline. It misses prompts that end in a newline
    (``input()`` after ``print("Name:")``) and fires for a program that prints a partial
    line and then computes or sleeps."""
    return quiet_for >= HEURISTIC_QUIET_SECONDS and prompt.strip() != ""


class WaitSink(Protocol):
    """What the watcher needs from a session."""

    @property
    def announced(self) -> bool:
        """An `input_required` is out and not yet answered."""

    @property
    def last_output(self) -> float:
        """When output last arrived (monotonic seconds)."""

    @property
    def output_bytes(self) -> int: ...

    def prompt(self) -> str: ...

    def announce(self, password: bool) -> None: ...

    async def sync(self) -> bool:
        """Wait until the program's output so far is in the session's log."""

    def withdraw(self) -> None: ...


FAST = 0.01  # check this soon after output or input: a prompt is likely near
SETTLE = 0.003  # output must have been quiet this long before the event
REARM = 0.002  # a nudge moves the next check only if it moves it more than this
# A program quiet (no output, no input) this long is probably asleep or computing:
# checks slow down to IDLE_MAX_INTERVAL, so a sleeping session costs next to nothing.
# The price: a read with no prompt after a long quiet spell is seen within 250 ms.
IDLE_AFTER = 1.0
IDLE_MAX_INTERVAL = 0.25
# The detector's share of the server, measured in CPU time of the polls: after a poll
# that cost c seconds, the next waits at least c / share. One session's polls take at
# most SESSION_SHARE of a core, and all sessions' together about TOTAL_SHARE, split
# evenly: a cheap session (one task, ~50 us a poll) keeps its 10 ms reaction, a session
# of 60 threads parked in select() is looked at less often, and neither slows the rest.
SESSION_SHARE = 0.02
TOTAL_SHARE = 0.25


def _no_pid() -> int | None:
    return None


class _Gone:
    """The sink of a released watcher: nothing waits, nothing is announced."""

    announced = False
    last_output = 0.0
    output_bytes = 0

    def prompt(self) -> str:
        return ""

    def announce(self, password: bool) -> None:
        pass

    async def sync(self) -> bool:
        return False

    def withdraw(self) -> None:
        pass


_GONE = _Gone()


class InputWatcher:
    """Decides when a session is waiting for input, at little cost.

    Checks come FAST after activity (output, input) and back off to ``max_interval``
    while nothing happens (to IDLE_MAX_INTERVAL after IDLE_AFTER of quiet); once a
    wait is announced, only that task is looked at, by the loop's one sweep over all
    announced waits (codex.sessions.input.sweep), once a second. So a program
    waiting for an answer, or asleep, costs next to nothing, and a prompt is announced
    within about FAST + SETTLE of its read. A poll's own CPU time spaces the next one
    (SESSION_SHARE, TOTAL_SHARE): output cannot make an expensive tree be walked
    every 10 ms, and sessions share the detector evenly.
    """

    def __init__(
        self,
        sink: WaitSink,
        root_pid: Callable[[], int | None],
        max_interval: float,
        detector_factory: Callable[[int], Detector] | None = None,
    ) -> None:
        """``detector_factory`` makes the detector from the execution's host PID once
        it is known. None: this module's ``ProcDetector``, looked up now rather than at
        import, so tests of a whole session (which makes its own watcher) can replace it
        here."""
        self.sink = sink
        self.root_pid = root_pid
        self.detector_factory = detector_factory or ProcDetector
        self.max_interval = max(max_interval, FAST)
        self.name = "none"
        self._fired: Block | None = None
        self._last_activity = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._nudged_at: float | None = None  # the first nudge of this sleep
        # The output is a sustained stream, paced by the runtime: its program is busy
        # writing, so checks back off further (see nudge).
        self._streaming = False
        self._wake: asyncio.Future[None] | None = None
        self._not_before = 0.0  # no poll before this (monotonic): the detector's share
        self.polls = 0
        self.poll_seconds = 0.0  # CPU time spent in polls

    # Watchers polling a process tree now, across the server: each gets an equal
    # part of TOTAL_SHARE.
    polling = 0

    def release(self) -> None:
        """The session is gone: drop the references back to it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.root_pid = _no_pid
        self.sink = _GONE
        self._fired = None

    def nudge(self, streaming: bool = False) -> None:
        """Something happened: check FAST after the last of it (cheap; called per
        chunk). A prompt ends the output before it, so while output keeps coming the
        check keeps moving back, but never beyond max_interval from the first nudge:
        a stream of output costs a poll per max_interval, not one per chunk. A
        `streaming` chunk (a sustained stream's, paced by the runtime, whose program
        was still writing as it went) brings no check forward, and checks come every
        IDLE_MAX_INTERVAL while they last: a prompt read by another thread while one
        streams is seen within that."""
        now = time.monotonic()
        self._last_activity = now
        self._streaming = streaming
        if self._wake is None or streaming:
            return
        if self._nudged_at is None:
            self._nudged_at = now
        due = min(now + FAST, self._nudged_at + self._active_interval())
        due = max(due, self._not_before)
        if abs(due - self._deadline) < REARM:
            return  # close enough: no new timer per chunk
        self._schedule(due - now)

    def _active_interval(self) -> float:
        """The longest gap between checks while there is activity."""
        return max(IDLE_MAX_INTERVAL, self.max_interval) if self._streaming else self.max_interval

    async def run(self) -> None:
        detector = await self._find_detector()
        if detector is None:
            self.name = "heuristic"
            await self._run_heuristic()
            return
        self.name = detector.name
        InputWatcher.polling += 1
        try:
            await self._watch(detector)
        finally:
            InputWatcher.polling -= 1

    async def _watch(self, detector: Detector) -> None:
        delay = FAST
        while True:
            if self.sink.announced and self._fired is not None:
                if await self._sleep_announced(detector, self._fired):
                    self.sink.withdraw()  # the read ended without us (a signal, a timeout)
                delay = FAST  # an answer, output or the end of the wait: look again soon
                continue
            await self._sleep(delay)
            block = self._poll(detector)
            if block is None or block == self._fired:
                # Nothing, or the wait just answered and the answer still in flight.
                quiet = time.monotonic() - self._last_activity
                cap = self._active_interval() if quiet < IDLE_AFTER else IDLE_MAX_INTERVAL
                # A program busy writing a paced stream is not at a prompt: the next
                # look waits for its next trip's nudge, or the cap.
                delay = cap if self._streaming else min(delay * 2, max(cap, self.max_interval))
                continue
            password = await self._settle(detector, block)
            if password is None:
                delay = FAST
                continue
            self._fired = block
            self.sink.announce(password)

    async def _settle(self, detector: Detector, block: Block) -> bool | None:
        """Once the program's output so far has arrived, the echo flag (password:
        echo off), or None if the program moved on meanwhile."""
        if not await self.sink.sync():
            # No sync through the terminal (it is stopped, or gone): fall back to a
            # quiet spell, which is right unless the engine's relay is very slow.
            await asyncio.sleep(SETTLE)
            if time.monotonic() - self.sink.last_output < SETTLE:
                return None
        if self._poll(detector) != block:
            return None
        return detector.echo_on() is False

    def _poll(self, detector: Detector) -> Block | None:
        """detector.poll(), charged to this session: its CPU time sets how soon the
        next poll may come (SESSION_SHARE, TOTAL_SHARE)."""
        t0 = time.thread_time()
        block = detector.poll()
        cost = time.thread_time() - t0
        self.polls += 1
        self.poll_seconds += cost
        share = min(SESSION_SHARE, TOTAL_SHARE / max(1, InputWatcher.polling))
        self._not_before = time.monotonic() + cost / share
        return block

    async def _find_detector(self) -> Detector | None:
        for _ in range(400):  # the host PID is known within ms of the start
            pid = self.root_pid()
            if pid is not None:
                detector = self.detector_factory(pid)
                return detector if detector.usable else None
            await asyncio.sleep(0.005)
        return None

    async def _run_heuristic(self) -> None:
        fired_at = -1
        while True:
            await self._sleep(0.1)
            if self.sink.announced or fired_at == self.sink.output_bytes:
                continue
            quiet = time.monotonic() - self.sink.last_output
            if quiet >= HEURISTIC_QUIET_SECONDS and heuristic_waiting(self.sink.prompt(), quiet):
                fired_at = self.sink.output_bytes
                self.sink.announce(False)

    async def _sleep_announced(self, detector: Detector, block: Block) -> bool:
        """Until the sweep finds the announced wait over (True) or something happens
        here (a nudge: False). No timer of its own: see codex.sessions.input.sweep."""
        ended = False

        def over() -> None:
            nonlocal ended
            ended = True
            self._ring()

        waits = sweep.sweep()
        self._wake = asyncio.get_running_loop().create_future()
        self._deadline = float("inf")  # a nudge brings it forward
        waits.add(self, lambda: detector.still(block), over)
        try:
            await self._wake
        finally:
            waits.discard(self)
            self._wake = None
            self._nudged_at = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        return ended

    async def _sleep(self, delay: float) -> None:
        delay = max(delay, self._not_before - time.monotonic())
        self._wake = asyncio.get_running_loop().create_future()
        self._schedule(delay)
        try:
            await self._wake
        finally:
            self._wake = None
            self._nudged_at = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = time.monotonic() + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self._ring)

    def _ring(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
