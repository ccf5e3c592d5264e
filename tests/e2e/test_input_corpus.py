"""The input-detection corpus against real Docker: exact events, exact prompts."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.corpus.input_required import CASES
from tests.harness import running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=60)]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_input_required_exactly(case: dict[str, Any]) -> None:
    async with running_app() as h:
        t = await h.run(case["code"], case["answers"], stdin=case.get("stdin"))
    events = t.named("input_required")
    prompts = [e["prompt"] for e in events]
    assert prompts in (case["prompts"], case.get("prompts_either")), t.events
    if "password" in case:
        assert [e["password"] for e in events] == case["password"]
    assert all(e["detector"] == "proc" for e in events)
    assert t.complete["status"] == "ok", t.events
    # Everything printed before the block is delivered before the event.
    seen = ""
    for name, data in t.events:
        if name == "output":
            seen += data["output"]
        if name == "input_required":
            shown = re.sub(r"\x1b\[[0-9;]*m", "", seen).rstrip()
            assert shown.endswith(data["prompt"].rstrip()), (seen, data)
    if "output_has" in case:
        assert case["output_has"] in t.output
    if "output_lacks" in case:
        assert case["output_lacks"] not in t.output
    for answer in case["answers"]:
        if case.get("password") != [True]:
            assert t.output.count(answer) <= 2, "an answer was echoed to the event stream"


async def test_joining_while_the_program_waits_is_told_at_once() -> None:
    async with running_app() as h:
        session_id = await h.execute('import time\nprint("early", flush=True)\ninput("Now? ")\n')
        for _ in range(100):
            state = (await h.request("GET", f"/api/sessions/{session_id}")).body
            if state["waitingForInput"]:
                break
            await asyncio.sleep(0.05)
        assert state["prompt"] == "Now? "
        assert state["screen"]["lines"][:2] == ["early", "Now?"]
        async with h.client() as sio:
            got: list[tuple[str, Any]] = []
            waiting = asyncio.Event()

            async def on_any(event: str, data: Any = None) -> None:
                got.append((event, data))
                if event == "input_required":
                    waiting.set()

            sio.on("*", on_any)
            await sio.emit("join", {"sessionId": session_id})
            await asyncio.wait_for(waiting.wait(), 5)
            assert [e for e, _ in got] == ["output", "input_required"]
            assert got[0][1]["output"] == "early\r\nNow? "
            await sio.emit("input", {"input": "yes"})
            await h.wait_finished(session_id)


async def test_prompts_are_exact_under_load() -> None:
    """Many sessions asking many questions at once: every event carries its prompt and
    comes after the prompt's output (the engine's relay is slowest under load)."""
    code = "for i in range(8):\n    input(f'q{i}? ')\nprint('end')\n"
    async with running_app(max_sessions_per_ip=64, rate_limit_execute="") as h:
        runs = await asyncio.gather(*(h.run(code, [str(n) for n in range(8)]) for _ in range(8)))
    for t in runs:
        assert [e["prompt"] for e in t.named("input_required")] == [f"q{i}? " for i in range(8)]
        seen = ""
        for name, data in t.events:
            if name == "output":
                seen += data["output"]
            elif name == "input_required":
                assert seen.endswith(data["prompt"]), (seen, data)
        assert t.complete["status"] == "ok"
