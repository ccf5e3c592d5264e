"""The child's side of the display channel (codex_display, run here on real pipes): a
message waits for its own acknowledgement, even after an earlier wait was interrupted,
and a signal never cuts a message in two."""

from __future__ import annotations

import os
import signal
import threading
import time
import types
from collections.abc import Iterator

import pytest

from codex.runtime.sandbox import DISPLAY_SOURCE


class Interrupted(Exception):
    pass


@pytest.fixture
def channel() -> Iterator[tuple[types.ModuleType, int, int]]:
    """codex_display connected to pipes: (module, the supervisor's read end, its ack end)."""
    module = types.ModuleType("codex_display_under_test")
    exec(compile(DISPLAY_SOURCE, "codex_display.py", "exec"), module.__dict__)
    chan_r, chan_w = os.pipe()
    ack_r, ack_w = os.pipe()
    module._connect(chan_w, ack_r)
    yield module, chan_r, ack_w
    for fd in (chan_r, chan_w, ack_r, ack_w):
        os.close(fd)


def _interrupt_after(seconds: float) -> None:
    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def test_an_interrupted_wait_leaves_no_stale_ack_behind(
    channel: tuple[types.ModuleType, int, int],
) -> None:
    module, chan_r, ack_w = channel
    old = signal.getsignal(signal.SIGALRM)
    try:
        _interrupt_after(0.05)
        with pytest.raises(Interrupted):
            module._send(b"e")  # like Ctrl-C while the supervisor is still writing
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert os.read(chan_r, 64) == b"e 0\n"
    os.write(ack_w, b"k")  # the late ack of the interrupted message
    answered = threading.Event()
    timer = threading.Timer(0.3, lambda: (answered.set(), os.write(ack_w, b"k")))
    timer.start()
    module._send(b"o")
    # Had the stale ack been taken as this message's, _send would have returned at once.
    returned_after_its_ack = answered.is_set()
    timer.join()
    assert returned_after_its_ack and module._owed == 0
    assert os.read(chan_r, 64) == b"o 0\n"


def test_a_signal_during_a_long_message_does_not_cut_it(
    channel: tuple[types.ModuleType, int, int],
) -> None:
    module, chan_r, ack_w = channel
    payload = bytes(range(256)) * 2048  # 512 KiB: many pipe buffers' worth
    got = bytearray()

    def supervisor() -> None:
        expected = len(b"d %d\n" % len(payload)) + len(payload)
        while len(got) < expected:
            got.extend(os.read(chan_r, 65536))
            time.sleep(0.01)  # slow enough for the signal to come mid-write
        os.write(ack_w, b"k")

    reader = threading.Thread(target=supervisor)
    reader.start()
    old = signal.getsignal(signal.SIGALRM)
    try:
        _interrupt_after(0.03)  # the write takes ~80 ms: the signal comes during it
        try:
            module._send(b"d", payload)
        except Interrupted:
            pass  # raised once the message is whole, while waiting for the ack
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    reader.join(5)
    assert bytes(got) == b"d %d\n" % len(payload) + payload
