"""Kernel resources counted per uid or per host must not let one sandbox starve the
others (real Docker). Each attacker runs beside victim sessions, which must stay
correct and fast."""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import statistics
import time
from typing import Any

import pytest

from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=180)]

# The AIO checks call io_setup (206) and io_destroy (207) by number.
X86_64 = platform.machine() == "x86_64"

# Uses every inotify instance and POSIX message queue its uid may have, then holds
# them and reports how far it got.
HOARDER = r"""
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 100000:
    if libc.inotify_init() < 0:
        break
    n += 1
print("inotify", n, os.strerror(ctypes.get_errno()), flush=True)
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
q = 0
while q < 10000:
    if libc.mq_open(b"/q%d" % q, os.O_CREAT | os.O_RDWR, 0o600, None) < 0:
        break
    q += 1
print("mqueues", q, os.strerror(ctypes.get_errno()), flush=True)
# Linux AIO events: twice the kernel's default host-wide limit (65536), if it can.
a = 0  # (x86_64 numbers; elsewhere io_setup fails and a stays 0)
while a < 2 * 65536:
    ctx = ctypes.c_ulong(0)
    if libc.syscall(206, 65536, ctypes.byref(ctx)) != 0:  # io_setup
        break
    a += 65536
print("aio", a, os.strerror(ctypes.get_errno()), flush=True)
input("holding ")
"""

# Opens ptys until its own limits (pids x nofile) stop it.
PTY_HOG = r"""
import os, time
kids = []
for k in range(50):
    pid = os.fork()
    if pid == 0:
        fds = []
        try:
            while True:
                fds.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
        except OSError as e:
            os.write(1, b"%d %s\n" % (len(fds), e.strerror.encode()))
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
time.sleep(2)
input("holding ")
"""

PROBE = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
print("probe uid", os.getuid(), "inotify", "ok" if fd >= 0 else os.strerror(ctypes.get_errno()))
ctx = ctypes.c_ulong(0)
rc = libc.syscall(206, 1, ctypes.byref(ctx))
print("aio", "ok" if rc == 0 else os.strerror(ctypes.get_errno()))
"""


def io_setup_works() -> bool:
    """Can this (host) process still set up an AIO context?"""
    libc = ctypes.CDLL(None, use_errno=True)
    ctx = ctypes.c_ulong(0)
    if libc.syscall(206, 1, ctypes.byref(ctx)) != 0:
        return False
    libc.syscall(207, ctx)  # io_destroy
    return True


def pty_max() -> int:
    with open("/proc/sys/kernel/pty/max") as f:
        return int(f.read())


async def victims(h: Harness) -> list[float]:
    """A print('hi') and an answered input(): seconds from POST to completion."""
    times = []
    t0 = time.monotonic()
    t = await h.run("print('hi')")
    assert t.output == "hi\r\n" and t.complete["status"] == "ok", t.events
    times.append(time.monotonic() - t0)
    t0 = time.monotonic()
    t = await h.run("name = input('name? ')\nprint('hello', name)", ["ada"])
    assert "hello ada" in t.output and t.complete["status"] == "ok", t.events
    times.append(time.monotonic() - t0)
    return times


async def start_attacker(h: Harness, code: str, marker: str) -> tuple[str, Any, list[str]]:
    """Start `code` and follow it until it prints `marker` (it then holds what it took)."""
    sio_cm = h.client()
    sio = await sio_cm.__aenter__()
    lines: list[str] = []
    ready = asyncio.Event()

    async def on_output(data: Any) -> None:
        lines.append(data["output"])
        if marker in "".join(lines):
            ready.set()

    sio.on("output", on_output)
    session_id = await h.execute(code)
    await sio.emit("join", {"sessionId": session_id})
    await asyncio.wait_for(ready.wait(), 60)
    return session_id, sio_cm, lines


async def test_inotify_and_mqueues_of_one_sandbox_are_its_own() -> None:
    async with running_app(time_limit=60, rate_limit_execute="", rate_limit_join="") as h:
        quiet = [sum(await victims(h)) for _ in range(2)]
        session_id, cm, lines = await start_attacker(h, HOARDER, "holding")
        text = "".join(lines)
        assert "inotify" in text and "mqueues" in text, text
        taken = int(text.split("inotify", 1)[1].split()[0])
        assert taken >= 100, text  # it really exhausted its own budget
        if X86_64 and os.geteuid() == 0:  # the server made room for all sandboxes' AIO
            assert "aio 131072" in text, text
        try:
            loud = sum(await victims(h))
            probe = await h.run(PROBE)
            assert "inotify ok" in probe.output, probe.output  # another sandbox is unharmed
            if X86_64:
                assert "aio ok" in probe.output, probe.output
                assert io_setup_works()  # and so is the host
            assert loud <= max(3 * statistics.median(quiet), 1.5), (quiet, loud)
        finally:
            await h.request("DELETE", f"/api/sessions/{session_id}")
            await cm.__aexit__(None, None, None)


async def test_two_live_sandboxes_never_share_a_uid() -> None:
    async with running_app(rate_limit_execute="", rate_limit_join="") as h:
        code = "import os, time\nprint('uid', os.getuid())\ninput('wait ')"
        a, cm_a, out_a = await start_attacker(h, code, "wait")
        b, cm_b, out_b = await start_attacker(h, code, "wait")
        try:
            uid_a = int("".join(out_a).split("uid", 1)[1].split()[0])
            uid_b = int("".join(out_b).split("uid", 1)[1].split()[0])
            base = h.app.settings.sandbox_uid_base if h.app else 0
            assert uid_a != uid_b and min(uid_a, uid_b) >= base > 65535
        finally:
            for sid, cm in ((a, cm_a), (b, cm_b)):
                await h.request("DELETE", f"/api/sessions/{sid}")
                await cm.__aexit__(None, None, None)


async def test_a_sandbox_opening_every_pty_it_can_leaves_room_for_others() -> None:
    async with running_app(time_limit=60, rate_limit_execute="", rate_limit_join="") as h:
        if os.geteuid() == 0:  # the server raised kernel.pty.max at start-up
            assert pty_max() >= 64 * 256 * (h.app.settings.max_sessions if h.app else 1)
        session_id, cm, lines = await start_attacker(h, PTY_HOG, "holding")
        text = "".join(lines)
        counts = [int(line.split()[0]) for line in text.splitlines() if line[:1].isdigit()]
        # Each process stops at its own descriptor limit (EMFILE), never at the
        # host's pty count (ENOSPC, which is what starved the others before).
        assert counts and all(
            "Too many open files" in line for line in text.splitlines() if line[:1].isdigit()
        ), text
        print(f"\nptys held by one sandbox: {sum(counts)} in {len(counts)} processes")
        try:
            # Four sessions started meanwhile all get their terminal and run.
            results = await asyncio.gather(*(victims(h) for _ in range(4)))
            assert all(max(r) < 10 for r in results), results
        finally:
            await h.request("DELETE", f"/api/sessions/{session_id}")
            await cm.__aexit__(None, None, None)
