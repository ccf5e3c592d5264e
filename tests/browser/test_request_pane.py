"""The request pane in a real browser against a real server and real Docker: files typed
in or uploaded from disk, the arguments line and the interactive toggle, all sent with
the Run of both panels; the files a run left, listed with download links; a request the
server refuses, with the field it names in the status line. Each test leaves a
screenshot in test-artifacts/ (the page fixture)."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Page

try:
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the browser_ready fixture says why: a skip, or in CI a failure
    Keys = None  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.docker, pytest.mark.browser]

RUN_TIMEOUT = 30  # s: a sandbox start, with room to spare

CSV_PROGRAM = (
    "import sys, csv\n"
    "from lib.helper import f\n"
    "print(sum(int(r['x']) for r in csv.DictReader(open('data.csv'))), sys.argv[1:], f())\n"
    "open('out.txt','w').write('hi')"
)
CSV_LINE = "3 ['one', 'two words'] helped"
HELPER = "def f():\n    return 'helped'\n"

# The rows of the output-files list, as the page shows them.
OUTPUT_FILES = """
return Array.from(document.querySelectorAll('[data-testid=output-files] li')).map(li => {
  const a = li.querySelector('a');
  const reason = li.querySelector('.reason');
  return {
    name: li.dataset.name, size: (li.querySelector('.size') || {}).textContent,
    href: a && a.href, download: a && a.getAttribute('download'), text: (a || {}).textContent,
    omitted: li.classList.contains('omitted'), reason: reason && reason.textContent,
    colour: getComputedStyle(li.querySelector('.file-name')).color,
  };
});
"""

FILES_LISTED = """
return Array.from(document.querySelectorAll('[data-testid=files] li[data-name]'))
  .map(li => [li.dataset.name, li.querySelector('.size').textContent]);
"""


def add_file(page: Page, name: str, content: str) -> None:
    """Type a file into the pane's form and add it, as a person would."""
    page.el("file-name").clear()
    page.el("file-name").send_keys(name)
    page.el("file-content").clear()
    page.el("file-content").send_keys(content)
    page.el("file-add").click()
    page.wait(lambda: name in listed_names(page), f"{name} in the files list")


def listed_names(page: Page) -> list[str]:
    return [name for name, _ in page.js(FILES_LISTED)]


def sent_files(page: Page) -> list[dict[str, str]]:
    return list(page.js("return codex.pane.options().files"))


def output_files(page: Page, session_id: str | None = None) -> list[dict[str, Any]]:
    """The output-files rows once the list shows a finished run (of `session_id`)."""

    def shown() -> Any:
        ul = page.el("output-files")
        sid = ul.get_attribute("data-session-id")
        if not sid or (session_id and sid != session_id):
            return None
        return page.js(OUTPUT_FILES) or None

    return list(page.wait(shown, "the output-files list", 10))


def download(href: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(href, timeout=10) as resp:
        return resp.read(), str(resp.headers.get("Content-Disposition", ""))


def wait_ok(page: Page) -> None:
    page.wait(
        lambda: page.el("status").get_attribute("data-state") in ("ok", "failed", "error"),
        "the terminal run ends",
        RUN_TIMEOUT,
    )
    assert page.el("status").get_attribute("data-verdict") == "ok", page.status


def wait_events_ok(page: Page) -> None:
    page.wait(
        lambda: page.el("events-status").get_attribute("data-state") in ("ok", "failed", "error"),
        "the event-API run ends",
        RUN_TIMEOUT,
    )
    assert page.el("events-status").get_attribute("data-verdict") == "ok", page.events_status


def test_files_and_args_reach_the_program_in_both_panels_and_its_file_downloads(
    page: Page,
) -> None:
    page.type_program(CSV_PROGRAM)
    add_file(page, "data.csv", "x\n1\n2\n")
    add_file(page, "lib/helper.py", HELPER)
    page.el("args").send_keys('one "two words"')
    assert page.el("args-preview").text == 'sys.argv[1:] = ["one", "two words"]'
    assert sent_files(page) == [
        {"name": "data.csv", "content": "x\n1\n2\n", "encoding": "utf-8"},
        {"name": "lib/helper.py", "content": HELPER, "encoding": "utf-8"},
    ]
    assert page.js(FILES_LISTED) == [
        ["data.csv", "6 B · text"],
        ["lib/helper.py", f"{len(HELPER)} B · text"],
    ]

    page.el("run").click()
    wait_ok(page)
    assert CSV_LINE in page.wait_terminal(CSV_LINE)
    terminal_id = page.js("return codex.runner.state.sessionId")
    rows = output_files(page, terminal_id)
    # Only what the program wrote: data.csv and lib/helper.py came in unchanged.
    assert [(r["name"], r["size"], r["omitted"]) for r in rows] == [("out.txt", "2 B", False)]
    assert rows[0]["href"].endswith(f"/api/sessions/{terminal_id}/files/out.txt")
    assert rows[0]["download"] == "out.txt"
    assert "terminal" in page.el("output-files-caption").text
    body, disposition = download(rows[0]["href"])
    assert body == b"hi"
    assert disposition.startswith("attachment")

    # The event-API panel sends the same files and arguments with its own POST.
    page.el("events-run").click()
    wait_events_ok(page)
    assert CSV_LINE in page.el("events-transcript").text
    events_id = page.js("return codex.events.state.sessionId")
    assert events_id != terminal_id
    rows = output_files(page, events_id)
    assert [(r["name"], r["size"]) for r in rows] == [("out.txt", "2 B")]
    assert "event-API" in page.el("output-files-caption").text
    assert download(rows[0]["href"])[0] == b"hi"

    # Kept in localStorage like the program: a reload brings the files and args back.
    page.driver.refresh()
    page.wait(lambda: page.js("return document.body.dataset.ready === 'true'"), "page ready")
    assert listed_names(page) == ["data.csv", "lib/helper.py"]
    assert page.el("args").get_attribute("value") == 'one "two words"'
    assert sent_files(page)[0]["content"] == "x\n1\n2\n"
    assert page.browser_errors() == []


BINARY_PROGRAM = (
    "import hashlib, os\n"
    "print('top', hashlib.sha256(open('blob.bin','rb').read()).hexdigest())\n"
    "print('sub', hashlib.sha256(open('up/blob.bin','rb').read()).hexdigest())\n"
    "os.makedirs('res dir', exist_ok=True)\n"
    "open('res dir/copy #1.bin','wb').write(open('blob.bin','rb').read()[::-1])\n"
    "open('<img src=x onerror=alert(1)>.txt','w').write('tag')\n"
    "os.symlink('blob.bin', 'link')"
)


def test_uploaded_binary_arrives_byte_for_byte_and_output_files_are_safe(
    page: Page, tmp_path: Path
) -> None:
    data = os.urandom(3000) + bytes(range(256)) + b"\x00\xff\xfe"  # not UTF-8
    blob = tmp_path / "blob.bin"
    blob.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    page.type_program(BINARY_PROGRAM)
    page.el("file-upload").send_keys(str(blob))
    page.wait(lambda: "blob.bin" in listed_names(page), "the upload is listed")
    # The Name box, ending in "/", is the folder for the next upload.
    page.el("file-name").send_keys("up/")
    page.el("file-upload").send_keys(str(blob))
    page.wait(lambda: "up/blob.bin" in listed_names(page), "the second upload is listed")
    files = sent_files(page)
    assert [(f["name"], f["encoding"]) for f in files] == [
        ("blob.bin", "base64"),
        ("up/blob.bin", "base64"),
    ]
    assert page.js(FILES_LISTED)[0][1] == "3.2 KiB · uploaded"

    page.el("run").click()
    wait_ok(page)
    text = page.wait_terminal("sub ")
    assert f"top {digest}" in text.replace("\n", "")
    assert f"sub {digest}" in text.replace("\n", "")

    session_id = page.js("return codex.runner.state.sessionId")
    rows = {r["name"]: r for r in output_files(page, session_id)}
    assert set(rows) == {"<img src=x onerror=alert(1)>.txt", "link", "res dir/copy #1.bin"}
    # Each path segment is encoded; the file comes back with the program's bytes.
    copy = rows["res dir/copy #1.bin"]
    assert copy["href"].endswith("/files/res%20dir/copy%20%231.bin")
    assert copy["download"] == "copy #1.bin"
    assert download(copy["href"])[0] == data[::-1]
    # A name from the program is text, never markup.
    tag = rows["<img src=x onerror=alert(1)>.txt"]
    assert tag["text"] == "<img src=x onerror=alert(1)>.txt"
    assert page.js("return document.querySelectorAll('[data-testid=output-files] img').length") == 0
    assert download(tag["href"])[0] == b"tag"
    # The symbolic link was not collected: greyed, with the server's reason, no link.
    link = rows["link"]
    assert link["omitted"] and link["href"] is None
    assert link["reason"] == "not collected: a symbolic link"
    assert link["colour"] != tag["colour"]


def wait_prompt(page: Page, prompt: str, testid: str = "status") -> None:
    page.wait(
        lambda: (
            page.el(testid).get_attribute("data-state") == "waiting"
            and page.el(testid).get_attribute("data-prompt") == prompt
        ),
        f"{testid} waits with the prompt {prompt!r}",
        RUN_TIMEOUT,
    )


def test_interactive_toggle_gives_a_shell_after_the_run_in_both_panels(page: Page) -> None:
    page.type_program("x = 41")
    page.el("interactive").click()
    assert page.js("return codex.pane.options().interactive") is True
    page.el("run").click()
    wait_prompt(page, ">>> ")
    page.wait(lambda: page.active_testid_container() == "terminal", "the terminal has focus")
    page.keys("print(x + 1)", Keys.ENTER)
    page.wait_terminal("42")
    wait_prompt(page, ">>> ")
    page.keys("exit()", Keys.ENTER)
    page.wait_status(r"^ok in", timeout=RUN_TIMEOUT)
    assert page.el("status").get_attribute("data-verdict") == "ok"
    assert page.terminal_text.splitlines()[:2] == [">>> print(x + 1)", "42"]

    # The event API: the same shell, answered through the answer box.
    page.el("events-run").click()
    wait_prompt(page, ">>> ", "events-status")
    page.wait(lambda: page.active_testid_container() == "events-input", "the answer box")
    page.keys("print(x * 2)", Keys.ENTER)
    page.wait(lambda: "82" in page.el("events-transcript").text, "82 in the transcript")
    wait_prompt(page, ">>> ", "events-status")
    page.keys("exit()", Keys.ENTER)
    wait_events_ok(page)

    # Ctrl+D in the terminal ends the shell too.
    page.el("run").click()
    wait_prompt(page, ">>> ")
    page.wait(lambda: page.active_testid_container() == "terminal", "the terminal has focus")
    page.chord(Keys.CONTROL, "d")
    wait_ok(page)

    # Off again: the program just ends.
    page.el("interactive").click()
    page.el("run").click()
    wait_ok(page)
    assert ">>>" not in page.terminal_text


def test_a_refused_file_name_is_named_in_the_status_line_and_nothing_runs(page: Page) -> None:
    page.type_program('print("ran")')
    add_file(page, "ok.txt", "fine")
    add_file(page, "../x", "escape")
    page.el("run").click()
    page.wait(lambda: page.el("status").get_attribute("data-state") == "error", "refused")
    status = page.status
    assert status.startswith("Not started — files[1].name: "), status
    assert "'../x'" in status and "'..' part" in status
    assert page.el("status").get_attribute("data-field") == "files[1].name"
    assert page.js("return codex.runner.state.sessionId") is None
    assert page.el("stop").get_attribute("disabled") is not None
    assert page.el("run").get_attribute("disabled") is None
    assert page.terminal_text == ""
    invalid = page.js(
        "return Array.from(document.querySelectorAll('[data-testid=files] li[data-invalid]'))"
        ".map(li => [li.dataset.name, li.dataset.invalid])"
    )
    assert invalid == [["../x", "files[1].name"]]

    # The event-API panel gets the same answer in its own status line.
    page.el("events-run").click()
    page.wait(
        lambda: page.el("events-status").get_attribute("data-state") == "error", "events refused"
    )
    assert "files[1].name" in page.events_status
    assert page.el("events-transcript").text == ""

    # Removing the file clears the mark, and the run goes ahead.
    page.driver.find_element(
        "css selector", '[data-testid=files] li[data-name="../x"] button.remove'
    ).click()
    assert listed_names(page) == ["ok.txt"]
    assert page.js("return document.querySelectorAll('[data-invalid]').length") == 0
    page.el("run").click()
    wait_ok(page)
    page.wait_terminal("ran")
    assert page.el("status").get_attribute("data-field") is None


ARGS_CASES = """
const done = arguments[arguments.length - 1];
import('./static/js/request-options.js').then(m => done([
  'one "two words"', '  a   b  ', 'a"b c"d', '"" x', 'say \\\\"hi\\\\"',
  'C:\\\\dir\\\\f', '"open end', '',
].map(line => m.parseArgs(line))), err => done(String(err)));
"""


def test_the_arguments_rule(page: Page) -> None:
    """Whitespace splits, double quotes group (and go), \\" is a quote, nothing else is special."""
    assert page.driver.execute_async_script(ARGS_CASES) == [
        ["one", "two words"],
        ["a", "b"],
        ["ab cd"],
        ["", "x"],
        ["say", '"hi"'],
        ["C:\\dir\\f"],
        ["open end"],
        [],
    ]


def test_a_file_too_large_to_store_is_sent_but_not_kept_after_a_reload(
    page: Page, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024 + 1))  # just over what the page stores
    add_file(page, "small.txt", "kept")
    page.el("file-upload").send_keys(str(big))
    page.wait(lambda: "big.bin" in listed_names(page), "the upload is listed")
    sizes = dict(page.js(FILES_LISTED))
    assert "not kept after a reload" in sizes["big.bin"]
    assert "not kept" not in sizes["small.txt"]
    assert [f["name"] for f in sent_files(page)] == ["small.txt", "big.bin"]  # still sent
    page.driver.refresh()
    page.wait(lambda: page.js("return document.body.dataset.ready === 'true'"), "page ready")
    assert listed_names(page) == ["small.txt"]
