"""Unit tests of the pure pieces: the result scanner, the event log, the prompt."""

from __future__ import annotations

import asyncio
import json

import pytest

from codex.runtime.protocol import RESULT_END, RESULT_OSC, ResultScanner
from codex.sessions.eventlog import COMPLETE, INPUT_REQUIRED, OUTPUT, EventLog
from codex.sessions.follow import merge_output
from codex.sessions.screen import TerminalModel

NONCE = "0123456789abcdef"
RECORD = RESULT_OSC + NONCE.encode() + b";" + json.dumps({"exitCode": 0}).encode() + RESULT_END


@pytest.mark.parametrize("cut", range(1, len(RECORD) + 20))
def test_scanner_finds_the_record_wherever_reads_split_it(cut: int) -> None:
    stream = b"hello \x1b[1mworld\x1b[0m\r\n" + RECORD + b"orphan output"
    cut = min(cut, len(stream) - 1)
    scanner = ResultScanner(NONCE)
    passed = scanner.feed(stream[:cut]) + scanner.feed(stream[cut:]) + scanner.flush()
    assert passed == b"hello \x1b[1mworld\x1b[0m\r\n"
    assert scanner.result == {"exitCode": 0}


def test_scanner_byte_by_byte() -> None:
    scanner = ResultScanner(NONCE)
    out = b"".join(scanner.feed(bytes([b])) for b in b"abc\x1b]0;title\x07" + RECORD)
    assert out == b"abc\x1b]0;title\x07"
    assert scanner.done


def test_scanner_follows_the_protocol_states() -> None:
    from codex.runtime.protocol import GO, NEW, READY

    scanner = ResultScanner(NONCE)
    marker = RESULT_OSC + NONCE.encode() + b";"
    assert scanner.state == NEW
    assert scanner.feed(marker + b"ready" + RESULT_END) == b""
    assert scanner.state == READY
    stream = marker + b"go" + RESULT_END + b"hello" + RECORD + b"after"
    assert scanner.feed(stream[:7]) + scanner.feed(stream[7:]) == b"hello"
    assert scanner.state == GO and scanner.result == {"exitCode": 0}


def test_scanner_ignores_a_record_with_another_nonce() -> None:
    scanner = ResultScanner(NONCE)
    forged = RESULT_OSC + b"ffffffffffffffff;" + b'{"exitCode": 0}' + RESULT_END
    assert scanner.feed(forged) + scanner.flush() == forged
    assert scanner.result is None


def prompt_of(*chunks: str, rows: int = 24, cols: int = 80) -> str:
    model = TerminalModel(rows, cols)
    for chunk in chunks:
        model.append(chunk)
    return model.prompt()


def test_prompt_is_the_cursor_line_as_shown() -> None:
    assert prompt_of("line one\r\nName? ") == "Name? "
    assert prompt_of("\x1b[1;32mName?\x1b[0m ") == "Name? "
    assert prompt_of("progress 10%\rprogress 99%\rAnswer: ") == "Answer: "
    assert prompt_of("done\r\n") == ""
    assert prompt_of("abc\x1b[2D") == "a"  # cursor moved back: only what precedes it
    assert prompt_of("名前は? ") == "名前は? "  # wide characters once, not padded


def test_prompt_survives_pyte_traps() -> None:
    # An unterminated OSC would swallow all that follows it.
    model = TerminalModel(24, 80)
    model.append("\x1b]0;title never ends")
    assert model.prompt() == ""
    model.append("x" * 5000 + "\r\nName? ")
    assert model.prompt() == "Name? "
    assert prompt_of("\x1b]0;title\x07>>> ") == ">>> "
    assert prompt_of("\x1b]52;c;aGVsbG8=\x1b\\Go: ") == "Go: "
    # A title split across reads is still removed whole.
    assert prompt_of("\x1b]0;ti", "tle\x07Q? ") == "Q? "
    # U+200D inside a text run.
    assert prompt_of("👩\u200d💻 ready? ") == "👩💻 ready? "
    # Absurd CSI parameters are dropped instead of parsed.
    assert prompt_of("\x1b[" + "9" * 5000 + "Cok? ") == "ok? "
    # A full-screen program on the alternate screen, then back to the prompt.
    assert prompt_of("before\r\nAsk: ", "\x1b[?1049h\x1b[2J\x1b[Hfull screen", "\x1b[?1049l") == (
        "Ask: "
    )


def test_screen_snapshot_and_resize() -> None:
    model = TerminalModel(5, 20)
    model.append("one\r\ntwo\r\nthree? ")
    snap = model.snapshot()
    assert snap["lines"][:3] == ["one", "two", "three?"]
    assert snap["cursor"] == {"row": 2, "col": 7, "hidden": False}
    model.resize(10, 40)
    assert model.snapshot()["rows"] == 10 and len(model.snapshot()["lines"]) == 10


def test_screen_model_reads_only_the_tail_of_a_flood() -> None:
    model = TerminalModel(24, 80)
    for i in range(20000):
        model.append(f"line {i}\r\n")
    model.append("last? ")
    assert model.prompt() == "last? "
    assert "line 19999" in model.snapshot()["lines"][-2]


def test_event_log_bounded_and_sequenced() -> None:
    log = EventLog(max_chars=10)
    for i in range(5):
        log.append(OUTPUT, f"abcd{i}")
    assert log.first_seq == 3 and log.next_seq == 5
    assert [e.text for e in log.since(0)] == ["abcd3", "abcd4"]
    assert log.dropped_chars == 15


def test_event_log_wakes_waiters() -> None:
    async def scenario() -> list[str]:
        log = EventLog(max_chars=100)
        seen: list[str] = []

        async def reader() -> None:
            cursor = 0
            while not log.closed or cursor < log.next_seq:
                await log.wait_beyond(cursor)
                for e in log.since(cursor):
                    seen.append(e.kind)
                    cursor = e.seq + 1

        task = asyncio.ensure_future(reader())
        await asyncio.sleep(0)
        log.append(OUTPUT, "a")
        await asyncio.sleep(0)
        log.append(INPUT_REQUIRED, payload={"prompt": ""})
        log.append(COMPLETE, payload={})
        await asyncio.wait_for(task, 1)
        return seen

    assert asyncio.run(scenario()) == [OUTPUT, INPUT_REQUIRED, COMPLETE]


def test_a_reader_cancelled_while_waiting_leaves_the_others_waiting() -> None:
    """Each reader waits on a future of its own: one cancelled (its client left)
    neither wakes nor cancels the rest, and leaves nothing behind."""

    async def scenario() -> None:
        log = EventLog(max_chars=100)
        leaving = asyncio.ensure_future(log.wait_beyond(0))
        staying = asyncio.ensure_future(log.wait_beyond(0))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        assert leaving.cancelled() and not staying.done()
        assert len(log._waiters) == 1
        log.append(OUTPUT, "a")
        await asyncio.wait_for(staying, 1)
        assert log._waiters == []

    asyncio.run(scenario())


def test_merge_output_respects_the_frame_limit() -> None:
    log = EventLog(max_chars=1000)
    for ch in "abcdef":
        log.append(OUTPUT, ch * 3)
    log.append(INPUT_REQUIRED, payload={"prompt": "x"})
    log.append(OUTPUT, "z")
    merged = merge_output(log.since(0), limit=7)
    assert merged == [
        (OUTPUT, "aaabbb", "stdout"),
        (OUTPUT, "cccddd", "stdout"),
        (OUTPUT, "eeefff", "stdout"),
        (INPUT_REQUIRED, {"prompt": "x"}, "stdout"),
        (OUTPUT, "z", "stdout"),
    ]


def test_policy_refuses_listed_imports_and_calls_with_the_line() -> None:
    from codex.errors import PolicyViolation
    from codex.languages import check_policy

    check_policy("import os\nprint(eval('1'))\n", (), ())  # off by default
    for code, line in (
        ("x = 1\nimport os\n", 2),
        ("from os.path import join\n", 1),
        ("import json, subprocess\n", 1),
        ("def f():\n    return eval('1')\n", 2),
    ):
        with pytest.raises(PolicyViolation) as refused:
            check_policy(code, ("os", "subprocess"), ("eval",))
        assert refused.value.extra["line"] == line
        assert f"Line {line}:" in refused.value.message
    # Not a boundary: string-built imports pass (docs/security.md says so).
    check_policy("__import__('o' + 's')\n", ("os",), ("eval",))
