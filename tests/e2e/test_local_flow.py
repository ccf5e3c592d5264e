"""The whole event flow against the local (ptyprocess) runtime: fast, no Docker."""

from __future__ import annotations

import pytest

from tests.harness import running_app

pytestmark = pytest.mark.gen_test(timeout=60)


async def test_hello_input_and_runtime_error() -> None:
    async with running_app(runtime="local") as h:
        t = await h.run('print("hi")\nname = input("Name? ")\nprint("hello", name)\n1/0\n', ["Bob"])
    assert t.output.startswith("hi\r\nName? hello Bob\r\nTraceback")
    assert t.named("input_required") == [
        {"sessionId": t.session_id, "prompt": "Name? ", "password": False, "detector": "proc"}
    ]
    assert t.named("error")[0]["error"] == "ZeroDivisionError: division by zero"
    assert t.named("error")[0]["line"] == 4
    assert t.complete["status"] == "runtime_error"
    assert t.complete["exitCode"] == 1
