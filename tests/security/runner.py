"""Running one attack program, and proving containment after it.

Every attack in the corpus goes through :func:`run_program` (the seed frontend's flow:
POST /api/execute, Socket.IO join, events until ``execution_complete``, with an
optional ``during`` hook that acts while the program runs), and then through
:func:`assert_contained`: no container of the session left within 2 s, ``/healthz``
answers 200, and a follow-up ``print("ok")`` completes ``ok``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio

from codex.config import Settings
from tests.dockerutil import containers_of
from tests.harness import Harness, Transcript

# -- the canary -------------------------------------------------------------------------

CANARY_ENV = "CODEX_TEST_CANARY"
# Set once, at import (conftest imports this module at collection): the in-process
# server, and any subprocess server a test starts, has it in its environment.
CANARY = os.environ.setdefault(CANARY_ENV, "canary-" + secrets.token_hex(16))


def assert_no_canary(t: Transcript) -> None:
    """Neither the canary's value nor its name appears in anything the session sent."""
    dumped = json.dumps(t.events, ensure_ascii=False)
    assert CANARY not in dumped, "the server's canary secret reached the program's output"
    assert CANARY_ENV not in dumped, "the canary's variable name reached the program's output"


# -- settings ---------------------------------------------------------------------------

SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)}

# Every case runs on its own server. One pooled container keeps start-up cheap and still
# exercises both paths (the attack usually gets the pooled sandbox, the follow-up a cold
# one or the refill). A hang must end well within the test's own timeout.
BASE_SETTINGS: dict[str, Any] = {"pool_size": 1, "time_limit": 5.0}


def sanitization_off() -> dict[str, Any]:
    """Every output-sanitization setting the server has, turned off.

    The corpus must prove containment without help from output filtering: escape
    sequences, invalid UTF-8 and binary reach the pipeline as the program wrote them.
    The setting's name is not fixed yet, so any setting whose name mentions
    sanitizing is turned off (a bool becomes False; a choice becomes "off"/"none").
    """
    off: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if "saniti" not in f.name:
            continue
        if isinstance(f.default, bool):
            off[f.name] = False
        else:
            choices = f.metadata.get("choices") or ()
            for value in ("off", "none", "raw", "false", ""):
                if not choices or value in choices:
                    off[f.name] = value
                    break
    return off


def no_rate_limits() -> dict[str, Any]:
    """Rate limits off (for tests that send many requests on purpose, not as a storm)."""
    return {n: "" for n in ("rate_limit_execute", "rate_limit_join") if n in SETTING_NAMES}


def server_settings(**overrides: Any) -> dict[str, Any]:
    unknown = set(overrides) - SETTING_NAMES
    assert not unknown, f"settings the server does not have: {sorted(unknown)}"
    return {**BASE_SETTINGS, **sanitization_off(), **overrides}


# -- one run ----------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """A program being run: what hooks can see and do while it runs."""

    h: Harness
    sio: socketio.AsyncClient
    settings: Settings
    session_id: str = ""
    events: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def output(self) -> str:
        return "".join(d["output"] for e, d in self.events if e == "output")

    def named(self, name: str) -> list[Any]:
        return [d for e, d in self.events if e == name]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        """Until predicate() holds (True), or the session ends or time runs out (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if self.done.is_set() or loop.time() > deadline:
                return predicate()
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                pass
        return True

    async def wait_output(self, text: str, timeout: float = 10) -> bool:
        return await self.wait_for(lambda: text in self.output, timeout)

    async def call(self, event: str, data: Any, timeout: float = 10) -> Any:
        """Emit an event and return its acknowledgement."""
        return await self.sio.call(event, data, timeout=timeout)

    async def container_ids(self) -> list[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, containers_of, self.session_id)


Hook = Callable[[Run], Awaitable[None]]


async def run_program(
    h: Harness,
    settings: Settings,
    code: str,
    *,
    stdin: str | None = None,
    during: Hook | None = None,
    timeout: float = 60,
) -> tuple[Transcript, dict[str, Any]]:
    """Run ``code`` the way the seed frontend does; ``during`` runs beside it (started
    once the client has joined) and may wait for ``run.done`` to act after the end."""
    async with h.client() as sio:
        run = Run(h, sio, settings)

        async def on_any(event: str, data: Any = None) -> None:
            run.events.append((event, data))
            run.changed.set()
            if event == "execution_complete":
                run.done.set()

        sio.on("*", on_any)
        extra = {"stdin": stdin} if stdin is not None else {}
        run.session_id = await h.execute(code, **extra)
        await sio.emit("join", {"sessionId": run.session_id})
        hook = asyncio.ensure_future(during(run)) if during is not None else None
        try:
            await asyncio.wait_for(run.done.wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no execution_complete within {timeout} s; events so far: "
                f"{_short_events(run.events)}"
            ) from None
        finally:
            if hook is not None and not run.done.is_set():
                hook.cancel()
        if hook is not None:
            await asyncio.wait_for(hook, 20)
    return Transcript(run.session_id, run.events), run.extra


def _short_events(events: list[tuple[str, Any]]) -> str:
    text = repr(events)
    return text if len(text) < 3000 else text[:1500] + " ... " + text[-1500:]


# -- containment ------------------------------------------------------------------------


GONE_WITHIN = 2.0  # seconds: the spec's bound for a session's container to disappear


async def assert_gone_within(session_id: str, within: float = GONE_WITHIN) -> None:
    """No container of the session within ``within`` s; on failure, says whether it
    went later (slow removal) or stayed (a leak), watching up to 15 s."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        left = await loop.run_in_executor(None, containers_of, session_id)
        waited = loop.time() - start
        if not left:
            assert waited <= within, (
                f"the container of {session_id} went only after {waited:.1f} s (bound {within} s)"
            )
            return
        assert waited < 15, f"containers left for {session_id} after 15 s: {left}"
        await asyncio.sleep(0.1)


async def assert_contained(h: Harness, session_id: str) -> None:
    """After an attack: nothing of it left, the server healthy, the next run works."""
    await assert_gone_within(session_id)
    health = await h.request("GET", "/healthz")
    assert health.status == 200, f"/healthz after the attack: {health}"
    follow = await h.run('print("ok")', timeout=30)
    assert follow.complete["status"] == "ok", f"the follow-up run: {follow.events}"
    assert follow.output == "ok\r\n", f"the follow-up run's output: {follow.output!r}"
    await assert_gone_within(follow.session_id)


# -- reading a program's reports --------------------------------------------------------

REPORT = "@@"


def reports(output: str) -> dict[str, Any]:
    """The JSON objects a program printed on lines starting with ``@@``, merged."""
    merged: dict[str, Any] = {}
    for line in output.replace("\r", "").split("\n"):
        at = line.find(REPORT + "{")
        if at < 0:
            continue
        try:
            value = json.loads(line[at + len(REPORT) :])
        except ValueError:
            continue
        if isinstance(value, dict):
            merged.update(value)
    return merged


# -- host-side facts --------------------------------------------------------------------


def host_processes_with(marker: str) -> list[int]:
    """Host PIDs whose command line contains ``marker`` (this process excepted)."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def docker_inspect(container_id: str) -> dict[str, Any] | None:
    done = subprocess.run(
        ["docker", "inspect", container_id], capture_output=True, text=True, timeout=20
    )
    if done.returncode != 0:
        return None
    parsed = json.loads(done.stdout)
    return parsed[0] if parsed else None


def docker_socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else "/var/run/docker.sock"
