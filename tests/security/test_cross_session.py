"""Cross-session snooping: one session plants a secret everywhere it can (files in /tmp
and /dev/shm, its environment and command line, an abstract Unix socket, a loopback
port, a SysV shared-memory segment); another session searches for it everywhere it
can (its /tmp, /dev/shm, /var/tmp, /run, every /proc/<pid>/environ|cmdline|fd|root,
the socket, the port, the segment). Run twice in a row (the writer has ended: nothing
of it may be left for the next sandbox) and twice at once (both pairs run together,
each writer alive while its snooper searches). The secret must never be found, and
each client must only ever see its own session's events."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

import pytest

from codex.config import Settings
from tests.harness import Harness, Transcript, running_app
from tests.security.corpus import PRELUDE
from tests.security.runner import (
    Run,
    assert_contained,
    assert_no_canary,
    reports,
    run_program,
    server_settings,
)

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=180)]

SHM_KEY = 0x5EC0DE

WRITER = (
    PRELUDE
    + r"""
import socket, subprocess, time
secret = "__SECRET__"
for path in ("/tmp/secret.txt", "/tmp/.hidden-secret", "/dev/shm/secret"):
    try:
        with open(path, "w") as f:
            f.write(secret)
    except OSError as e:
        report(**{"write " + path: errname(e)})
child = subprocess.Popen(["sh", "-c", "sleep 60", secret], env={"SECRET": secret})
abstract = socket.socket(socket.AF_UNIX)
abstract.bind("\0codex-secret")
abstract.listen(1)
port = socket.socket()
port.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
port.bind(("127.0.0.1", 47474))
port.listen(1)
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(__SHM_KEY__, 4096, 0o1000 | 0o666)  # IPC_CREAT
if shm >= 0:
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, secret.encode(), len(secret))
report(shm=shm)
print("READY", flush=True)
if __HOLD__:
    input("release? ")
print("WRITER-DONE", flush=True)
"""
)

SNOOPER = (
    PRELUDE
    + r"""
import socket, stat
needle = "__SECRET__".encode()
me = os.getpid()
found = []
def look(path, data):
    if needle in data:
        found.append(path)
for top in ("/tmp", "/dev/shm", "/var/tmp", "/run", "/dev/mqueue"):
    for root, dirs, files in os.walk(top):
        for n in files:
            p = os.path.join(root, n)
            try:
                if stat.S_ISREG(os.lstat(p).st_mode):
                    with open(p, "rb") as f:
                        look(p, f.read(1 << 20))
            except OSError:
                pass
pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
for pid in pids:
    for leaf in ("environ", "cmdline"):
        try:
            with open("/proc/%s/%s" % (pid, leaf), "rb") as f:
                look("/proc/%s/%s" % (pid, leaf), f.read())
        except OSError:
            pass
    try:
        for fd in os.listdir("/proc/%s/fd" % pid):
            look("/proc/%s/fd/%s" % (pid, fd), os.readlink("/proc/%s/fd/%s" % (pid, fd)).encode())
    except OSError:
        pass
    for p in ("/proc/%s/root/tmp/secret.txt" % pid, "/proc/%s/cwd/secret.txt" % pid):
        try:
            with open(p, "rb") as f:
                look(p, f.read())
        except OSError:
            pass
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\0codex-secret"); found.append("abstract socket")
except OSError:
    pass
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", 47474)); found.append("loopback port")
except OSError:
    pass
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget(__SHM_KEY__, 0, 0) >= 0:
    found.append("sysv shm")
try:
    with open("/proc/sysvipc/shm") as f:
        if "%d" % __SHM_KEY__ in f.read():
            found.append("/proc/sysvipc/shm")
except OSError:
    pass
report(found=found, pids=len(pids))
"""
)


def program(template: str, secret: str, hold: bool = False) -> str:
    return (
        template.replace("__SECRET__", secret)
        .replace("__SHM_KEY__", str(SHM_KEY))
        .replace("__HOLD__", "True" if hold else "False")
    )


def settings_for_test() -> tuple[dict[str, Any], Settings]:
    overrides = server_settings(time_limit=15, pool_size=2)
    return overrides, dataclasses.replace(Settings(), port=0, **overrides)


def assert_isolated(writer: Transcript, snooper: Transcript, secret: str) -> None:
    assert writer.complete["status"] == "ok", writer.events[-3:]
    assert "WRITER-DONE" in writer.output
    assert reports(writer.output)["shm"] >= 0, "the writer could not plant its segment"
    assert snooper.complete["status"] == "ok", snooper.events[-3:]
    found = reports(snooper.output)
    assert found["found"] == [], f"the snooper found the writer's secret: {found['found']}"
    assert secret not in snooper.output
    for t in (writer, snooper):
        assert {d["sessionId"] for _, d in t.events if isinstance(d, dict)} <= {t.session_id}
        assert_no_canary(t)


async def in_a_row(h: Harness, settings: Settings) -> None:
    secret = "sekrit-" + secrets.token_hex(16)
    writer, _ = await run_program(h, settings, program(WRITER, secret))
    snooper, _ = await run_program(h, settings, program(SNOOPER, secret))
    assert_isolated(writer, snooper, secret)
    await assert_contained(h, writer.session_id)
    await assert_contained(h, snooper.session_id)


async def at_once(h: Harness, settings: Settings) -> None:
    secret = "sekrit-" + secrets.token_hex(16)
    seen: dict[str, Any] = {}

    async def snoop_while_alive(run: Run) -> None:
        assert await run.wait_output("READY", 20), run.events
        seen["snooper"], _ = await run_program(h, settings, program(SNOOPER, secret))
        seen["writer_alive"] = not run.done.is_set()
        await run.call("input", {"input": "go", "sessionId": run.session_id})

    writer, _ = await run_program(
        h, settings, program(WRITER, secret, hold=True), during=snoop_while_alive
    )
    assert seen["writer_alive"], "the writer ended before the snooper searched"
    assert_isolated(writer, seen["snooper"], secret)
    await assert_contained(h, writer.session_id)
    await assert_contained(h, seen["snooper"].session_id)


async def test_snooping_twice_in_a_row() -> None:
    overrides, settings = settings_for_test()
    async with running_app(**overrides) as h:
        await in_a_row(h, settings)
        await in_a_row(h, settings)


async def test_snooping_twice_at_once() -> None:
    overrides, settings = settings_for_test()
    async with running_app(**overrides) as h:
        await asyncio.gather(at_once(h, settings), at_once(h, settings))


async def test_the_snooper_finds_a_secret_in_its_own_sandbox() -> None:
    """Control: the same search, run in the writer's own sandbox, finds every plant.
    Without this, "found nothing" could mean "looked nowhere"."""
    overrides, settings = settings_for_test()
    secret = "sekrit-" + secrets.token_hex(16)
    both = program(WRITER, secret) + program(SNOOPER, secret)
    async with running_app(**overrides) as h:
        t, _ = await run_program(h, settings, both)
        await assert_contained(h, t.session_id)
    assert t.complete["status"] == "ok", t.events[-3:]
    found = reports(t.output)["found"]
    expected = [
        "/tmp/secret.txt",
        "/tmp/.hidden-secret",
        "/dev/shm/secret",
        "abstract socket",
        "loopback port",
        "sysv shm",
    ]
    assert [p for p in expected if p not in found] == [], found
    assert any(p.endswith("/cmdline") for p in found), found
    assert any(p.endswith("/environ") for p in found), found
