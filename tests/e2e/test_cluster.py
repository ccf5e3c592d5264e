"""Two real server processes sharing a real redis-server: a client of one follows and
answers a program running on the other; rate limits hold across both; the death of
an instance is heard by its clients, and its sandboxes are reaped by a survivor."""

from __future__ import annotations

import base64
import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import require
from tests.dockerutil import assert_gone_soon, containers_of_soon
from tests.servers import ServerProcess, codex_process, redis_server

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.gen_test(timeout=180)]


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    require("redis-server", None if shutil.which("redis-server") else "not installed")


@contextlib.asynccontextmanager
async def two_servers(*flags: str) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """A redis-server and two CodeX processes sharing it."""
    async with redis_server() as url:
        both = ("--redis-url", url, *flags)
        async with codex_process(*both) as a, codex_process(*both) as b:
            yield a, b


QUESTION = "name = input('Who? ')\nprint('Hello', name)\n"


async def test_a_client_of_one_instance_drives_a_program_on_the_other() -> None:
    async with two_servers("--pool-size", "1") as (a, b):
        on_a, on_b = a.harness, b.harness
        session_id = await on_b.execute(QUESTION)
        t = await on_a.follow(session_id, ["Ada"])
        assert t.output == "Who? Hello Ada\r\n"
        assert [d["prompt"] for d in t.named("input_required")] == ["Who? "]
        assert t.events[-1][0] == "execution_complete"
        assert t.complete["status"] == "ok"
        # Either instance answers for the session, and a late join replays it.
        state = await on_a.wait_finished(session_id)
        assert state["result"]["status"] == "ok" and state["owner"]
        replay = await on_a.follow(session_id)
        assert replay.output == t.output


async def test_figures_and_stderr_reach_a_client_of_the_other_instance() -> None:
    code = (
        "import sys\nimport matplotlib.pyplot as plt\nprint('oops', file=sys.stderr)\n"
        "plt.plot([1, 2]); plt.show()\n"
    )
    async with two_servers("--pool-size", "1") as (a, b):
        on_a, on_b = a.harness, b.harness
        session_id = await on_b.execute(code)
        t = await on_a.follow(session_id)
        marked = [d["output"] for e, d in t.events if e == "output" and d["stream"] == "stderr"]
        assert "".join(marked) == "oops\r\n"
        [shown] = t.named("display")
        state = await on_a.wait_finished(session_id)  # described by the owner
        assert [d["index"] for d in state["displays"]] == [1]
        image = await on_a.http.fetch(f"{on_a.base_url}/api/sessions/{session_id}/displays/1")
        assert image.headers["Content-Type"] == "image/png"
        assert image.body == base64.b64decode(shown["data"]["image/png"])


async def test_rate_limits_hold_across_instances() -> None:
    async with two_servers("--rate-limit-execute", "3/minute", "--pool-size", "0") as (a, b):
        on_a, on_b = a.harness, b.harness
        statuses = []
        for h in (on_a, on_b, on_a, on_b):
            resp = await h.request("POST", "/api/execute", {"code": "print(1)"})
            statuses.append(resp.status)
        assert statuses == [201, 201, 201, 429]


async def test_an_instance_that_dies_is_heard_of_and_reaped() -> None:
    async with two_servers("--instance-lease", "2", "--pool-size", "0") as (a, b):
        on_a, on_b = a.harness, b.harness
        session_id = await on_b.execute(QUESTION)
        assert await containers_of_soon(session_id)

        async def kill_owner(event: str, data: Any) -> None:
            if event == "input_required":
                b.kill()  # the owner dies while its program waits

        t = await on_a.follow(session_id, on_event=kill_owner)
        assert t.complete["status"] == "internal_error"
        assert t.named("error")[0]["code"] == "internal_error"
        # The survivor, sharing the engine, removes the dead instance's sandbox.
        await assert_gone_soon(session_id, within=15)
        # And a later join hears the same ending.
        later = await on_a.follow(session_id)
        assert later.complete["status"] == "internal_error"


async def test_a_terminal_on_one_instance_drives_a_program_on_the_other() -> None:
    async with two_servers("--pool-size", "1") as (a, b):
        on_a, on_b = a.harness, b.harness
        session_id = await on_b.execute(QUESTION)
        term = await on_a.terminal(session_id)
        await term.read_until(lambda c: c.named("input_required"))
        await term.send("set_size", 30, 100)
        await term.send("stdin", "Lin\r")
        await term.read_to_end()
    assert term.messages[0] == ["setup", {}]
    assert term.screen_text == "Who? Lin\r\nHello Lin\r\n"  # the terminal's echo included
    assert term.named("execution_complete")[0]["status"] == "ok"
    assert term.messages[-1] == ["disconnect", 1]
