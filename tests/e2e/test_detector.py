"""The proc detector's cost is bounded whatever the program does, and stays exact.

No Docker: the detector runs against real local processes on a pty of their own (it
works on any pid the test may ptrace; as root, any). The hostile program parks 60
threads in select() on every descriptor it can open (nofile 256, as in the sandbox),
with nfds = 1024 and every bit set but the terminal's: before the bound, one poll did
60 x 1024 readlinks (~430 ms of CPU on the test machine)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codex.sessions.input import detector as input_detect
from codex.sessions.input.detector import MAX_FD_CHECKS, ProcDetector, proc_detector_available
from codex.sessions.input.watcher import SESSION_SHARE, InputWatcher

pytestmark = pytest.mark.skipif(
    not proc_detector_available() or os.geteuid() != 0,
    reason="the proc detector needs /proc/<pid>/task/<tid>/syscall and root",
)

# argv: threads, then what one more thread does: none | select | read | poll. Every
# parked thread selects on all descriptors but the terminal's (1, 2 and the highest,
# a dup of the terminal); "select"/"poll" watch the highest too, "read" reads it.
PARKER = r"""
import ctypes, os, resource, select, sys, threading, time
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
os.dup2(r, 0)  # stdin is no longer the terminal
fds = []
try:
    while True:
        fds.append(os.dup(r))
except OSError:
    pass
high = fds.pop()
os.dup2(1, high)  # the highest descriptor is the terminal
every = bytearray([0xFF] * 128)  # nfds 1024: bits past the table are ignored
parked = bytearray(every)
for fd in (1, 2, high):
    parked[fd // 8] &= ~(1 << fd % 8)
def park(bits):
    buf = ctypes.create_string_buffer(bytes(bits), 128)
    libc.select(1024, buf, None, None, None)
threads = 0
for _ in range(int(sys.argv[1])):
    try:
        threading.Thread(target=park, args=(parked,), daemon=True).start()
        threads += 1
    except RuntimeError:
        break
mode = sys.argv[2]
time.sleep(0.2)  # the parked threads are in select() before the one that waits
if mode == "select":
    watch = bytearray(every)
    for fd in (1, 2):
        watch[fd // 8] &= ~(1 << fd % 8)
    threading.Thread(target=park, args=(watch,), daemon=True).start()
elif mode == "read":
    threading.Thread(target=os.read, args=(high, 1), daemon=True).start()
elif mode == "poll":
    p = select.poll()
    for fd in [0, *fds, high]:
        p.register(fd, select.POLLIN)
    threading.Thread(target=p.poll, daemon=True).start()
print("ready", len(fds), threads, flush=True)
time.sleep(120)
"""


class Program:
    def __init__(self, proc: subprocess.Popen[bytes], master: int) -> None:
        self.proc = proc
        self.master = master

    @property
    def pid(self) -> int:
        return self.proc.pid


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """spawn(threads, mode) -> Program: `sh` on a fresh pty (the root the detector
    starts from, as the supervisor is in the sandbox), the parker its child."""
    script = tmp_path / "parker.py"
    script.write_text(PARKER)
    started: list[Program] = []

    def start(threads: int, mode: str) -> Program:
        master, slave = os.openpty()
        proc = subprocess.Popen(
            ["sh", "-c", f'"{sys.executable}" {script} {threads} {mode}; true'],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        program = Program(proc, master)
        started.append(program)
        seen = b""
        deadline = time.monotonic() + 20
        while b"ready" not in seen or not seen.endswith(b"\n"):
            assert time.monotonic() < deadline, seen
            seen += os.read(master, 200)
        time.sleep(0.2)  # the last thread reaches its wait
        return program

    yield start
    for program in started:
        # The whole session: sh and the parker under it (killing sh alone leaves it).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(program.proc.pid, signal.SIGKILL)
        program.proc.wait(10)
        os.close(program.master)


def _cpu_ms(fn: object) -> float:
    t0 = time.thread_time()
    fn()  # type: ignore[operator]
    return (time.thread_time() - t0) * 1000


def test_sixty_threads_in_select_cost_a_bounded_poll(spawn) -> None:  # type: ignore[no-untyped-def]
    program = spawn(60, "none")
    detector = ProcDetector(program.pid)
    assert detector.terminal is not None
    first = _cpu_ms(lambda: detector.poll())
    assert detector.poll() is None
    assert detector.tasks >= 62  # sh, the parker's main thread and 60 in select()
    # Each process's table is resolved once for all its threads; no more than the budget.
    first_checks = detector.fd_checks
    costs = [_cpu_ms(lambda: detector.poll()) for _ in range(5)]
    # Remembered waits: per task its syscall, schedule count and children only.
    assert detector.fd_checks == 0
    assert detector.ops <= 3 * detector.tasks + 4, detector.ops
    assert first_checks <= MAX_FD_CHECKS
    # Loose bounds (measured: ~15 ms and ~2.5 ms; it was ~430 ms a poll).
    assert first < 150, first
    assert min(costs) < 25, costs


@pytest.mark.parametrize("mode", ["select", "read", "poll"])
def test_a_terminal_wait_among_parked_threads_is_found(spawn, mode: str) -> None:  # type: ignore[no-untyped-def]
    program = spawn(60, mode)
    detector = ProcDetector(program.pid)
    block = detector.poll()
    assert block is not None
    assert detector.fd_checks <= MAX_FD_CHECKS
    assert detector.still(block)
    # The same wait, found again: the same Block (the watcher's "already announced").
    assert detector.poll() == block


def test_nothing_is_found_when_no_thread_waits_on_the_terminal(spawn) -> None:  # type: ignore[no-untyped-def]
    program = spawn(20, "none")
    detector = ProcDetector(program.pid)
    assert [detector.poll() for _ in range(3)] == [None, None, None]


def test_a_wait_bigger_than_the_budget_is_decided_over_a_few_polls(  # type: ignore[no-untyped-def]
    spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_detect, "MAX_FD_CHECKS", 40)
    program = spawn(10, "select")
    detector = ProcDetector(program.pid)
    found = None
    polls = 0
    while found is None and polls < 30:
        found = detector.poll()
        polls += 1
        assert detector.fd_checks <= 40
    assert found is not None
    assert polls > 1  # 250 descriptors: more than one poll's budget
    # Decided once: later polls cost no readlink for the parked threads.
    detector.poll()
    assert detector.fd_checks <= 1


def test_tasks_per_poll_are_capped(spawn, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(input_detect, "MAX_TASKS", 20)
    program = spawn(60, "none")
    detector = ProcDetector(program.pid)
    detector.poll()
    assert detector.tasks == 20


class FakeSink:
    announced = False
    last_output = 0.0
    output_bytes = 0

    def __init__(self) -> None:
        self.announcements: list[bool] = []

    def prompt(self) -> str:
        return ""

    def announce(self, password: bool) -> None:
        self.announcements.append(password)
        self.announced = True

    async def sync(self) -> bool:
        return True

    def withdraw(self) -> None:
        self.announced = False


async def _watch(pid: int, seconds: float, nudge_every: float | None) -> InputWatcher:
    watcher = InputWatcher(FakeSink(), lambda: pid, 0.05)
    task = asyncio.ensure_future(watcher.run())
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    try:
        while loop.time() < end:
            await asyncio.sleep(nudge_every or 0.05)
            if nudge_every is not None:
                watcher.nudge()  # output all the time: "check soon"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return watcher


@pytest.mark.gen_test(timeout=60)
async def test_the_watcher_backs_off_an_expensive_session(spawn) -> None:  # type: ignore[no-untyped-def]
    """Output nudges the watcher to look 10 ms after it, and at least every
    max_interval (50 ms) while it goes on; a session whose poll is expensive (60 parked
    threads) is looked at no more than its share of a core allows, while a cheap one
    is looked at every max_interval."""
    parked = spawn(60, "none")
    cheap = spawn(0, "none")
    seconds = 2.0
    for nudge in (0.005, None):
        expensive = await _watch(parked.pid, seconds, nudge)
        assert expensive.name == "proc"
        # Its share, plus the first poll (which resolves every descriptor once).
        assert expensive.poll_seconds <= SESSION_SHARE * seconds * 1.5 + 0.05, (
            expensive.polls,
            expensive.poll_seconds,
        )
        assert expensive.polls >= 3  # still looked at, a few times a second
    fast = await _watch(cheap.pid, seconds, 0.005)
    # ~20 a second while nudged (not one per nudge: a stream of output is no prompt).
    assert 10 * seconds <= fast.polls <= 30 * seconds, fast.polls
