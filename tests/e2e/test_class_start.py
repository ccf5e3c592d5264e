"""A class start against real Docker: the pool grows when pages open and shrinks after
they leave; beyond max_sessions executions wait in a fair queue, each told its place
over Socket.IO, and start in arrival order; the queue's bound is a 503 with
Retry-After; one address cannot fill the line for the others."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from codex.runtime.docker.runtime import DockerRuntime
from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=150)]

WAITER = "input('wait? ')\nprint('went on')\n"


async def until(what: str, condition: Any, timeout: float = 40) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def ready(h: Harness) -> int:
    runtime = h.app.runtime
    assert isinstance(runtime, DockerRuntime) and runtime.pool is not None
    return runtime.pool.ready


async def test_open_pages_grow_the_pool_ahead_of_their_runs_and_it_shrinks_after() -> None:
    async with running_app(pool_size=1, pool_max=4, pool_linger=1.0, max_sessions=8) as h:
        await until("the floor", lambda: ready(h) == 1)
        async with contextlib.AsyncExitStack() as pages:
            for _ in range(3):
                await pages.enter_async_context(h.client())
            await until("one ready per open page", lambda: ready(h) == 3)
            runtime = h.app.runtime
            assert isinstance(runtime, DockerRuntime) and runtime.pool is not None
            hits = runtime.pool.hits
            # All three press Run: each takes a ready sandbox, none waits for the engine.
            transcripts = await asyncio.gather(*(h.run("print('hi')") for _ in range(3)))
            assert [t.complete["status"] for t in transcripts] == ["ok"] * 3
            assert runtime.pool.hits - hits == 3
        await until("back to the floor once the pages left", lambda: ready(h) == 1)


async def test_beyond_max_sessions_runs_wait_their_turn_and_are_told_their_place() -> None:
    async with running_app(max_sessions=1, queue_max=2, pool_size=1) as h:
        first = await h.execute(WAITER)
        second = await h.execute("print('second ran')")
        third = await h.execute("print('third ran')")
        got = await h.request("GET", f"/api/sessions/{third}")
        assert got.body["state"] == "queued" and got.body["queuePosition"] == 2
        full = await h.request("POST", "/api/execute", {"code": "print(1)"})
        assert full.status == 503 and full.body["code"] == "no_capacity"
        assert int(full.headers["Retry-After"]) >= 1
        places: list[int] = []

        async def on_event(event: str, data: Any) -> None:
            if event == "queued":
                places.append(data["position"])

        follow_third = asyncio.ensure_future(h.follow(third, on_event=on_event, timeout=60))
        await until("the third told its place", lambda: places == [2])
        async with h.client() as sio:  # the first learner answers: the line moves
            await sio.emit("join", {"sessionId": first})
            await sio.emit("input", {"sessionId": first, "input": "x"})
            done = await h.wait_finished(first, timeout=30)
        assert done["result"]["status"] == "ok"
        assert (await h.wait_finished(second, timeout=30))["result"]["status"] == "ok"
        transcript = await follow_third
        assert places == [2, 1]
        assert "third ran" in transcript.output and transcript.complete["status"] == "ok"
        # In arrival order: the second had ended before the third started.
        s2 = (await h.request("GET", f"/api/sessions/{second}")).body
        s3 = (await h.request("GET", f"/api/sessions/{third}")).body
        assert s2["createdAt"] <= s3["createdAt"]


async def test_one_address_cannot_fill_the_line_for_the_others() -> None:
    async with running_app(
        max_sessions=1, queue_max=3, max_sessions_per_ip=2, trusted_proxies=("127.0.0.1",)
    ) as h:

        async def post(address: str, code: str = WAITER) -> Any:
            return await h.request(
                "POST", "/api/execute", {"code": code}, headers={"X-Forwarded-For": address}
            )

        mine = [await post("10.1.0.9") for _ in range(2)]
        assert [r.status for r in mine] == [201, 201]
        third = await post("10.1.0.9")
        assert third.status == 429  # its own cap counts what it has queued
        neighbour = await post("10.2.0.9", "print('neighbour ran')")
        assert neighbour.status == 201
        for r in mine:
            await h.request("DELETE", f"/api/sessions/{r.body['sessionId']}")
        done = await h.wait_finished(neighbour.body["sessionId"], timeout=40)
        assert done["result"]["status"] == "ok"
