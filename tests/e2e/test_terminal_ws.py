"""Terminal streams end to end against real Docker: the terminado protocol, the raw
stream for @xterm/addon-attach, resize, Ctrl-C, Ctrl-D, late attach, two viewers,
flow control."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import pytest

from tests.harness import Harness, TerminalClient, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]

SIZE_PROGRAM = """\
import shutil, signal, sys
print("start", *shutil.get_terminal_size(), flush=True)
signal.signal(signal.SIGWINCH, lambda *a: print("winch", *shutil.get_terminal_size(), flush=True))
name = input("Name? ")
print("size", *shutil.get_terminal_size(), "hello", name)
"""


def has(text: str) -> Any:
    return lambda c: text in c.screen_text


async def test_terminado_protocol_resize_and_typing() -> None:
    async with running_app() as h:
        session_id = await h.execute(SIZE_PROGRAM)
        term = await h.terminal(session_id)
        await term.read_until(lambda c: c.named("input_required"))
        assert term.messages[0] == ["setup", {}]
        # The program saw the configured size from its first instruction (never 0x0).
        assert "start 80 24" in term.screen_text
        await term.send("set_size", 30, 100)
        await term.read_until(has("winch 100 30"))
        for ch in "Ada":  # keystrokes as typed, one frame each
            await term.send("stdin", ch)
        await term.send("stdin", "\r")
        await term.read_to_end()
    text = term.screen_text
    # The terminal echoed the keystrokes (after the SIGWINCH handler's line): a terminal
    # view shows them.
    assert "Name? winch 100 30\r\nAda\r\n" in text
    assert "size 100 30 hello Ada" in text
    assert term.named("input_required")[0]["prompt"] == "Name? "
    assert term.named("execution_complete")[0]["status"] == "ok"
    assert term.messages[-1] == ["disconnect", 1]


async def test_ctrl_c_raises_keyboard_interrupt() -> None:
    code = (
        "import time\n"
        "try:\n"
        "    print('looping', flush=True)\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "except KeyboardInterrupt:\n"
        "    print('caught KeyboardInterrupt')\n"
    )
    async with running_app() as h:
        session_id = await h.execute(code)
        term = await h.terminal(session_id)
        await term.read_until(has("looping"))
        await term.send("stdin", "\x03")
        await term.read_to_end()
    assert "caught KeyboardInterrupt" in term.screen_text
    assert term.named("execution_complete")[0]["status"] == "ok"


async def test_ctrl_d_gives_eof() -> None:
    code = "import sys\ndata = sys.stdin.read()\nprint('read', len(data), 'chars')\n"
    async with running_app() as h:
        session_id = await h.execute(code)
        term = await h.terminal(session_id)
        await term.read_until(lambda c: c.named("input_required"))
        await term.send("stdin", "hello\r")
        await term.read_until(has("hello\r\n"))
        await term.send("stdin", "\x04")
        await term.read_to_end()
    assert "read 6 chars" in term.screen_text


async def test_raw_stream_for_addon_attach() -> None:
    async with running_app() as h:
        session_id = await h.execute('n = input("Who? ")\nprint("Hello", n)\n')
        raw = await h.terminal(session_id, raw=True)
        await raw.read_until(has("Who? "))
        await raw.send("Ann\r")
        await raw.read_to_end()
    assert all(isinstance(m, str) for m in raw.messages)  # every frame is output
    assert raw.screen_text == "Who? Ann\r\nHello Ann\r\n"


async def test_late_attach_and_two_viewers() -> None:
    code = "for i in range(200):\n    print('line', i)\na = input('more? ')\nprint('answer', a)\n"
    async with running_app() as h:
        session_id = await h.execute(code)
        first = await h.terminal(session_id)
        await first.read_until(lambda c: c.named("input_required"))
        late = await h.terminal(session_id)  # attaches while the program waits
        await late.read_until(lambda c: c.named("input_required"))
        expected = "".join(f"line {i}\r\n" for i in range(200)) + "more? "
        assert late.screen_text == expected == first.screen_text
        await late.send("stdin", "yes\r")
        await asyncio.gather(first.read_to_end(), late.read_to_end())
    for viewer in (first, late):
        assert viewer.screen_text.endswith("more? yes\r\nanswer yes\r\n")
        assert viewer.named("execution_complete")[0]["status"] == "ok"


async def test_terminal_and_event_clients_on_one_session() -> None:
    """The terminal view shows the echo of an answer; the event view never does."""
    async with running_app() as h:
        session_id = await h.execute('x = input("Q? ")\nprint("got", x)\n')
        term = await h.terminal(session_id)
        events: list[tuple[str, Any]] = []
        done = asyncio.Event()
        async with h.client() as sio:

            async def on_any(event: str, data: Any = None) -> None:
                events.append((event, data))
                if event == "input_required":
                    await sio.emit("input", {"input": "blue"})
                if event == "execution_complete":
                    done.set()

            sio.on("*", on_any)
            await sio.emit("join", {"sessionId": session_id})
            await asyncio.wait_for(done.wait(), 20)
        await term.read_to_end()
    assert "".join(d["output"] for e, d in events if e == "output") == "Q? got blue\r\n"
    assert term.screen_text == "Q? blue\r\ngot blue\r\n"


async def test_socketio_resize_interrupt_and_eof() -> None:
    code = (
        "import shutil, sys, time\n"
        "input('ready? ')\n"
        "print('cols', shutil.get_terminal_size().columns, flush=True)\n"
        "print('rest', repr(sys.stdin.read()), flush=True)\n"
        "try:\n"
        "    time.sleep(30)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    async with running_app() as h, h.client() as sio:
        events: list[tuple[str, Any]] = []
        prompts = asyncio.Queue[Any]()

        async def on_any(event: str, data: Any = None) -> None:
            events.append((event, data))
            if event in ("input_required", "execution_complete"):
                prompts.put_nowait(event)

        sio.on("*", on_any)
        session_id = await h.execute(code)
        await sio.emit("join", {"sessionId": session_id})
        assert await asyncio.wait_for(prompts.get(), 10) == "input_required"
        assert (await sio.call("resize", {"rows": 20, "cols": 123}))["sessionId"] == session_id
        await sio.emit("input", {"input": "go"})
        assert await asyncio.wait_for(prompts.get(), 10) == "input_required"  # the read()
        await sio.emit("eof", {})
        for _ in range(100):
            if "rest ''" in "".join(d["output"] for e, d in events if e == "output"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        await sio.emit("interrupt", {})
        assert await asyncio.wait_for(prompts.get(), 10) == "execution_complete"
    text = "".join(d["output"] for e, d in events if e == "output")
    assert "cols 123" in text and "rest ''" in text and "interrupted" in text


async def test_unknown_session_and_bad_messages() -> None:
    async with running_app() as h:
        term = await h.terminal("no-such-session")
        await term.read_to_end()
        assert term.messages[0][0] == "error"
        assert term.messages[0][1]["code"] == "session_not_found"
        assert term.conn.close_code == 4404
        session_id = await h.execute("input('x? ')\n")
        term = await h.terminal(session_id)
        await term.read_until(lambda c: c.named("input_required"))
        await term.conn.write_message("not json")
        await term.send("set_size", 0, 80)
        await term.send("launch", "rockets")
        await term.read_until(lambda c: len(c.named("error")) == 3)
        assert [e["code"] for e in term.named("error")] == ["invalid_field"] * 3
        await term.send("stdin", "ok\r")
        await term.read_to_end()
        assert term.named("execution_complete")[0]["status"] == "ok"


def _open_stalled_websocket(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads: the
    slowest possible controlling client. Its receive buffer is made small."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return sock


async def output_bytes(h: Harness, session_id: str) -> int:
    return int((await h.request("GET", f"/api/sessions/{session_id}")).body["outputBytes"])


async def test_flow_control_pauses_the_program_for_a_stalled_controller() -> None:
    code = (
        "import sys\n"
        "line = 'x' * 99 + '\\n'\n"
        "for i in range(400_000):\n"
        "    sys.stdout.write(line)\n"
    )
    async with running_app(output_limit_bytes=100 * 1024 * 1024, time_limit=60) as h:
        session_id = await h.execute(code)
        loop = asyncio.get_running_loop()
        port = int(h.base_url.rsplit(":", 1)[1])
        stalled = await loop.run_in_executor(
            None, _open_stalled_websocket, port, f"/ws/terminal/{session_id}/raw"
        )
        # The program is paused: its output reaches a plateau of a few MB (the
        # engine's and the kernel's buffers) out of the 40 MB it wants to print.
        first, second = -1, await output_bytes(h, session_id)
        for _ in range(40):
            if second == first and second > 0:
                break
            await asyncio.sleep(0.5)
            first, second = second, await output_bytes(h, session_id)
        assert first == second, "the program was never paused"
        assert second < 8 * 1024 * 1024, second
        await asyncio.sleep(1.0)
        assert await output_bytes(h, session_id) - second < 512 * 1024
        # An extra viewer that joins now is not held back (it gets the recent output,
        # skipping what is too far behind), and does not release the program.
        viewer: TerminalClient = await h.terminal(session_id, raw=True)
        await viewer.read_until(lambda c: len(c.screen_text) > 60_000)
        if first > 1024 * 1024:
            assert "characters skipped ...]" in viewer.screen_text[:200]
        assert await output_bytes(h, session_id) - second < 512 * 1024
        # Once the viewer leaves, and then the controller, the program runs to its end.
        viewer.close()
        stalled.close()
        state = await h.wait_finished(session_id, timeout=60)
    assert state["result"]["status"] == "ok"
    assert state["outputBytes"] == 400_000 * 101  # every line, \n turned into \r\n


async def test_execute_may_give_the_starting_terminal_size() -> None:
    code = "import shutil\nprint(*shutil.get_terminal_size())\n"
    async with running_app() as h:
        session_id = await h.execute(code, rows=40, cols=132)
        state = await h.wait_finished(session_id)
        assert state["screen"]["lines"][0] == "132 40"
        bad = await h.request("POST", "/api/execute", {"code": code, "rows": 0, "cols": 80})
        assert bad.status == 400 and bad.body["field"] == "rows"


async def test_addon_attach_style_clients_resize_ctrl_c_late_attach_two_viewers() -> None:
    """Plain byte streams (what @xterm/addon-attach speaks), with resize on the
    documented side channel (Socket.IO `resize`)."""
    code = (
        "import shutil, signal, time\n"
        "def winch(*_):\n"
        "    print('cols', shutil.get_terminal_size().columns, flush=True)\n"
        "signal.signal(signal.SIGWINCH, winch)\n"
        "for i in range(50):\n"
        "    print('tick', i)\n"
        "try:\n"
        "    input('ready? ')\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    async with running_app() as h, h.client() as side:
        session_id = await h.execute(code)
        first = await h.terminal(session_id, raw=True)
        await first.read_until(has("ready? "))
        late = await h.terminal(session_id, raw=True)  # attaches after 50 lines
        await late.read_until(has("ready? "))
        assert late.screen_text == first.screen_text
        assert late.screen_text.startswith("tick 0\r\n")
        await side.call("join", {"sessionId": session_id})
        await side.call("resize", {"rows": 30, "cols": 111, "sessionId": session_id})
        await first.read_until(has("cols 111"))
        await first.send("go\r")
        await late.read_until(has("go\r\n"))
        await asyncio.sleep(0.3)
        await late.send("\x03")  # Ctrl-C from the second viewer
        await asyncio.gather(first.read_to_end(), late.read_to_end())
    for viewer in (first, late):
        assert viewer.screen_text.endswith("interrupted\r\n")
        assert all(isinstance(m, str) for m in viewer.messages)
