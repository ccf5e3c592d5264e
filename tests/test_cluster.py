"""Two real server processes sharing a real redis-server: a client of one follows and
answers a program running on the other; rate limits hold across both; the death of
an instance is heard by its clients, and its sandboxes are reaped by a survivor."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.harness import Harness
from tests.servers import codex_process, redis_server

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.gen_test(timeout=180)]

if shutil.which("redis-server") is None:
    reason = "redis-server is not installed (apt-get install redis-server)"
    pytestmark.append(
        pytest.mark.xfail(reason=reason, run=False, strict=True)
        if IN_CI
        else pytest.mark.skip(reason=reason)
    )

QUESTION = "name = input('Who? ')\nprint('Hello', name)\n"


async def follow(h: Harness, session_id: str, answers: list[str]) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    done = asyncio.Event()
    async with h.client() as sio:

        async def on_any(event: str, data: Any = None) -> None:
            events.append((event, data))
            if event == "input_required" and answers:
                await sio.emit("input", {"input": answers.pop(0)})
            if event == "execution_complete":
                done.set()

        sio.on("*", on_any)
        ack = await sio.call("join", {"sessionId": session_id})
        assert ack["sessionId"] == session_id, ack
        await asyncio.wait_for(done.wait(), 30)
    return events


async def test_a_client_of_one_instance_drives_a_program_on_the_other() -> None:
    async with redis_server() as url:
        flags = ("--redis-url", url, "--pool-size", "1")
        async with codex_process(*flags) as a, codex_process(*flags) as b:
            on_a, on_b = Harness(None, a.base_url), Harness(None, b.base_url)
            session_id = await on_b.execute(QUESTION)
            events = await follow(on_a, session_id, ["Ada"])
            output = "".join(d["output"] for e, d in events if e == "output")
            assert output == "Who? Hello Ada\r\n"
            assert [d["prompt"] for e, d in events if e == "input_required"] == ["Who? "]
            assert events[-1][0] == "execution_complete"
            assert events[-1][1]["status"] == "ok"
            # Either instance answers for the session, and a late join replays it.
            state = await on_a.wait_finished(session_id)
            assert state["result"]["status"] == "ok" and state["owner"]
            replay = await follow(on_a, session_id, [])
            assert "".join(d["output"] for e, d in replay if e == "output") == output


async def test_rate_limits_hold_across_instances() -> None:
    async with redis_server() as url:
        flags = ("--redis-url", url, "--rate-limit-execute", "3/minute", "--pool-size", "0")
        async with codex_process(*flags) as a, codex_process(*flags) as b:
            on_a, on_b = Harness(None, a.base_url), Harness(None, b.base_url)
            statuses = []
            for h in (on_a, on_b, on_a, on_b):
                resp = await h.request("POST", "/api/execute", {"code": "print(1)"})
                statuses.append(resp.status)
            assert statuses == [201, 201, 201, 429]


async def test_an_instance_that_dies_is_heard_of_and_reaped() -> None:
    async with redis_server() as url:
        flags = ("--redis-url", url, "--instance-lease", "2", "--pool-size", "0")
        async with codex_process(*flags) as a, codex_process(*flags) as b:
            on_a, on_b = Harness(None, a.base_url), Harness(None, b.base_url)
            session_id = await on_b.execute(QUESTION)
            assert await containers_of_soon(session_id)
            events: list[tuple[str, Any]] = []
            done = asyncio.Event()
            async with on_a.client() as sio:

                async def on_any(event: str, data: Any = None) -> None:
                    events.append((event, data))
                    if event == "input_required":
                        b.kill()  # the owner dies while its program waits
                    if event == "execution_complete":
                        done.set()

                sio.on("*", on_any)
                await sio.call("join", {"sessionId": session_id})
                await asyncio.wait_for(done.wait(), 30)
            complete = events[-1][1]
            assert complete["status"] == "internal_error"
            errors = [d for e, d in events if e == "error"]
            assert errors and errors[0]["code"] == "internal_error"
            # The survivor, sharing the engine, removes the dead instance's sandbox.
            await assert_gone_soon(session_id, within=15)
            # And a later join hears the same ending.
            later = await follow(on_a, session_id, [])
            assert later[-1][1]["status"] == "internal_error"
