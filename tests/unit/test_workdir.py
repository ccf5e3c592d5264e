"""The working directory's files, both ways: the sandbox's workdir.py (run here on a
temporary directory), the records that carry the files back, and the server's own
checks of what they say."""

from __future__ import annotations

import base64
import hashlib
import os
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from codex.runtime.job import Collect, FileRecord, FilesEnd, JobOptions, parse_file
from codex.runtime.protocol import RESULT_END, RESULT_OSC, ResultScanner, job_bytes
from codex.runtime.sandbox import WORKDIR_SOURCE
from codex.sessions.outfiles import OutputFiles

NONCE = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    module = types.ModuleType("workdir_under_test")
    exec(compile(WORKDIR_SOURCE, "workdir.py", "exec"), module.__dict__)
    monkeypatch.chdir(tmp_path)
    yield module


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_files_are_written_in_and_only_new_or_changed_ones_come_back(
    workdir: types.ModuleType,
) -> None:
    problems = workdir.write_files(
        [["data.csv", b64(b"a,b\n")], ["lib/helper.py", b64(b"x = 1\n")], ["../evil", b64(b"")]]
    )
    assert problems == ["../evil: not a relative path"]
    assert Path("lib/helper.py").read_bytes() == b"x = 1\n"
    before = workdir.snapshot()
    Path("data.csv").write_bytes(b"a,b\n1,2\n")  # changed
    Path("out/report.txt").parent.mkdir()
    Path("out/report.txt").write_text("done")  # new, in a new folder
    os.symlink("/etc/passwd", "passwd")  # never followed
    os.mkfifo("pipe")  # never opened
    Path("big.bin").write_bytes(bytes(2000))
    files, unlisted = workdir.collect(before, 10, 1000, 10_000)
    assert unlisted == 0
    assert [(name, size, data, why) for name, size, data, why in files] == [
        ("big.bin", 2000, b"", "larger than 1000 bytes"),
        ("data.csv", 8, b"a,b\n1,2\n", ""),
        ("out/report.txt", 4, b"done", ""),
        ("passwd", len("/etc/passwd"), b"", "a symbolic link"),
        ("pipe", 0, b"", "not a regular file"),
    ]


def test_collection_stays_within_count_total_and_listing_bounds(
    workdir: types.ModuleType,
) -> None:
    before = workdir.snapshot()
    for i in range(150):
        Path(f"f{i:03}").write_bytes(b"x" * 10)
    files, unlisted = workdir.collect(before, 3, 100, 25)
    taken = [f for f in files if not f[3]]
    assert [f[0] for f in taken] == ["f000", "f001"]  # the total (25) stops the third
    assert files[2][3] == "over the total of 25 bytes"
    assert {f[3] for f in files[2:]} == {"over the total of 25 bytes"}
    assert len(files) == 2 + workdir.LISTED_OMITTED and unlisted == 150 - len(files)
    files, unlisted = workdir.collect(before, 3, 100, 10_000)
    assert [f[0] for f in files if not f[3]] == ["f000", "f001", "f002"]
    assert files[3][3] == "more than 3 files"


def test_a_file_replaced_by_a_link_between_listing_and_reading_is_not_read(
    workdir: types.ModuleType, tmp_path: Path
) -> None:
    Path("secret").write_text("planted")
    st = os.lstat("secret")
    os.remove("secret")
    os.symlink("/etc/passwd", "secret")
    assert workdir._read("secret", st, 1000) == (
        b"",
        "unreadable (Too many levels of symbolic links)",
    )


def test_the_job_carries_the_options_and_the_records_carry_the_files_back() -> None:
    options = JobOptions(args=("a",), interactive=True, collect=Collect(5, 100, 200))
    job = job_bytes("print(1)", 24, 80, 0, options)
    assert b'"args": ["a"]' in job and b'"interactive": true' in job
    assert b'"collect": [5, 100, 200]' in job
    header = b'{"name": "out.txt", "size": 5}'
    body = b"%d:" % len(header) + header + base64.b64encode(b"hello")
    assert parse_file(body) == FileRecord("out.txt", 5, b"hello")
    assert parse_file(b"3:{}x") is None and parse_file(b"nonsense") is None
    scanner = ResultScanner(NONCE)
    scanner.file_max = 1 << 20
    mark = RESULT_OSC + NONCE.encode() + b";"
    stream = mark + b"file:" + body + RESULT_END + mark + b'files:{"collected": 1, "omitted": 0}'
    items = scanner.feed_items(stream + RESULT_END + b"tail")
    assert items == [FileRecord("out.txt", 5, b"hello"), FilesEnd(1, 0), b"tail"]


def test_the_server_checks_names_and_bounds_again_and_hashes_the_bytes_itself() -> None:
    files = OutputFiles(Collect(2, 10, 15))
    files.take(FileRecord("a.txt", 3, b"abc"))
    files.take(FileRecord("../escape", 1, b"x"))  # not a name the sandbox sends
    files.take(FileRecord("a.txt", 3, b"abc"))  # twice
    files.take(FileRecord("big", 11, b"x" * 11))
    files.take(FileRecord("b", 9, b"y" * 9))  # over the total with a.txt... 12 <= 15
    files.take(FileRecord("c", 1, b"z"))  # a third: over the count
    files.take(FileRecord("link", 11, b"", "a symbolic link"))
    files.take(FilesEnd(3, 7))  # the sandbox omitted 7 in all, listing 1
    assert files.listing() == [
        {"name": "a.txt", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()},
        {"name": "b", "size": 9, "sha256": hashlib.sha256(b"y" * 9).hexdigest()},
        {"name": "big", "size": 11, "omitted": "larger than 10 bytes"},
        {"name": "c", "size": 1, "omitted": "more than 2 files"},
        {"name": "link", "size": 11, "omitted": "a symbolic link"},
    ]
    assert files.unlisted == 2 + 6  # two refused here, six only counted there
    assert files.get("a.txt") == b"abc" and files.get("big") is None and files.get("x") is None
    assert files.retained_bytes == 12
