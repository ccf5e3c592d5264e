"""Session rules that do not depend on the sandbox (local runtime, fast): the
disconnect grace period, the input budget, the teaching policy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.harness import running_app

pytestmark = pytest.mark.gen_test(timeout=60)

LOOP = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(0.05)\n"


async def test_a_client_that_leaves_and_comes_back_in_time_keeps_its_program() -> None:
    async with running_app(runtime="local", disconnect_grace=1.0) as h:
        session_id = await h.execute(LOOP)
        async with h.client() as sio:
            await sio.call("join", {"sessionId": session_id})
        await asyncio.sleep(0.5)  # gone for less than the grace period
        async with h.client() as sio:
            got: list[tuple[str, Any]] = []
            sio.on("*", lambda e, d=None: got.append((e, d)))
            await sio.call("join", {"sessionId": session_id})
            await asyncio.sleep(1.5)  # re-attached: past the first grace deadline
            state = (await h.request("GET", f"/api/sessions/{session_id}")).body
            assert state["state"] == "running"
            assert got[0] == (
                "output",
                {"output": "up\r\n", "sessionId": session_id, "stream": "stdout"},
            )
        # Left for good: cancelled after the grace period.
        state = await h.wait_finished(session_id, timeout=10)
        assert state["result"]["status"] == "cancelled"


async def test_a_program_nobody_joined_is_not_cancelled_for_it() -> None:
    async with running_app(runtime="local", disconnect_grace=0.2, time_limit=1.0) as h:
        session_id = await h.execute(LOOP)
        state = await h.wait_finished(session_id, timeout=10)
        assert state["result"]["status"] == "timeout"


async def test_input_budget_per_session() -> None:
    code = "while True:\n    input()\n"
    async with running_app(runtime="local", max_session_input_bytes=100) as h, h.client() as sio:
        session_id = await h.execute(code)
        await sio.call("join", {"sessionId": session_id})
        acks = [await sio.call("input", {"input": "x" * 30}) for _ in range(4)]
        assert [a.get("code") for a in acks] == [None, None, None, "payload_too_large"]
        await h.request("DELETE", f"/api/sessions/{session_id}")


async def test_teaching_policy_refuses_with_the_line() -> None:
    async with running_app(runtime="local", forbidden_imports=("os",)) as h:
        resp = await h.request("POST", "/api/execute", {"code": "print(1)\nimport os\n"})
        assert resp.status == 422
        assert resp.body["code"] == "policy_violation" and resp.body["line"] == 2
        ok = await h.request("POST", "/api/execute", {"code": "import math\n"})
        assert ok.status == 201


async def test_finished_sessions_are_kept_within_a_bound() -> None:
    async with running_app(runtime="local", max_finished_sessions=2) as h:
        ids = []
        for n in range(3):
            ids.append(await h.execute(f"print({n})"))
            await h.wait_finished(ids[-1])
        assert (await h.request("GET", f"/api/sessions/{ids[0]}")).status == 404
        for session_id in ids[1:]:
            assert (await h.request("GET", f"/api/sessions/{session_id}")).status == 200
