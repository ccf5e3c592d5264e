"""End to end against a real Docker engine, with a real Socket.IO client."""

from __future__ import annotations

import asyncio

import pytest

from tests.dockerutil import assert_gone_soon, containers_of, containers_of_soon
from tests.harness import running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]


async def test_hello_world_seed_flow() -> None:
    async with running_app() as h:
        t = await h.run('print("hello, world")')
        assert t.output == "hello, world\r\n"
        assert t.complete["status"] == "ok"
        assert t.complete["exitCode"] == 0
        assert t.complete["durationMs"] > 0
        assert [e for e, _ in t.events][-1] == "execution_complete"
        await assert_gone_soon(t.session_id)


async def test_late_join_gets_whole_transcript_and_completion() -> None:
    code = "for i in range(300):\n    print('line', i)\n"
    async with running_app() as h:
        session_id = await h.execute(code)
        await h.wait_finished(session_id)
        t = await h.follow(session_id)
    assert t.output == "".join(f"line {i}\r\n" for i in range(300))
    assert [e for e, _ in t.events].count("execution_complete") == 1
    assert t.events[-1][0] == "execution_complete"


async def test_input_round_trip_answer_not_duplicated() -> None:
    code = 'a = input("First? ")\nb = input("Second? ")\nprint(f"got {a} and {b}")\n'
    async with running_app() as h:
        t = await h.run(code, ["alpha", "beta"])
    assert [d["prompt"] for d in t.named("input_required")] == ["First? ", "Second? "]
    assert t.output == "First? Second? got alpha and beta\r\n"
    assert t.output.count("alpha") == 1
    assert t.complete["status"] == "ok"


async def test_stdin_typed_ahead() -> None:
    code = 'a = input()\nb = input()\nprint("sum", int(a) + int(b))\n'
    async with running_app() as h:
        t = await h.run(code, stdin="2\n3\n")
    assert "sum 5" in t.output
    assert t.named("input_required") == []  # the answers were waiting: no read blocked
    assert t.complete["status"] == "ok"


async def test_multibyte_character_split_across_reads_arrives_whole() -> None:
    code = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write('€'.encode()[:2]); out.flush(); time.sleep(0.3)\n"
        "out.write('€'.encode()[2:] + b'\\n'); out.flush()\n"
        "out.write(b'bad \\xff byte\\n'); out.flush()\n"
    )
    async with running_app() as h:
        t = await h.run(code)
    assert t.output == "€\r\nbad \ufffd byte\r\n"
    assert all("\ufffd" not in d["output"] or "bad" in d["output"] for d in t.named("output"))


async def test_syntax_error_costs_no_container() -> None:
    async with running_app() as h:
        started = 0
        real_start = h.app.runtime.start

        async def counting_start(spec):  # type: ignore[no-untyped-def]
            nonlocal started
            started += 1
            return await real_start(spec)

        h.app.runtime.start = counting_start  # type: ignore[method-assign]
        resp = await h.request("POST", "/api/execute", {"code": "print('a'\nx = 1\n"})
        assert resp.status == 201
        assert resp.body["status"] == "syntax_error"
        t = await h.run("def f(:\n    pass\n")
    assert started == 0
    error = t.named("error")[0]
    assert error["code"] == "syntax_error"
    assert error["error"].startswith("SyntaxError: ") and error["error"].endswith("(line 1)")
    assert error["line"] == 1 and isinstance(error["offset"], int)
    assert t.complete["status"] == "syntax_error"
    assert containers_of(t.session_id) == []


async def test_runtime_error_type_and_line_from_the_sandbox() -> None:
    code = "def f(x):\n    return {}[x]\n\nprint('before')\nf('missing')\n"
    async with running_app() as h:
        t = await h.run(code)
    error = t.named("error")[0]
    assert error == {
        "error": "KeyError: 'missing'",
        "code": "runtime_error",
        "line": 2,
        "sessionId": t.session_id,
    }
    assert "Traceback (most recent call last)" in t.output
    assert t.complete["status"] == "runtime_error"
    assert t.complete["exitCode"] == 1


async def test_printed_traceback_is_not_an_error() -> None:
    code = (
        'print("Traceback (most recent call last):")\n'
        'print("ZeroDivisionError: division by zero")\n'
        'print("\\x1b]6973;forged;{\\"exitCode\\": 1}\\x07")\n'
    )
    async with running_app() as h:
        t = await h.run(code)
    assert t.named("error") == []
    assert t.complete["status"] == "ok"


async def test_exit_code_and_signal() -> None:
    async with running_app() as h:
        t1 = await h.run("import sys\nsys.exit(3)\n")
        t2 = await h.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert (t1.complete["status"], t1.complete["exitCode"]) == ("runtime_error", 3)
    assert t2.complete["status"] == "runtime_error"
    assert t2.complete["signal"] == "SIGSEGV"
    assert "SIGSEGV" in t2.named("error")[0]["error"]


async def test_timeout_kills_program_and_removes_container() -> None:
    code = "import time\nprint('start', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
    async with running_app(time_limit=1.5) as h:
        session_id = await h.execute(code)
        assert len(await containers_of_soon(session_id)) == 1  # it exists while it runs
        t = await h.run(code)
        assert t.output.startswith("start")
        assert t.complete["status"] == "timeout"
        assert 1400 <= t.complete["durationMs"] < 5000
        await assert_gone_soon(t.session_id)
        state = await h.wait_finished(session_id)
        assert state["result"]["status"] == "timeout"
        await assert_gone_soon(session_id)


async def test_delete_cancels() -> None:
    async with running_app() as h:
        session_id = await h.execute("import time\nwhile True:\n    time.sleep(1)\n")
        assert len(await containers_of_soon(session_id)) == 1
        resp = await h.request("DELETE", f"/api/sessions/{session_id}")
        assert resp.status == 202
        state = await h.wait_finished(session_id, timeout=10)
        assert state["result"]["status"] == "cancelled"
        await assert_gone_soon(session_id)


async def test_concurrent_sessions_never_see_each_other() -> None:
    code = (
        "import time\n"
        "tag = input('tag? ')\n"
        "for i in range(20):\n"
        "    print(tag, i, flush=True)\n"
        "    time.sleep(0.01)\n"
    )
    async with running_app() as h:
        one, two = await asyncio.gather(h.run(code, ["AAA"]), h.run(code, ["BBB"]))
    assert one.session_id != two.session_id
    assert "AAA 19" in one.output and "BBB" not in one.output
    assert "BBB 19" in two.output and "AAA" not in two.output
    for t in (one, two):
        assert {d["sessionId"] for _, d in t.events} == {t.session_id}


async def test_get_session_reports_state_and_verdict() -> None:
    async with running_app() as h:
        session_id = await h.execute("x = input('? ')\nprint(x)\n")
        for _ in range(100):
            state = (await h.request("GET", f"/api/sessions/{session_id}")).body
            if state["waitingForInput"]:
                break
            await asyncio.sleep(0.05)
        assert state["state"] == "running" and state["prompt"] == "? "
        async with h.client() as sio:
            await sio.emit("join", {"sessionId": session_id})
            await sio.emit("input", {"input": "ok", "sessionId": session_id})
            final = await h.wait_finished(session_id)
    assert final["result"]["status"] == "ok"
    assert final["result"]["exitCode"] == 0


async def test_execute_event_joins_the_new_session() -> None:
    async with running_app() as h, h.client() as sio:
        got: list[tuple[str, object]] = []
        done = asyncio.Event()

        async def on_any(event: str, data: object = None) -> None:
            got.append((event, data))
            if event == "execution_complete":
                done.set()

        sio.on("*", on_any)
        ack = await sio.call("execute", {"code": "print(6 * 7)", "language": "python3"})
        await asyncio.wait_for(done.wait(), 20)
    assert isinstance(ack["sessionId"], str)
    assert ("session", {"sessionId": ack["sessionId"]}) in got
    assert "".join(d["output"] for e, d in got if e == "output") == "42\r\n"  # type: ignore[index]
