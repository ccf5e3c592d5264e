"""Files in and out, arguments, per-request limits, wait mode and the shell after the
run, in real sandboxes (pooled and cold alike), with neighbours that stay correct."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

import pytest

from tests.e2e.test_pool import pool_of, wait_ready
from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=180)]

CSV = "name,score\nAda,90\nAlan,85\n"
HELPER = "def twice(x):\n    return 2 * x\n"
BLOB = bytes(range(256)) * 4
FILES = [
    {"name": "scores.csv", "content": CSV},
    {"name": "lib/helper.py", "content": HELPER},
    {"name": "raw/blob.bin", "content": base64.b64encode(BLOB).decode(), "encoding": "base64"},
]
PROGRAM = (
    "import hashlib, sys\n"
    "import pandas as pd\n"
    "from lib.helper import twice\n"
    "df = pd.read_csv('scores.csv')\n"
    "print('mean', df.score.mean())\n"
    "print('twice', twice(21))\n"
    "print('blob', hashlib.sha256(open('raw/blob.bin', 'rb').read()).hexdigest())\n"
    "print('argv', sys.argv)\n"
    "open('report.txt', 'w').write('mean=%s\\n' % df.score.mean())\n"
)


async def wait_mode(h: Harness, body: dict[str, Any]) -> dict[str, Any]:
    resp = await h.request("POST", "/api/execute?wait=true", body)
    assert resp.status == 200, resp
    return dict(resp.body)


async def test_files_args_and_files_out_in_a_pooled_and_a_cold_sandbox() -> None:
    request = {"code": PROGRAM, "files": FILES, "args": ["one", "two words"]}
    answers = []
    for pool_size in (1, 0):
        async with running_app(pool_size=pool_size) as h:
            if pool_size:
                await wait_ready(h, 1, timeout=60)
            answer = await wait_mode(h, request)
            if pool_size:
                assert pool_of(h).hits == 1  # it ran in the pooled sandbox
            sid = answer["sessionId"]
            report = await h.http.fetch(f"{h.base_url}/api/sessions/{sid}/files/report.txt")
            described = (await h.request("GET", f"/api/sessions/{sid}")).body
        answers.append(answer)
        assert answer["result"]["status"] == "ok", answer
        out = answer["output"]
        assert "mean 87.5\r\n" in out and "twice 42\r\n" in out
        assert f"blob {hashlib.sha256(BLOB).hexdigest()}\r\n" in out  # byte-exact inside
        assert "argv ['main.py', 'one', 'two words']\r\n" in out
        expected = b"mean=87.5\n"
        listed = [
            {
                "name": "report.txt",
                "size": len(expected),
                "sha256": hashlib.sha256(expected).hexdigest(),
            }
        ]
        assert (
            answer["result"]["files"] == listed == described["files"]
        )  # inputs unchanged: not listed
        assert report.body == expected
        assert report.headers["Content-Disposition"].startswith("attachment")
    assert answers[0]["output"] == answers[1]["output"]


async def test_a_planted_symlink_and_ten_thousand_files_stay_within_bounds() -> None:
    hostile = (
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd')\n"
        "made = 0\n"
        "try:\n"
        "    for i in range(10000):\n"
        "        open('f%05d' % i, 'w').write('x')\n"
        "        made += 1\n"
        "except OSError as e:\n"
        "    print('stopped', e.errno)\n"
        "print('made', made)\n"
    )
    neighbour = "print(sum(range(1000)))\n"
    planted = "import os\nos.symlink('/etc/passwd', 'passwd')\n"
    async with running_app(files_out_max_count=5) as h:
        alone = await wait_mode(h, {"code": planted})
        assert alone["result"]["files"] == [
            {"name": "passwd", "size": len("/etc/passwd"), "omitted": "a symbolic link"}
        ]
        missing = await h.http.fetch(
            f"{h.base_url}/api/sessions/{alone['sessionId']}/files/passwd", raise_error=False
        )
        assert missing.code == 404
        started = time.monotonic()
        attack, *others = await asyncio.gather(
            wait_mode(h, {"code": hostile}), *(wait_mode(h, {"code": neighbour}) for _ in range(3))
        )
        elapsed = time.monotonic() - started
    result = attack["result"]
    assert result["status"] == "ok", attack
    files = result["files"]
    kept = [f for f in files if "sha256" in f]
    assert len(kept) == 5 and all(f["size"] == 1 for f in kept)
    assert not any(f["name"] == "passwd" and "sha256" in f for f in files)  # never followed
    assert len(files) <= 5 + 100 and result["filesUnlisted"] > 0  # counted, never all listed
    for other in others:
        assert other["result"]["status"] == "ok" and other["output"] == "499500\r\n"
    assert elapsed < 60


async def test_a_limit_above_the_cap_is_422_and_one_below_is_enforced() -> None:
    async with running_app(time_limit=10) as h:
        resp = await h.request("POST", "/api/execute", {"code": "1", "limits": {"timeLimit": 11}})
        assert resp.status == 422 and resp.body["code"] == "limit_too_high"
        assert resp.body["field"] == "limits.timeLimit" and resp.body["cap"] == 10
        spin = await wait_mode(h, {"code": "while True: pass\n", "limits": {"timeLimit": 1}})
        assert spin["result"]["status"] == "timeout"
        assert 900 <= spin["result"]["durationMs"] < 5000
        chatty = await wait_mode(
            h, {"code": "print('x' * 5000)\n", "limits": {"outputLimitBytes": 1000}}
        )
        assert chatty["result"]["status"] == "output_limit"
        hungry = await wait_mode(
            h,
            {
                "code": "b = bytearray(100 * 1024 * 1024)\nprint('fits')\n",
                "limits": {"memoryLimitMb": 48},
            },
        )
        assert hungry["result"]["status"] == "memory_limit", hungry
        # The same program within the server's limit: the request's limit did it.
        fits = await wait_mode(h, {"code": "b = bytearray(100 * 1024 * 1024)\nprint('fits')\n"})
        assert fits["result"]["status"] == "ok" and fits["output"] == "fits\r\n"


async def test_the_wait_mode_transcript_equals_the_streamed_one() -> None:
    code = (
        "import sys\nname = input('Who? ')\nprint('Hello', name)\n"
        "print('oops', file=sys.stderr)\nprint(input('More? '))\n"
    )
    async with running_app() as h:
        answer = await wait_mode(h, {"code": code, "stdin": "Ada\nyes\n"})
        # What a Socket.IO client joining the same session gets, event for event.
        streamed = await h.follow(answer["sessionId"])
        assert answer["output"] == streamed.output
        assert "Hello Ada\r\n" in answer["output"] and "oops\r\n" in answer["output"]
        assert answer["result"] == streamed.complete and answer["result"]["status"] == "ok"
        # stdin runs out at the second prompt: end of file, an EOFError, as from a file
        short = await wait_mode(h, {"code": code, "stdin": "Ada\n"})
    assert "EOFError" in short["output"] and short["result"]["status"] == "runtime_error"


async def test_a_program_that_reads_past_the_end_of_its_input_is_stopped() -> None:
    code = "import sys\nwhile True:\n    sys.stdin.readline()\n"
    async with running_app() as h:
        answer = await wait_mode(h, {"code": code})
    assert answer["result"]["status"] == "cancelled"


async def test_the_shell_after_the_run_over_socketio() -> None:
    async with running_app() as h:
        t = await h.run("x = 41\n", ["print(x + 1)", "exit()"], interactive=True)
        prompts = [d["prompt"] for d in t.named("input_required")]
        assert prompts == [">>> ", ">>> "]
        assert "42\r\n" in t.output
        assert t.complete["status"] == "ok" and t.complete["exitCode"] == 0
        lines = ["for i in range(2):", "    print(i)", "", "f()"]
        shells = 0

        async def ctrl_d_when_done(event: str, data: Any) -> None:
            nonlocal shells
            if event == "input_required" and data["prompt"] == ">>> ":
                shells += 1
                if shells == 3:  # both statements ran: end the shell as a learner would
                    await sio.emit("eof", {})

        async with h.client() as sio:
            sid = await h.execute("def f():\n    return 1 / 0\n", interactive=True)
            t = await h.follow(sid, lines, sio=sio, on_event=ctrl_d_when_done)
    prompts = [d["prompt"] for d in t.named("input_required")]
    assert prompts == [">>> ", "... ", "... ", ">>> ", ">>> "]
    assert "0\r\n1\r\n" in t.output and "ZeroDivisionError" in t.output
    assert t.complete["status"] == "ok"  # ended by Ctrl-D at the shell, not by the error


async def test_an_error_in_the_program_still_opens_the_shell() -> None:
    async with running_app() as h:
        answer = await wait_mode(
            h,
            {
                "code": "x = 5\nraise ValueError('bad')\n",
                "interactive": True,
                "stdin": "print(x * 2)\n",
            },
        )
    assert "ValueError: bad" in answer["output"] and "10\r\n" in answer["output"]
    assert answer["result"]["status"] == "ok"


async def test_the_socketio_execute_event_takes_the_same_fields() -> None:
    async with running_app() as h, h.client() as sio:
        reply = await sio.call(
            "execute",
            {
                "code": "import sys\nprint(open('a.txt').read(), sys.argv[1:])\n",
                "files": [{"name": "a.txt", "content": "hi"}],
                "args": ["x"],
            },
        )
        t = await h.follow(reply["sessionId"], sio=sio)
        bad = await sio.call("execute", {"code": "1", "files": [{"name": "/abs", "content": ""}]})
    assert t.output == "hi ['x']\r\n" and t.complete["status"] == "ok"
    assert bad["code"] == "invalid_field" and bad["field"] == "files[0].name"
