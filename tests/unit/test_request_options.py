"""The execute request's options: files, args, interactive, limits; each bad value
refused with the field that is wrong, each bound from the settings."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import string
from typing import Any

import pytest

from codex.api.request_options import body_limit
from codex.api.requests import parse_execute
from codex.config import Settings
from codex.errors import CodexError
from codex.runtime.job import JobFile, JobOptions
from codex.runtime.protocol import job_bytes
from codex.sessions.registry import Limits

S = Settings()


def refused(body: dict[str, Any], settings: Settings = S) -> tuple[int, str, str]:
    with pytest.raises(CodexError) as caught:
        parse_execute({"code": "print(1)", **body}, settings)
    return caught.value.status, caught.value.code, caught.value.extra.get("field", "")


def test_files_args_interactive_and_limits_are_parsed() -> None:
    request = parse_execute(
        {
            "code": "print(1)",
            "files": [
                {"name": "data.csv", "content": "a,b\n"},
                {"name": "lib/helper.py", "content": "x = 1\n", "encoding": "utf-8"},
                {
                    "name": "raw.bin",
                    "content": base64.b64encode(b"\x00\xff").decode(),
                    "encoding": "base64",
                },
            ],
            "args": ["one", "two words", ""],
            "interactive": True,
            "limits": {"timeLimit": 2.5, "memoryLimitMb": 64, "outputLimitBytes": 1000},
        },
        S,
    )
    assert request.files == (
        JobFile.of("data.csv", b"a,b\n"),
        JobFile.of("lib/helper.py", b"x = 1\n"),
        JobFile.of("raw.bin", b"\x00\xff"),
    )
    assert request.args == ("one", "two words", "")
    assert request.interactive is True
    assert request.limits == Limits(2.5, 64, 1000)
    applied = request.limits.applied(S)
    assert (applied.time_limit, applied.memory_limit_mb, applied.output_limit_bytes) == (
        2.5,
        64,
        1000,
    )
    plain = parse_execute({"code": "print(1)", "files": None, "args": None, "limits": None}, S)
    assert (plain.files, plain.args, plain.interactive, plain.limits) == ((), (), False, Limits())
    assert plain.limits.applied(S) is S


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../up",
        "a/../b",
        "a//b",
        "./a",
        "a/",
        "",
        "a\x00b",
        "tab\there",
        "a\\b",
        "del\x7f",
        "main.py",
        "x" * 256,
    ],
)
def test_each_bad_file_name_is_refused_naming_the_file(name: str) -> None:
    files = [{"name": "ok.txt", "content": ""}, {"name": name, "content": ""}]
    assert refused({"files": files}) == (400, "invalid_field", "files[1].name")


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ([{"name": "a", "content": ""}, {"name": "a", "content": ""}], "files[1].name"),
        ([{"name": "a", "content": ""}, {"name": "a/b", "content": ""}], "files[1].name"),
        ([{"name": "a", "content": "x", "encoding": "latin-1"}], "files[0].encoding"),
        ([{"name": "a", "content": "not base64!", "encoding": "base64"}], "files[0].content"),
        ([{"name": "a", "content": 5}], "files[0].content"),
        ([{"name": 5, "content": ""}], "files[0].name"),
        (["a"], "files[0]"),
        ({"name": "a"}, "files"),
    ],
)
def test_bad_files_are_refused_with_their_field(files: Any, field: str) -> None:
    assert refused({"files": files}) == (400, "invalid_field", field)


def _strict(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error is one
        return None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "QQ==",
        "QUI=",
        "QUJD",
        "QUJDRA==",
        "QQ",
        "QQ=",
        "Q===",
        "====",
        "QQ==QQ==",
        "=QQ=",
        "QU JD",
        "QUJD\n",
        "QUJD\x00",
        "QUJ-",
        "QUJ_",
        "QUJ\u00e9",
        "\u00e9\u00e9\u00e9\u00e9",
        "////",
        "++++",
        "AAAA" * 1000 + "AA==",
    ],
)
def test_base64_is_checked_as_strictly_as_the_decoder_without_decoding(text: str) -> None:
    """JobFile.from_base64 accepts exactly what b64decode(validate=True) does, with the
    same size, and keeps the text as sent (the job carries it unescaped)."""
    file = JobFile.from_base64("f", text)
    expected = _strict(text)
    assert (file is None) == (expected is None), (text[:20], expected)
    if file is not None and expected is not None:
        assert file.size == len(expected) and file.b64 == text


def test_random_base64_and_its_corruptions_are_judged_like_the_decoder() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "+/=-_ \n."
    for n in range(300):
        text = base64.b64encode(rng.randbytes(n % 17)).decode()
        if n % 2:  # a corruption: one character replaced, or one removed
            at = rng.randrange(len(text)) if text else 0
            text = text[:at] + rng.choice(alphabet) * (n % 3 > 0) + text[at + 1 :]
        file, expected = JobFile.from_base64("f", text), _strict(text)
        assert (file is None) == (expected is None), text
        assert file is None or expected is None or file.size == len(expected)


def test_the_job_carries_the_files_as_given_in_valid_json() -> None:
    raw = bytes(range(256)) * 10
    files = (JobFile.of('odd "name"\\.bin', raw), JobFile.of("b.txt", "é\n".encode()))
    job = job_bytes("print('\u00e9')", 24, 80, 0, JobOptions(files=files, args=("x",)))
    size, _, payload = job.partition(b"\n")
    assert int(size) == len(payload)
    parsed = json.loads(payload)
    assert [[n, base64.b64decode(t)] for n, t in parsed["files"]] == [
        ['odd "name"\\.bin', raw],
        ["b.txt", "é\n".encode()],
    ]
    assert parsed["code"] == "print('\u00e9')" and parsed["args"] == ["x"]
    empty = json.loads(job_bytes("1", 1, 1).partition(b"\n")[2])
    assert empty["files"] == [] and empty["code"] == "1"


def test_file_bounds_come_from_the_settings() -> None:
    small = dataclasses.replace(S, max_files=2, max_file_bytes=10, max_files_bytes=15)
    three = [{"name": f"f{i}", "content": ""} for i in range(3)]
    assert refused({"files": three}, small) == (400, "invalid_field", "files")
    big = [{"name": "big", "content": "x" * 11}]
    assert refused({"files": big}, small) == (400, "invalid_field", "files[0].content")
    total = [{"name": "a", "content": "x" * 8}, {"name": "b", "content": "y" * 8}]
    assert refused({"files": total}, small) == (400, "invalid_field", "files")
    # The body limit leaves room for the largest request the settings allow.
    assert body_limit(S) > S.max_code_bytes + S.max_stdin_bytes + S.max_files_bytes * 4 // 3


@pytest.mark.parametrize(
    ("args", "field"),
    [("one two", "args"), ([1], "args[0]"), (["a\x00b"], "args"), (["x"] * 65, "args")],
)
def test_bad_args_are_refused(args: Any, field: str) -> None:
    assert refused({"args": args}) == (400, "invalid_field", field)


def test_limits_above_the_servers_are_422_naming_the_cap() -> None:
    status, code, field = refused({"limits": {"timeLimit": S.time_limit + 1}})
    assert (status, code, field) == (422, "limit_too_high", "limits.timeLimit")
    with pytest.raises(CodexError) as caught:
        parse_execute({"code": "1", "limits": {"memoryLimitMb": 100_000}}, S)
    assert caught.value.extra["cap"] == S.memory_limit_mb
    assert str(S.memory_limit_mb) in caught.value.message
    assert refused({"limits": {"outputLimitBytes": 0}}) == (
        400,
        "invalid_field",
        "limits.outputLimitBytes",
    )
    assert refused({"limits": {"memoryLimitMb": 8}}) == (
        400,
        "invalid_field",
        "limits.memoryLimitMb",
    )
    assert refused({"limits": {"memoryLimitMb": 32.5}}) == (
        400,
        "invalid_field",
        "limits.memoryLimitMb",
    )
    assert refused({"limits": {"timeLimit": True}}) == (400, "invalid_field", "limits.timeLimit")
    assert refused({"limits": {"cpu": 1}}) == (400, "invalid_field", "limits")
    assert refused({"interactive": "yes"}) == (400, "invalid_field", "interactive")
