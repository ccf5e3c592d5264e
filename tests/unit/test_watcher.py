"""InputWatcher: when it looks, and what it announces, with a fake detector and sink.

The detector stands in for ProcDetector (the watcher's detector_factory builds it from
the root pid); the sink is what a session offers the watcher (watcher.WaitSink). No
processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from codex.runtime.base import ExecSpec

# -- codex, in one place (modules are about to move into packages) -----------------------
from codex.sessions.input import sweep as input_sweep
from codex.sessions.input import watcher as input_watch
from codex.sessions.input.detector import Block
from codex.sessions.input.watcher import InputWatcher
from tests.unit.fakes import FakeDetector, FakeExecution, eventually, run


class Sink:
    """A session as the watcher sees it (WaitSink)."""

    def __init__(self) -> None:
        self.waiting = False
        self.announcements: list[bool] = []  # the password flag of each
        self.withdrawals = 0
        self.syncs = 0
        self.sync_result = True
        self.on_sync: Callable[[], None] | None = None
        self.last_output = 0.0
        self.output_bytes = 0
        self.prompt_text = "> "

    @property
    def announced(self) -> bool:
        return self.waiting

    def prompt(self) -> str:
        return self.prompt_text

    def announce(self, password: bool) -> None:
        self.announcements.append(password)
        self.waiting = True

    async def sync(self) -> bool:
        self.syncs += 1
        if self.on_sync is not None:
            self.on_sync()
        return self.sync_result

    def withdraw(self) -> None:
        self.withdrawals += 1
        self.waiting = False


class Program:
    """A fake program and the detectors the watcher made for it."""

    def __init__(self) -> None:
        self.execution = FakeExecution(ExecSpec(code="", rows=24, cols=80, session_id="s"))
        self.detectors: list[FakeDetector] = []
        self.poll_cost = 0.0  # CPU seconds each poll burns

    def build(self, root_pid: int) -> FakeDetector:
        """The watcher's detector_factory."""
        assert root_pid == self.execution.pid
        detector = CostlyDetector(self.execution, self)
        self.detectors.append(detector)
        return detector

    @property
    def polls(self) -> int:
        return sum(d.polls for d in self.detectors)


class CostlyDetector(FakeDetector):
    def __init__(self, execution: FakeExecution, program: Program) -> None:
        super().__init__(execution)
        self.program = program

    def poll(self) -> Block | None:
        started = time.thread_time()
        while time.thread_time() - started < self.program.poll_cost:
            pass
        return super().poll()


@pytest.fixture
def program() -> Program:
    return Program()


def watching(
    program: Program, sink: Sink, max_interval: float = 0.05
) -> tuple[InputWatcher, asyncio.Task[None]]:
    watcher = InputWatcher(sink, program.execution.root_pid, max_interval, program.build)
    return watcher, asyncio.ensure_future(watcher.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_read_is_announced_once_after_a_sync(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink)
        await asyncio.sleep(0.03)
        assert sink.announcements == [] and program.polls >= 1
        program.execution.block_on_input()
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        assert sink.announcements == [False] and sink.syncs >= 1
        assert watcher.name == "proc"
        await asyncio.sleep(0.1)  # still in the same read: nothing more
        assert sink.announcements == [False] and sink.withdrawals == 0
        await stop(task)

    run(scenario)


def test_a_password_read_is_announced_as_one(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        _, task = watching(program, sink)
        program.execution.block_on_input(password=True)
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        assert sink.announcements == [True]
        await stop(task)

    run(scenario)


def test_a_read_that_ends_without_input_is_withdrawn_and_the_next_announced(
    program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.02)

    async def scenario() -> None:
        sink = Sink()
        _, task = watching(program, sink)
        program.execution.block_on_input()
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        program.execution.stop_reading()  # a signal interrupted the read
        await eventually(lambda: sink.withdrawals == 1, timeout=0.5, what="withdraw")
        assert not sink.waiting
        program.execution.block_on_input()  # a new read: a new sleep
        await eventually(lambda: len(sink.announcements) == 2, timeout=0.5, what="again")
        await stop(task)

    run(scenario)


def test_an_answered_read_is_not_announced_again_while_the_answer_is_in_flight(
    program: Program,
) -> None:
    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink)
        program.execution.block_on_input()
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        sink.waiting = False  # the session got an answer; the program has not read it yet
        watcher.nudge()
        await asyncio.sleep(0.1)
        assert sink.announcements == [False]
        program.execution.stop_reading()  # it read the answer...
        program.execution.block_on_input()  # ...and asks again
        watcher.nudge()
        await eventually(lambda: len(sink.announcements) == 2, timeout=0.5, what="again")
        await stop(task)

    run(scenario)


def test_a_read_gone_by_the_time_output_is_in_is_not_announced(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        ex = program.execution
        sink.on_sync = ex.stop_reading  # it answered itself (type-ahead) meanwhile
        _, task = watching(program, sink)
        ex.block_on_input()
        await eventually(lambda: sink.syncs >= 1, timeout=0.5, what="a sync")
        await asyncio.sleep(0.05)
        assert sink.announcements == []
        sink.on_sync = None
        ex.block_on_input()
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        await stop(task)

    run(scenario)


def test_without_a_sync_it_waits_for_the_output_to_go_quiet(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        sink.sync_result = False  # the terminal refuses the sync record (stopped by ^S)
        sink.last_output = time.monotonic() + 0.15  # output keeps coming for 0.15 s
        _, task = watching(program, sink)
        program.execution.block_on_input()
        await asyncio.sleep(0.1)
        assert sink.announcements == [] and sink.syncs >= 1
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        await stop(task)

    run(scenario)


def test_checks_back_off_while_nothing_happens(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        _, task = watching(program, sink, max_interval=0.05)
        await asyncio.sleep(0.2)
        # Backing off 10, 20, 40 ms, then every 50 ms: about 6 polls, never 20.
        assert 3 <= program.polls <= 10
        await stop(task)

    run(scenario)


def test_a_nudge_brings_the_next_check_forward(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink, max_interval=1.0)
        await asyncio.sleep(0.35)  # backed off: the next check is ~0.3 s away
        polls = program.polls
        program.execution.block_on_input()
        watcher.nudge()  # output or input came: a prompt is likely near
        await eventually(lambda: sink.announcements, timeout=0.1, what="announce")
        assert program.polls > polls
        await stop(task)

    run(scenario)


def test_a_stream_of_output_buys_a_check_per_max_interval_and_one_after_it(
    program: Program,
) -> None:
    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink, max_interval=0.05)
        await asyncio.sleep(0.2)  # backed off
        before = program.polls
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # output every 2 ms for 0.3 s
            watcher.nudge()
            await asyncio.sleep(0.002)
        # One check per 50 ms while it streams (~6), not one per 10 ms (~30).
        assert program.polls - before <= 9, program.polls - before
        program.execution.block_on_input()  # the output ended with a prompt
        watcher.nudge()
        ended = time.monotonic()
        await eventually(lambda: sink.announcements, timeout=0.1, what="announce")
        assert time.monotonic() - ended < 0.06
        await stop(task)

    run(scenario)


def test_a_paced_stream_buys_a_check_per_idle_interval_and_one_after_it(
    program: Program,
) -> None:
    """Chunks of a sustained stream whose program was still writing as they went
    (`streaming`: the runtime paces it) bring no check forward, and checks come every
    IDLE_MAX_INTERVAL meanwhile; the chunk after which it stopped brings one FAST."""

    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink, max_interval=0.05)
        await asyncio.sleep(0.2)  # backed off
        before = program.polls
        for _ in range(5):  # a paced trip every 200 ms for 1 s
            watcher.nudge(streaming=True)
            await asyncio.sleep(0.2)
        # One check per 250 ms: ~4. Unpaced, a check FAST after each trip and then one
        # per 50 ms: ~20.
        assert program.polls - before <= 7, program.polls - before
        program.execution.block_on_input()  # the output ended with a prompt
        watcher.nudge()  # that trip's hold found no more: not streaming
        ended = time.monotonic()
        await eventually(lambda: sink.announcements, timeout=0.2, what="announce")
        assert time.monotonic() - ended < 0.06
        await stop(task)

    run(scenario)


def test_a_quiet_program_is_looked_at_rarely(
    program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_watch, "IDLE_AFTER", 0.03)
    monkeypatch.setattr(input_watch, "IDLE_MAX_INTERVAL", 0.06)

    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink, max_interval=0.01)
        await asyncio.sleep(0.1)  # idle by now
        before = program.polls
        await asyncio.sleep(0.18)
        assert program.polls - before <= 5  # every 60 ms, not every 10 ms
        program.execution.block_on_input()
        watcher.nudge()
        await eventually(lambda: sink.announcements, timeout=0.1, what="announce")
        await stop(task)

    run(scenario)


def test_an_expensive_poll_spaces_the_next_one(program: Program) -> None:
    program.poll_cost = 0.004  # at SESSION_SHARE (2 %) of a core: one poll per 200 ms

    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink, max_interval=0.01)
        await asyncio.sleep(0.3)
        assert 1 <= program.polls <= 3  # not 30
        watcher.nudge()  # activity does not buy a poll sooner than its share allows
        await asyncio.sleep(0.05)
        assert program.polls <= 3
        assert watcher.poll_seconds >= program.polls * 0.004 * 0.9
        await stop(task)

    run(scenario)


def test_the_pid_may_come_late(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        asked = []

        def root_pid() -> int | None:
            asked.append(1)
            return program.execution.pid if len(asked) > 3 else None

        watcher = InputWatcher(sink, root_pid, 0.05, detector_factory=program.build)
        task = asyncio.ensure_future(watcher.run())
        program.execution.block_on_input()
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        assert watcher.name == "proc" and len(program.detectors) == 1
        await stop(task)

    run(scenario)


def test_the_polling_count_is_returned_when_a_watcher_stops(program: Program) -> None:
    async def scenario() -> None:
        base = InputWatcher.polling
        _, task = watching(program, Sink())
        await eventually(lambda: program.polls >= 1, timeout=0.5, what="a poll")
        assert InputWatcher.polling == base + 1
        await stop(task)
        assert InputWatcher.polling == base

    run(scenario)


def test_without_a_usable_detector_the_heuristic_guesses_from_quiet_output(
    program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_watch, "HEURISTIC_QUIET_SECONDS", 0.05)
    program.execution.detector_usable = False

    async def scenario() -> None:
        sink = Sink()
        sink.prompt_text = ""  # nothing on the cursor's line: no prompt to guess
        sink.last_output = time.monotonic() - 1.0
        watcher, task = watching(program, sink)
        await asyncio.sleep(0.15)  # a look every 100 ms
        assert watcher.name == "heuristic" and sink.announcements == []
        sink.prompt_text = "Name: "
        await eventually(lambda: sink.announcements, timeout=0.5, what="announce")
        sink.waiting = False  # answered; no new output since
        await asyncio.sleep(0.15)
        assert sink.announcements == [False]  # once per output
        sink.output_bytes += 10
        sink.last_output = time.monotonic()  # new output, then quiet again
        await eventually(lambda: len(sink.announcements) == 2, timeout=1.0, what="again")
        await stop(task)

    run(scenario)


def test_a_released_watcher_lets_go_of_its_session(program: Program) -> None:
    async def scenario() -> None:
        sink = Sink()
        watcher, task = watching(program, sink)
        await eventually(lambda: program.polls >= 1, timeout=0.5, what="a poll")
        await stop(task)
        watcher.release()
        assert watcher.sink is not sink and watcher.root_pid() is None
        assert watcher.sink.announced is False and watcher.sink.prompt() == ""
        watcher.nudge()  # harmless once released

    run(scenario)
