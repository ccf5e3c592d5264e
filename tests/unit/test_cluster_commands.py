"""Messages between servers: every typed command and relayed message survives its JSON,
and whatever does not decode is ignored with one log line per kind of problem."""

from __future__ import annotations

import json
import logging

import pytest

from codex.cluster import commands
from codex.cluster.commands import (
    DESCRIBE,
    IMAGE,
    Answer,
    Cancel,
    End,
    Entries,
    Failed,
    Follow,
    Input,
    Leave,
    Message,
    Query,
    Resize,
    Write,
    decode_command,
    decode_relayed,
    encode,
)
from codex.sessions.eventlog import Entry
from codex.wire import COMPLETE, DISPLAY, ERROR, INPUT_REQUIRED, OUTPUT, STDERR

COMMANDS: list[Message] = [
    Input("s1", "Ada", reply="chan-1"),
    Input("s1", ""),
    Write("s1", "é\x03".encode()),
    Write("s1", b"\xff\xfe\x00 not utf-8", reply="chan-2"),
    Resize("s1", 30, 100),
    Cancel("s1"),
    Cancel("s1", "The teacher stopped it."),
    Follow("s1", "chan-3", echo=True),
    Follow("s1", "chan-4", echo=False),
    Leave("chan-3"),
    Query("s1", DESCRIBE, "chan-5"),
    Query("s1", IMAGE, "chan-6", index=3),
]

RELAYED: list[Message] = [
    Entries((Entry(-1, OUTPUT, "Who? "), Entry(-1, INPUT_REQUIRED, payload={"prompt": "Who? "}))),
    Entries(()),
    Entries((Entry(-1, OUTPUT, "Traceback", stream=STDERR), Entry(-1, OUTPUT, "ok"))),
    Entries((Entry(-1, DISPLAY, payload={"index": 1, "data": {"image/png": "iVBO"}}),)),
    Answer({"mime": "image/png", "data": "iVBORw0KGgo="}),
    Answer({}),
    Entries((Entry(-1, COMPLETE, payload={"sessionId": "s1", "status": "ok"}),)),
    Failed({"error": "The program has already finished.", "code": "session_finished"}),
    End(),
]


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "_reported", set())


@pytest.mark.parametrize("command", COMMANDS, ids=repr)
def test_every_command_survives_its_json(command: Message) -> None:
    assert decode_command(encode(command)) == command


@pytest.mark.parametrize("message", RELAYED, ids=repr)
def test_every_relayed_message_survives_its_json(message: Message) -> None:
    assert decode_relayed(encode(message)) == message


def test_the_json_is_camel_case_with_the_op_and_bytes_in_base64() -> None:
    assert json.loads(encode(Write("s1", b"\x03", reply="c"))) == {
        "op": "write",
        "sessionId": "s1",
        "data": "Aw==",
        "reply": "c",
    }
    assert json.loads(encode(Entries((Entry(7, OUTPUT, "hi", echo=True, upto=9),)))) == {
        "op": "entries",
        "entries": [["output", "hi"]],  # what a follower elsewhere needs, nothing more
    }


def test_only_stderr_text_carries_its_stream() -> None:
    raw = json.loads(
        encode(Entries((Entry(-1, OUTPUT, "a"), Entry(-1, OUTPUT, "b", stream=STDERR))))
    )
    assert raw["entries"] == [["output", "a"], ["output", "b", "stderr"]]
    odd = json.dumps({"op": "entries", "entries": [["output", "c", "stdmiddle"]]})
    message = decode_relayed(odd)
    assert isinstance(message, Entries) and message.entries[0].stream == "stdout"


def test_a_relayed_entry_is_rebuilt_as_a_log_entry_of_its_kind() -> None:
    raw = json.dumps({"op": "entries", "entries": [["output", "x"], ["error", {"code": "c"}]]})
    message = decode_relayed(raw)
    assert isinstance(message, Entries)
    out, err = message.entries
    assert (out.kind, out.text) == (OUTPUT, "x")
    assert (err.kind, err.payload) == (ERROR, {"code": "c"})


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        b"\xff\xfe",
        json.dumps(["a", "list"]),
        json.dumps({"no": "op"}),
        json.dumps({"op": "boom", "sessionId": "s1"}),
        json.dumps({"op": 42}),
        json.dumps({"op": "input", "sessionId": "s1"}),  # no text
        json.dumps({"op": "input", "sessionId": 5, "text": "x"}),
        json.dumps({"op": "resize", "sessionId": "s1", "rows": "30", "cols": 100}),
        json.dumps({"op": "resize", "sessionId": "s1", "rows": True, "cols": 100}),
        json.dumps({"op": "write", "sessionId": "s1", "data": "not base64!"}),
        json.dumps({"op": "follow", "sessionId": "s1", "channel": "c", "echo": "yes"}),
        json.dumps({"op": "cancel", "sessionId": "s1", "reason": 3}),
        encode(End()),  # a relayed message on a command channel
    ],
)
def test_what_is_not_a_command_is_ignored(raw: str | bytes) -> None:
    assert decode_command(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"op": "entries", "entries": "x"}),
        json.dumps({"op": "entries", "entries": [["output"]]}),
        json.dumps({"op": "entries", "entries": [["output", {"not": "text"}]]}),
        json.dumps({"op": "entries", "entries": [["error", "not a payload"]]}),
        json.dumps({"op": "entries", "entries": [[1, "x"]]}),
        json.dumps({"op": "failed", "error": "not an object"}),
        encode(Cancel("s1")),  # a command on a relay channel
    ],
)
def test_what_is_not_a_relayed_message_is_ignored(raw: str) -> None:
    assert decode_relayed(raw) is None


def test_each_kind_of_problem_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=commands.__name__)
    for _ in range(3):
        assert decode_command(json.dumps({"op": "boom"})) is None
        assert decode_command("not json") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "unknown op 'boom'" in warnings[0] and "not JSON" in warnings[1]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4


def test_the_problems_remembered_are_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(commands, "MAX_REPORTED", 2)
    for i in range(5):
        decode_command(json.dumps({"op": f"op-{i}"}))
    assert len(commands._reported) == 2
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 2
