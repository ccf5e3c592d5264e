"""A session's life through the registry, on a fake runtime: no Docker, no processes.

The fake program (tests/unit/fakes.py) speaks the supervisor's protocol into the real
Execution base class, and a fake detector stands in for the kernel's view of a read,
so what is tested here is the session: its state machine, its output pipeline, its
input, its verdicts, its limits and what it keeps once finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import types
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from codex.config import Settings
from codex.errors import (
    NoCapacity,
    PayloadTooLarge,
    RateLimited,
    RuntimeUnavailable,
    SandboxError,
    SessionFinished,
    SessionNotFound,
    Unavailable,
)
from codex.runtime.base import Readiness
from codex.runtime.job import JobFile

# -- codex, in one place (modules are about to move into packages) -----------------------
from codex.sessions.eventlog import COMPLETE, ERROR, INPUT_REQUIRED, OUTPUT, Entry, Follower
from codex.sessions.follow import follow
from codex.sessions.input import sweep as input_sweep
from codex.sessions.input import watcher as input_watch
from codex.sessions.presence import HIGH_WATER
from codex.sessions.registry import ExecuteRequest, SessionRegistry
from codex.sessions.resize import RESIZE_INTERVAL
from codex.sessions.session import Session
from tests.unit.fakes import READ_SIZE, WAIT, FakeExecution, FakeRuntime, eventually, run, settle

CODE = "print('hi')"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    runtime = FakeRuntime()
    # A Session gives its watcher no detector_factory: the watcher falls back to
    # watcher.ProcDetector, replaced here by one over the fake executions.
    monkeypatch.setattr(input_watch, "ProcDetector", runtime.detector)
    return runtime


def registry(runtime: FakeRuntime, **overrides: Any) -> SessionRegistry:
    return SessionRegistry(dataclasses.replace(Settings(), **overrides), runtime)


async def finished(session: Session) -> dict[str, Any]:
    await asyncio.wait_for(session.wait(), WAIT)
    assert session.finished and session.result is not None
    return session.result


def output_of(session: Session, *, echo: bool | None = None) -> str:
    return "".join(
        e.text
        for e in session.log.since(0)
        if e.kind == OUTPUT and (echo is None or e.echo == echo)
    )


def errors_of(session: Session) -> list[dict[str, Any]]:
    return [e.payload for e in session.log.since(0) if e.kind == ERROR]


def job_of(ex: FakeExecution) -> dict[str, Any]:
    assert ex.job is not None
    size, _, payload = ex.job.partition(b"\n")
    assert int(size) == len(payload)
    job: dict[str, Any] = json.loads(payload)
    return job


# -- output ---------------------------------------------------------------------------------


def test_output_reaches_a_follower_in_order_with_sequence_numbers(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        got: list[Entry] = []

        async def send(batch: list[Entry]) -> None:
            got.extend(batch)

        reader = asyncio.ensure_future(follow(s, send, include_echo=True))
        ex = await fake.next_execution()
        assert job_of(ex) == {
            "code": CODE,
            "rows": 24,
            "cols": 80,
            "maxImage": 2 << 20,
            "files": [],
            "args": [],
            "interactive": False,
            "collect": [20, 1 << 20, 2 << 20],
        }
        # "três" split inside its two-byte "ê": decoded whole, never as U+FFFD.
        chunks = [b"one\r\n", b"two\r\ntr\xc3", b"\xaas\r\n", b"four"]
        for chunk in chunks:
            ex.emit(chunk)
            await asyncio.sleep(0.005)
        ex.exit(0)
        await asyncio.wait_for(reader, WAIT)
        assert [e.seq for e in got] == list(range(len(got)))
        assert "".join(e.text for e in got if e.kind == OUTPUT) == "one\r\ntwo\r\ntrês\r\nfour"
        assert [e.kind for e in got].count(COMPLETE) == 1 and got[-1].kind == COMPLETE
        result = got[-1].payload
        assert result["status"] == "ok" and result["exitCode"] == 0
        assert result["outputBytes"] == sum(len(c) for c in chunks)
        assert result == s.result and s.state == "finished"
        assert ex.closed  # the execution is released at the end
        assert not s.presence.followers  # the follower left with the end of the log

    run(scenario)


def test_a_late_follower_gets_the_whole_replay(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        ex.emit(b"early\r\n")
        ex.exit(0)
        await finished(s)
        got: list[Entry] = []

        async def send(batch: list[Entry]) -> None:
            got.extend(batch)

        await asyncio.wait_for(follow(s, send, include_echo=False), WAIT)
        assert [e.kind for e in got] == [OUTPUT, COMPLETE]
        assert got[0].text == "early\r\n" and got[0].seq == 0

    run(scenario)


def test_the_requested_terminal_size_is_the_jobs(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE, rows=40, cols=132))
        ex = await fake.next_execution()
        assert (job_of(ex)["rows"], job_of(ex)["cols"]) == (40, 132)
        assert (fake.specs[0].rows, fake.specs[0].cols) == (40, 132)
        assert ex.resizes == []  # the supervisor applies the job's size itself
        ex.exit(0)
        await finished(s)

    run(scenario)


# -- input ----------------------------------------------------------------------------------


def test_input_required_follows_its_prompt_and_the_answer_reaches_the_program(
    fake: FakeRuntime,
) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("name = input('Name: ')"))
        ex = await fake.next_execution()
        ex.emit(b"Name: ")
        ex.block_on_input()
        await eventually(lambda: s.waiting is not None, what="input_required")
        assert [(e.kind, e.text) for e in s.log.since(0)] == [
            (OUTPUT, "Name: "),
            (INPUT_REQUIRED, ""),
        ]
        assert s.waiting is not None
        assert s.waiting.payload == {
            "sessionId": s.id,
            "prompt": "Name: ",
            "password": False,
            "detector": "proc",
        }
        described = s.describe()
        assert described["waitingForInput"] and described["prompt"] == "Name: "
        await s.send_input("Ada")
        assert await ex.typed_line() == b"Ada\n"
        assert s.waiting is None
        ex.emit(b"Hello, Ada\r\n")
        ex.exit(0)
        assert (await finished(s))["status"] == "ok"
        # The terminal's echo of the answer is marked, for views that echo it themselves.
        assert output_of(s, echo=True) == "Ada\r\n"
        assert output_of(s, echo=False) == "Name: Hello, Ada\r\n"
        assert [e.kind for e in s.log.since(0)].count(INPUT_REQUIRED) == 1

    run(scenario)


def test_each_new_read_is_a_new_input_required(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("input(); input()"))
        ex = await fake.next_execution()
        for answer in ("a", "b"):
            ex.emit(b"? ")
            ex.block_on_input()
            await eventually(lambda: s.waiting is not None, what="input_required")
            await s.send_input(answer)
            assert await ex.typed_line() == answer.encode() + b"\n"
        ex.exit(0)
        await finished(s)
        prompts = [e.payload["prompt"] for e in s.log.since(0) if e.kind == INPUT_REQUIRED]
        assert prompts == ["? ", "? "]

    run(scenario)


def test_a_password_read_says_so(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("import getpass; getpass.getpass()"))
        ex = await fake.next_execution()
        ex.emit(b"Password: ")
        ex.block_on_input(password=True)
        await eventually(lambda: s.waiting is not None, what="input_required")
        assert s.waiting is not None and s.waiting.payload["password"] is True
        s.cancel()
        await finished(s)

    run(scenario)


def test_a_read_that_ends_by_itself_withdraws_the_wait(
    fake: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.02)

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("input()"))
        ex = await fake.next_execution()
        ex.emit(b"> ")
        ex.block_on_input()
        await eventually(lambda: s.waiting is not None, what="input_required")
        ex.stop_reading()  # a signal ended the read
        await eventually(lambda: s.waiting is None, what="the wait withdrawn")
        assert not s.describe()["waitingForInput"]
        ex.exit(0)
        await finished(s)

    run(scenario)


def test_input_sent_before_the_program_takes_typing_arrives_in_order(
    fake: FakeRuntime,
) -> None:
    fake.auto_go = False

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("input(); input(); input()", stdin="first\n"))
        await s.send_input("second")  # the execution does not exist yet
        ex = await fake.next_execution()
        await s.write(b"third\n")  # it exists, but its supervisor has not said `go`
        await settle()
        assert bytes(ex.typed) == b""  # raw mode for the job: nothing typed yet
        ex.go()
        assert await ex.typed_line() == b"first\n"
        assert await ex.typed_line() == b"second\n"
        assert await ex.typed_line() == b"third\n"
        await s.write(b"fourth\n")  # from now on, straight through
        assert await ex.typed_line() == b"fourth\n"
        ex.exit(0)
        await finished(s)
        # `stdin` and `input` answers are echoed by the terminal: marked as echo.
        assert output_of(s, echo=False) == "third\r\nfourth\r\n"
        assert output_of(s, echo=True) == "first\r\nsecond\r\n"

    run(scenario)


def test_input_after_the_end_and_beyond_the_budget_is_refused(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_session_input_bytes=8)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        await s.write(b"1234\n")
        with pytest.raises(PayloadTooLarge):
            await s.write(b"5678\n")  # 10 bytes in all
        assert await ex.typed_line() == b"1234\n"
        ex.exit(0)
        await finished(s)
        with pytest.raises(SessionFinished):
            await s.send_input("late")
        assert bytes(ex.typed) == b""

    run(scenario)


# -- verdicts -------------------------------------------------------------------------------

ENDINGS: dict[str, tuple[Callable[[FakeExecution], None], str, str | None]] = {
    "ok": (lambda ex: ex.exit(0), "ok", None),
    "exception": (
        lambda ex: ex.exit(1, error={"type": "ValueError", "message": "bad", "line": 3}),
        "runtime_error",
        "ValueError: bad",
    ),
    "exit code": (lambda ex: ex.exit(2), "runtime_error", "The program exited with code 2."),
    "signal": (
        lambda ex: ex.exit(None, signal="SIGSEGV"),
        "runtime_error",
        "The program was killed by SIGSEGV.",
    ),
    "oom": (
        lambda ex: ex.exit(None, signal="SIGKILL", oom_killed=True),
        "memory_limit",
        "Memory limit exceeded: 64 MiB.",
    ),
    "no record": (lambda ex: ex.end(), "internal_error", "the fake sandbox ended without a result"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_how_it_ended_is_the_verdict(fake: FakeRuntime, ending: str) -> None:
    end, status, message = ENDINGS[ending]

    async def scenario() -> None:
        reg = registry(fake, memory_limit_mb=64)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        ex.emit(b"out\r\n")
        end(ex)
        result = await finished(s)
        assert result["status"] == status
        assert [e["error"] for e in errors_of(s)] == ([message] if message else [])
        if ending == "exception":
            assert errors_of(s)[0]["line"] == 3 and result["exitCode"] == 1
        if ending == "signal":
            assert result["signal"] == "SIGSEGV"
        assert ex.kills == 0 and ex.closed
        assert reg.running == 0

    run(scenario)


def test_the_time_limit_stops_a_program_that_runs_on(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, time_limit=0.1)
        s = await reg.create(ExecuteRequest("while True: pass"))
        ex = await fake.next_execution()
        result = await finished(s)
        assert result["status"] == "timeout"
        assert ex.kills >= 1 and ex.closed
        assert errors_of(s)[0]["error"] == "Time limit exceeded: the program ran for 0.1 s."
        assert 100 <= result["durationMs"] < 1000

    run(scenario)


def test_time_waiting_for_input_does_not_count(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, time_limit=0.1, input_wait_limit=5.0)
        s = await reg.create(ExecuteRequest("input()"))
        ex = await fake.next_execution()
        ex.emit(b"? ")
        ex.block_on_input()
        await eventually(lambda: s.waiting is not None, what="input_required")
        await asyncio.sleep(0.2)  # longer than the time limit, all of it waiting
        assert not s.finished
        await s.send_input("x")
        ex.exit(0)
        result = await finished(s)
        assert result["status"] == "ok"
        assert result["durationMs"] < 100

    run(scenario)


def test_a_wait_longer_than_the_input_wait_limit_ends_the_session(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, time_limit=5.0, input_wait_limit=0.1)
        s = await reg.create(ExecuteRequest("input()"))
        ex = await fake.next_execution()
        ex.emit(b"? ")
        ex.block_on_input()
        result = await finished(s)
        assert result["status"] == "timeout" and ex.kills >= 1
        assert errors_of(s)[0]["error"] == "No input came for 0.1 s: the program was stopped."

    run(scenario)


def test_cpu_used_during_a_wait_is_charged(
    fake: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_sweep, "INTERVAL", 0.01)

    async def scenario() -> None:
        reg = registry(fake, time_limit=1.0, input_wait_limit=5.0)
        s = await reg.create(ExecuteRequest("input()"))
        ex = await fake.next_execution()
        ex.cpu = 0.0
        ex.emit(b"? ")
        ex.block_on_input()
        await eventually(lambda: s.waiting is not None, what="input_required")
        ex.cpu = 2.0  # another thread computes while one waits
        result = await finished(s)
        assert result["status"] == "timeout"
        assert errors_of(s)[0]["error"].startswith("Time limit exceeded")

    run(scenario)


def test_cancel_stops_the_program_and_says_why(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        ex.emit(b"working\r\n")
        await eventually(lambda: output_of(s) == "working\r\n")
        s.cancel("Stopped by the teacher.")
        result = await finished(s)
        assert result["status"] == "cancelled" and ex.kills == 1 and ex.closed
        assert errors_of(s) == [
            {"error": "Stopped by the teacher.", "code": "cancelled", "sessionId": s.id}
        ]
        s.cancel("again")  # idempotent once finished
        assert s.result == result and len(errors_of(s)) == 1

    run(scenario)


def test_cancel_without_a_reason_adds_no_error(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        await fake.next_execution()
        s.cancel()
        assert (await finished(s))["status"] == "cancelled"
        assert errors_of(s) == []

    run(scenario)


def test_the_output_limit_truncates_and_stops(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, output_limit_bytes=100)
        s = await reg.create(ExecuteRequest("while True: print('x')"))
        ex = await fake.next_execution()
        ex.emit(b"a" * 60)
        ex.emit(b"b" * 90)
        result = await finished(s)
        assert result["status"] == "output_limit"
        assert result["truncated"] is True and result["outputBytes"] == 100
        assert output_of(s).startswith("a" * 60 + "b" * 40 + "\r\n[output limit of 100 bytes")
        assert "b" * 41 not in output_of(s)
        assert ex.kills >= 1
        assert errors_of(s)[0]["error"] == "Output limit exceeded: 100 bytes."

    run(scenario)


def test_output_cut_at_the_limit_is_output_limit_even_if_the_program_ended_itself(
    fake: FakeRuntime,
) -> None:
    async def scenario() -> None:
        reg = registry(fake, output_limit_bytes=100)
        s = await reg.create(ExecuteRequest("print('x' * 150)"))
        ex = await fake.next_execution()
        ex.emit(b"x" * 150)
        ex.exit(0)  # before the kill lands
        result = await finished(s)
        assert result["status"] == "output_limit" and result["truncated"] is True

    run(scenario)


def test_a_start_that_fails_is_an_internal_error(fake: FakeRuntime) -> None:
    fake.fail = SandboxError("The engine is on fire.")

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        result = await finished(s)
        assert result["status"] == "internal_error"
        assert errors_of(s)[0]["error"] == "The engine is on fire."
        assert fake.executions == [] and reg.running == 0

    run(scenario)


# -- resize ---------------------------------------------------------------------------------


def test_a_resize_while_starting_is_applied_once_the_program_runs(fake: FakeRuntime) -> None:
    fake.hold()

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        await eventually(lambda: fake.specs, what="the start")
        await s.resize(30, 100)  # the start already carries 24x80
        fake.release()
        ex = await fake.next_execution()
        assert (job_of(ex)["rows"], job_of(ex)["cols"]) == (24, 80)
        await eventually(lambda: ex.resizes == [(30, 100)], what="the resize")
        ex.exit(0)
        await finished(s)
        assert ex.resizes == [(30, 100)]

    run(scenario)


def test_a_resize_before_go_waits_for_go(fake: FakeRuntime) -> None:
    fake.auto_go = False

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        await s.resize(30, 100)
        await settle()
        assert ex.resizes == []  # the supervisor still owns the terminal
        ex.go()
        await eventually(lambda: ex.resizes == [(30, 100)], what="the resize")
        ex.exit(0)
        await finished(s)

    run(scenario)


def test_resizes_are_coalesced_to_the_latest_and_can_be_awaited(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        await eventually(lambda: s.resizer.live, what="go")
        for cols in (100, 101, 102, 103):
            await s.resize(30, cols)
        await s.resize(31, 110, wait=True)
        assert ex.resizes == [(31, 110)]  # five asked for, one engine call
        started = asyncio.get_running_loop().time()
        await s.resize(32, 120, wait=True)  # spaced from the last call
        assert ex.resizes == [(31, 110), (32, 120)]
        assert asyncio.get_running_loop().time() - started >= RESIZE_INTERVAL * 0.8
        await s.resize(32, 120, wait=True)  # the same size again: nothing to do
        assert ex.resizes == [(31, 110), (32, 120)]
        assert s.describe()["screen"]["rows"] == 32
        ex.exit(0)
        await finished(s)

    run(scenario)


# -- cancel around the start ----------------------------------------------------------------


def test_cancel_while_the_start_waits_costs_no_execution(fake: FakeRuntime) -> None:
    fake.hold()

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        await eventually(lambda: fake.specs, what="the start")
        s.cancel()
        result = await finished(s)
        assert result["status"] == "cancelled"
        assert fake.starts_cancelled == 1 and fake.executions == []
        assert reg.running == 0

    run(scenario)


def test_cancel_right_after_create_costs_no_execution(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        s.cancel()  # in the same step as create(): _run has not begun
        result = await finished(s)
        assert result["status"] == "cancelled"
        assert fake.executions == []

    run(scenario)


def test_cancel_as_the_start_returns_kills_what_it_made(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        # Lands after the start has finished but before the session resumes: nothing
        # left to cancel, so the execution must be killed and closed.
        fake.after_start = s.cancel
        ex = await fake.next_execution()
        result = await finished(s)
        assert result["status"] == "cancelled"
        assert ex.kills >= 1 and ex.closed
        assert result["durationMs"] == 0  # the clock never started

    run(scenario)


# -- followers ------------------------------------------------------------------------------


def test_a_lagging_controller_pauses_reading_until_it_catches_up(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, output_limit_bytes=4 * HIGH_WATER)
        s = await reg.create(ExecuteRequest(CODE))
        controller = Follower()
        s.attach(controller)
        ex = await fake.next_execution()
        chunk = b"x" * 16384
        for _ in range(2 * HIGH_WATER // len(chunk)):
            ex.emit(chunk)
        await eventually(lambda: s.log.total_chars > HIGH_WATER, what="output")
        await asyncio.sleep(0.05)
        assert s.log.total_chars <= HIGH_WATER + READ_SIZE
        assert ex.unread > 0  # the program's output waits in the terminal
        s.delivered(controller, s.log.total_chars)  # the client caught up
        await eventually(lambda: ex.unread == 0, what="reading again")
        assert s.log.total_chars == 2 * HIGH_WATER
        ex.exit(0)
        await finished(s)

    run(scenario)


def test_the_last_client_leaving_cancels_after_the_grace(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, disconnect_grace=0.05)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        first, second = Follower(), Follower()
        s.attach(first)
        s.detach(first)
        await asyncio.sleep(0.02)
        s.attach(second)  # back in time
        await asyncio.sleep(0.1)
        assert not s.finished
        s.detach(second)
        result = await finished(s)
        assert result["status"] == "cancelled" and ex.kills >= 1

    run(scenario)


# -- the registry ---------------------------------------------------------------------------


def test_code_that_does_not_compile_costs_no_execution(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("print(\n"))
        assert s.finished and s.result is not None
        assert s.result["status"] == "syntax_error"
        assert errors_of(s)[0]["code"] == "syntax_error" and errors_of(s)[0]["line"] == 1
        assert fake.specs == []
        assert reg.get(s.id) is s

    run(scenario)


def test_capacity_global_and_per_address(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_sessions=2, max_sessions_per_ip=1, queue_max=0)
        a = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        with pytest.raises(RateLimited):
            await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        b = await reg.create(ExecuteRequest(CODE), client="10.0.0.2")
        assert fake.headroom is not None and fake.headroom() == 0
        with pytest.raises(NoCapacity):
            await reg.create(ExecuteRequest(CODE), client="10.0.0.3")
        assert reg.running == 2
        for _ in (a, b):
            (await fake.next_execution()).exit(0)
        assert [spec.client for spec in fake.specs] == ["10.0.0.1", "10.0.0.2"]
        await finished(a)
        await finished(b)
        assert fake.headroom() == 2
        c = await reg.create(ExecuteRequest(CODE), client="10.0.0.1")
        c.cancel()
        await finished(c)

    run(scenario)


def test_creates_racing_through_readiness_stay_within_the_cap(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_sessions=1, queue_max=0)
        fake.readiness_gate = asyncio.Event()
        racers = [asyncio.ensure_future(reg.create(ExecuteRequest(CODE))) for _ in range(3)]
        await settle()
        fake.readiness_gate.set()
        done = await asyncio.gather(*racers, return_exceptions=True)
        started = [s for s in done if isinstance(s, Session)]
        for s in started:
            s.cancel()
            await finished(s)
        assert len(started) == 1
        assert sum(isinstance(x, NoCapacity) for x in done) == 2

    run(scenario)


def test_an_unready_runtime_refuses_and_runs_nothing(fake: FakeRuntime) -> None:
    fake.readiness_result = Readiness(False, "the engine is away")

    async def scenario() -> None:
        reg = registry(fake)
        with pytest.raises(RuntimeUnavailable, match="the engine is away"):
            await reg.create(ExecuteRequest(CODE))
        assert fake.specs == [] and reg.running == 0

    run(scenario)


def test_shutdown_cancels_what_runs_and_refuses_more(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        await asyncio.wait_for(reg.shutdown(), WAIT)
        assert s.result is not None and s.result["status"] == "cancelled"
        assert errors_of(s)[0]["error"] == "The server is shutting down."
        assert ex.closed
        with pytest.raises(Unavailable):
            await reg.create(ExecuteRequest(CODE))

    run(scenario)


def test_drain_lets_a_program_finish_within_the_grace(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake)
        quick = await reg.create(ExecuteRequest(CODE), client="a")
        slow = await reg.create(ExecuteRequest(CODE), client="b")
        q, _ = await fake.next_execution(), await fake.next_execution()
        asyncio.get_running_loop().call_later(0.02, q.exit, 0)
        await asyncio.wait_for(reg.drain(0.1), WAIT)
        assert quick.result is not None and quick.result["status"] == "ok"
        assert slow.result is not None and slow.result["status"] == "cancelled"

    run(scenario)


# -- what a finished session keeps ----------------------------------------------------------


def test_a_finished_session_expires_and_releases_what_it_holds(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, session_ttl=0.05)
        s = await reg.create(ExecuteRequest(CODE))
        ex = await fake.next_execution()
        ex.emit(b"x" * 1000)
        ex.exit(0)
        await finished(s)
        assert reg.get(s.id) is s and s.retained_chars >= 1000
        await eventually(lambda: s.id not in reg._sessions, what="expiry")
        with pytest.raises(SessionNotFound):
            reg.get(s.id)
        assert s.log.closed and s.log.since(0) == []
        assert s.watcher.sink is not s  # the watcher no longer points back at it
        described = s.describe()  # a straggler asking still gets an answer
        assert described["state"] == "finished" and described["result"] == s.result
        assert reg._retained == 0

    run(scenario)


def test_finished_sessions_beyond_the_bound_go_oldest_first(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_finished_sessions=1)
        first = await reg.create(ExecuteRequest(CODE))
        (await fake.next_execution()).exit(0)
        await finished(first)
        second = await reg.create(ExecuteRequest(CODE))
        (await fake.next_execution()).exit(0)
        await finished(second)
        assert reg.get(second.id) is second
        with pytest.raises(SessionNotFound):
            reg.get(first.id)

    run(scenario)


def largest_held(session: Session, exclude: tuple[object, ...]) -> int:
    """The size of the largest str or bytes reachable from ``session``, not through
    ``exclude`` (the runtime: the fake keeps every spec), a module, a type, a function
    (their globals reach everything) or an event loop (it reaches every session)."""
    seen = {id(x) for x in exclude}
    stack: list[object] = [session]
    largest = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes, bytearray)):
            largest = max(largest, len(obj))
            continue
        if isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        if isinstance(obj, asyncio.AbstractEventLoop):
            continue
        stack.extend(gc.get_referents(obj))
    return largest


MIB = 1024 * 1024
FILES = (JobFile.of("data.bin", b"d" * MIB), JobFile.of("more.txt", b"m" * MIB))


@pytest.mark.parametrize("compiles", [True, False])
def test_a_finished_session_keeps_neither_its_files_nor_its_program(
    fake: FakeRuntime, compiles: bool
) -> None:
    """What a program was given is not what replay or GET show: held until expiry,
    256 finished sessions would keep 512 MiB outside finished_memory_mb. Whether it
    ran (a container) or did not compile (none)."""

    async def scenario() -> None:
        reg = registry(fake, max_code_bytes=2 * MIB)
        code = ("print('hi')  # " if compiles else "print(  # ") + "p" * MIB
        s = await reg.create(ExecuteRequest(code, stdin="s" * 1000, files=FILES))
        if compiles:
            assert largest_held(s, (fake,)) >= MIB  # held while it may still start
            ex = await fake.next_execution()
            ex.emit(b"hi\r\n")
            ex.exit(0)
        await finished(s)
        await settle()
        assert largest_held(s, (fake,)) < 64 * 1024
        assert s.describe()["state"] == "finished" and s.retained_chars < 64 * 1024

    run(scenario)


def test_the_run_is_let_go_once_its_sandbox_is_gone(fake: FakeRuntime) -> None:
    """At the verdict the sandbox may still be closing (a removal in the engine): the
    run keeps its execution until then, and lets it go as soon as it is done, not at
    expiry. GET of the session still says all it said."""

    async def scenario() -> None:
        reg = registry(fake)
        s = await reg.create(ExecuteRequest("input()"))
        ex = await fake.next_execution()
        closing = asyncio.Event()
        real_close = ex.close

        async def slow_close() -> None:
            await closing.wait()
            await real_close()

        ex.close = slow_close  # type: ignore[method-assign]
        ex.emit(b"? ")
        ex.block_on_input()
        await eventually(lambda: s.waiting is not None, what="input_required")
        before = s.describe()
        ex.exit(0)
        await eventually(lambda: s.finished, what="the verdict")
        await settle()
        assert s.run.execution is ex and s.watcher.sink is s.waits  # still closing
        closing.set()
        await finished(s)
        await settle()
        assert s.run.execution is None and s._task is None
        assert s.watcher.sink is not s.waits  # the watcher's callbacks are gone
        after = s.describe()
        assert after["detector"] == before["detector"] == "proc"
        assert before["screen"]["lines"][0] == "?"
        assert after["screen"]["lines"] == before["screen"]["lines"]
        assert after["result"]["status"] == "ok" and not after["waitingForInput"]
        assert reg.get(s.id) is s  # shed, not expired

    run(scenario)


def freed_without_the_cycle_collector(scenario: Callable[[], Awaitable[Any]]) -> None:
    gc.collect()
    gc.disable()  # what is freed now is freed by reference counts alone
    try:
        run(scenario)
    finally:
        gc.enable()


async def a_session_with_a_past(reg: SessionRegistry, fake: FakeRuntime) -> Session:
    """A finished session that waited for input, got it, and was resized."""
    s = await reg.create(ExecuteRequest("input()"))
    ex = await fake.next_execution()
    ex.emit(b"? ")
    ex.block_on_input()
    await eventually(lambda: s.waiting is not None, what="input_required")
    await s.send_input("x")
    await s.resize(30, 100, wait=True)
    ex.exit(0)
    await finished(s)
    return s


def test_a_released_session_is_freed_without_the_cycle_collector(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, session_ttl=0.1)
        s = await a_session_with_a_past(reg, fake)
        ref = weakref.ref(s)
        del s
        await eventually(lambda: not reg._sessions, what="expiry")
        await settle()
        assert ref() is None, gc.get_referrers(ref())

    freed_without_the_cycle_collector(scenario)


def test_a_session_released_right_after_a_resize_is_freed_too(fake: FakeRuntime) -> None:
    async def scenario() -> None:
        reg = registry(fake, max_finished_sessions=1)
        s = await a_session_with_a_past(reg, fake)
        ref = weakref.ref(s)
        del s
        newer = await reg.create(ExecuteRequest(CODE))
        (await fake.next_execution()).exit(0)
        await finished(newer)  # the older one is expired and released now
        await settle()
        assert ref() is None

    freed_without_the_cycle_collector(scenario)
