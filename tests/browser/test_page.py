"""The page at / in a real browser (headless Chromium, Selenium) against a real server
and real Docker: the editor, the xterm.js terminal on /ws/terminal/<id>, the status line,
and the event-API (Socket.IO) panel beside it. Each test leaves a screenshot in
test-artifacts/."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import Page

try:
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the browser_ready fixture says why: a skip, or in CI a failure
    Keys = None  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.docker, pytest.mark.browser]

INPUT_PROGRAM = 'name = input("Your name? ")\nprint("Hello,", name.upper())'


def test_type_a_program_run_it_and_see_its_output(page: Page) -> None:
    page.type_program('print("Hello from the page")\nprint(6 * 7)')
    assert page.el("stop").get_attribute("disabled") is not None
    page.el("run").click()
    status = page.wait_status(r"^ok in \d+\.\d\d s$")
    text = page.wait_terminal("Hello from the page")
    assert text.splitlines()[:2] == ["Hello from the page", "42"]
    assert page.el("status").get_attribute("data-verdict") == "ok"
    assert page.el("stop").get_attribute("disabled") is not None
    assert "ok in" in status
    assert page.browser_errors() == []


def test_answer_input_in_the_terminal_with_status_line(page: Page) -> None:
    page.type_program(INPUT_PROGRAM)
    page.chord(Keys.CONTROL, Keys.ENTER)  # the keyboard shortcut, from the editor
    waiting = page.wait_status(r"waiting for input")
    assert "Your name?" in waiting
    assert page.el("status").get_attribute("data-state") == "waiting"
    assert page.el("stop").get_attribute("disabled") is None
    # The terminal took the focus: the learner types straight into it.
    page.wait(lambda: page.active_testid_container() == "terminal", "the terminal has focus")
    page.keys("Ada")
    page.wait_terminal("Your name? Ada")
    page.keys(Keys.ENTER)
    page.wait_status(r"^ok in \d+\.\d\d s$")
    assert page.terminal_text.splitlines()[:2] == ["Your name? Ada", "Hello, ADA"]


def test_stop_ends_an_endless_loop(page: Page) -> None:
    page.type_program(
        'import time\nwhile True:\n    print("tick", flush=True)\n    time.sleep(0.2)'
    )
    page.el("run").click()
    page.wait_terminal("tick\ntick")
    assert page.el("status").get_attribute("data-state") == "running"
    page.el("stop").click()
    status = page.wait_status(r"^cancelled after", timeout=8)
    assert page.el("status").get_attribute("data-verdict") == "cancelled"
    seconds = float(re.search(r"after ([\d.]+) s", status).group(1))  # type: ignore[union-attr]
    assert seconds < 9  # stopped, not timed out (the limit is 10 s)
    assert page.el("stop").get_attribute("disabled") is not None


def test_ctrl_c_in_the_terminal_interrupts(page: Page) -> None:
    page.type_program(
        "import signal, sys, time\n"
        'signal.signal(signal.SIGINT, lambda *a: (print("caught Ctrl-C"), sys.exit(0)))\n'
        'print("looping", flush=True)\n'
        "while True: time.sleep(0.05)"
    )
    page.el("run").click()
    page.wait_terminal("looping")
    page.el("terminal").click()
    # With a selection, Ctrl+C is the browser's copy, not an interrupt.
    page.js("codex.term.selectAll()")
    page.chord(Keys.CONTROL, "c")
    time.sleep(0.5)
    assert page.el("status").get_attribute("data-state") == "running"
    page.js("codex.term.clearSelection()")
    page.chord(Keys.CONTROL, "c")
    page.wait_status(r"^ok in")
    assert "caught Ctrl-C" in page.terminal_text


def test_syntax_error_marks_its_line(page: Page) -> None:
    page.type_program('print("one")\nprint("two")\nx = = 3\nprint("four")')
    page.el("run").click()
    status = page.wait_status(r"^syntax_error")
    assert "line 3" in status and "invalid syntax" in status
    editor = page.el("editor")
    assert editor.get_attribute("data-error-line") == "3"
    marked = page.js(
        "return Array.from(document.querySelectorAll('[data-testid=editor] .cm-error-line'))"
        ".map(el => el.querySelector('.CodeMirror-line').textContent)"
    )
    assert marked == ["x = = 3"]
    message = page.js("return document.querySelector('.cm-error-widget').textContent")
    assert "line 3" in message and "invalid syntax" in message
    assert "SyntaxError" in page.terminal_text  # nothing ran, so the terminal says why
    # Editing the program clears the mark.
    page.el("editor").click()
    page.keys(Keys.END, " ")
    page.wait(lambda: editor.get_attribute("data-error-line") is None, "the mark is cleared")


def test_runtime_error_points_at_its_line(page: Page) -> None:
    page.type_program('print("before")\nprint(1 / 0)')
    page.el("run").click()
    status = page.wait_status(r"^runtime_error in")
    assert "ZeroDivisionError" in status
    assert page.el("editor").get_attribute("data-error-line") == "2"
    assert "Traceback" in page.terminal_text


def test_event_api_panel_runs_the_program_and_shows_the_answer_once(page: Page) -> None:
    page.type_program(INPUT_PROGRAM)
    page.el("events-run").click()
    waiting = str(
        page.wait(
            lambda: "waiting for input" in page.events_status.lower() and page.events_status,
            "events: waiting for input",
        )
    )
    assert "Your name?" in waiting
    # The input box took the focus; Enter sends the answer as an `input` event.
    page.wait(lambda: page.active_testid_container() == "events-input", "the input box has focus")
    page.keys("Ada", Keys.ENTER)
    page.wait(lambda: page.events_status.lower().startswith("ok in"), "events: ok")
    transcript = page.el("events-transcript").text
    assert transcript.startswith("Your name? Ada\nHello, ADA\n"), transcript
    assert transcript.count("Ada") == 1, transcript  # the server never echoes it here
    answers = page.js(
        "return Array.from(document.querySelectorAll('[data-testid=events-transcript] .answer'))"
        ".map(el => el.textContent)"
    )
    assert answers == ["Ada"]
    assert "execution_complete" in transcript
    assert page.el("events-input").get_attribute("disabled") is not None
    # The terminal panel was not involved.
    assert page.terminal_text == ""


def test_resizing_the_window_resizes_the_programs_terminal(page: Page) -> None:
    page.type_program(
        "import shutil\n"
        'input("ready? ")\n'
        'print("start", *shutil.get_terminal_size())\n'
        'input("resize? ")\n'
        'print("after", *shutil.get_terminal_size())'
    )
    page.el("run").click()
    page.wait_status("waiting for input")
    cols, rows = page.js("return [codex.term.cols, codex.term.rows]")
    assert (cols, rows) != (80, 24)  # the server's default: the page fitted its own
    page.keys(Keys.ENTER)
    # The size was sent right after connecting (the first line the program printed may
    # predate that: POST /api/execute takes no size, so a program starts at 80x24).
    page.wait_terminal(f"start {cols} {rows}")
    page.wait_status("waiting for input.*resize")
    page.driver.set_window_size(760, 760)
    page.wait(lambda: page.js("return codex.term.cols") != cols, "the terminal refits")
    size = page.js("return [codex.term.cols, codex.term.rows]")
    while True:  # until the layout has settled
        time.sleep(0.3)
        settled = page.js("return [codex.term.cols, codex.term.rows]")
        if settled == size:
            break
        size = settled
    new_cols, new_rows = size
    assert (new_cols, new_rows) != (cols, rows)
    page.el("terminal").click()
    page.keys(Keys.ENTER)
    page.wait_status(r"^ok in")
    page.wait_terminal(f"after {new_cols} {new_rows}")


def test_hostile_output_cannot_retitle_copy_or_link_out(page: Page) -> None:
    page.type_program(
        'print("\\x1b]0;pwned-title\\x07\\x1b]2;pwned-too\\x07'
        '\\x1b]52;c;cHduZWQ=\\x07visible")\n'
        'print("\\x1b]8;;javascript:alert(1)\\x07click me\\x1b]8;;\\x07 done")'
    )
    page.el("run").click()
    page.wait_status(r"^ok in")
    text = page.terminal_text
    assert "visible" in text and "click me done" in text
    assert "pwned" not in text and "cHduZWQ" not in text
    assert page.driver.title == "CodeX"
    # Links from output open only if they are http(s), without an opener.
    opened = page.js(
        "const seen = []; const real = window.open;"
        "window.open = (url, target, features) => {"
        "  seen.push([url, target, features]); return null; };"
        "try { for (const u of ['javascript:alert(1)', 'data:text/html,x', 'file:///etc/passwd',"
        "  'https://example.org/docs']) codex.openLink(u); } finally { window.open = real; }"
        "return seen;"
    )
    assert opened == [["https://example.org/docs", "_blank", "noopener,noreferrer"]]


def test_keyboard_only_and_labelled_controls(page: Page) -> None:
    unlabelled = page.js(
        "const all = 'button, input, textarea, [role=region], [role=log]';"
        "return Array.from(document.querySelectorAll(all))"
        ".filter(el => el.offsetParent !== null)"
        ".filter(el => !(el.getAttribute('aria-label') || (el.labels && el.labels.length)"
        "  || el.textContent.trim()))"
        ".map(el => el.outerHTML.slice(0, 80));"
    )
    assert unlabelled == []
    # Tab inserts four spaces in the editor; Esc then Tab moves on to the next control,
    # the arguments field of the request pane below the editor.
    page.type_program("x = 1")
    page.keys(Keys.HOME, Keys.TAB)
    assert page.code == "    x = 1"
    page.keys(Keys.ESCAPE, Keys.TAB)
    assert page.active_testid_container() == "args"
    # The terminal keeps Tab from the program too: Tab leaves it, Shift+Tab comes back
    # out the other side (the request pane's last control).
    page.el("terminal").click()
    page.keys(Keys.TAB)
    assert page.active_testid_container() not in ("terminal", None)
    page.el("terminal").click()
    page.keys(Keys.SHIFT, Keys.TAB)
    assert page.js("return !!document.activeElement.closest('[data-testid=request-pane]')")
    # Shift+Tab walks back from the request pane's first control to the editor, then to
    # Stop and Run.
    page.el("args").click()
    page.keys(Keys.SHIFT, Keys.TAB)
    assert page.active_testid_container() == "editor"
    page.keys(Keys.ESCAPE)
    page.keys(Keys.SHIFT, Keys.TAB)
    assert page.active_testid_container() == "run"  # Stop is disabled: skipped
    page.type_program('print("keyboard")')
    page.keys(Keys.ESCAPE)
    page.keys(Keys.SHIFT, Keys.TAB)
    page.keys(Keys.ENTER)  # Enter on the focused Run button
    page.wait_status(r"^ok in")
    assert "keyboard" in page.terminal_text


def test_small_window_stacks_the_panels(page: Page) -> None:
    page.driver.set_window_size(480, 800)
    page.wait(
        lambda: page.js(
            "const e = document.querySelector('.editor-panel').getBoundingClientRect();"
            "const t = document.querySelector('.terminal-panel').getBoundingClientRect();"
            "return t.top >= e.bottom;"
        ),
        "one column",
    )
    overflow = page.js("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    for testid in ("run", "stop", "editor", "terminal", "status", "events-run", "events-input"):
        box = page.js(
            "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];",
            page.el(testid),
        )
        assert box[0] > 0 and box[1] > 0, testid
    page.type_program('print("small")')
    page.el("run").click()
    page.wait_status(r"^ok in")
    assert page.js("return codex.term.cols") < 80
