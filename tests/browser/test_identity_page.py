"""The page against a server with identity on (token_secret: HS256 learner tokens), in
a real browser with real Docker: a token passed once in the address's fragment, or
pasted into the Token field, goes with REST (Authorization), Socket.IO (auth: {token})
and the terminal (its first message); without one, Run says the server needs one; an
output file downloads through the header; the token is in no request URL."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.browser.conftest import IDENTITY_SECRET, Page

try:
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the browser_ready fixture says why: a skip, or in CI a failure
    Keys = None  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.docker, pytest.mark.browser]

RUN_TIMEOUT = 30  # s: a sandbox start, with room to spare
INPUT_PROGRAM = 'name = input("Your name? ")\nprint("Hello,", name.upper())'
FILE_PROGRAM = "open('out.txt', 'w').write('hi')\nprint('wrote')"

# Before the page's scripts: every WebSocket the page opens (socket.io-client's and the
# terminal's), with its protocols, and every fetch with its Authorization header.
RECORDER = """
window.__seen = { sockets: [], fetches: [] };
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    window.__seen.sockets.push({ url: String(url), protocols: String(protocols || "") });
  }
};
const nativeFetch = window.fetch;
window.fetch = function (input, init) {
  const headers = new Headers((init && init.headers) || {});
  window.__seen.fetches.push({ url: String(input), auth: headers.get("Authorization") });
  return nativeFetch.apply(this, arguments);
};
"""


def mint(sub: str = "ada", secret: str = IDENTITY_SECRET) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, secret, "HS256")


def token_state(page: Page) -> str:
    return str(page.el("token-form").get_attribute("data-state"))


def wait_connected(page: Page) -> None:
    conn = page.el("events-conn")
    page.wait(lambda: conn.get_attribute("data-state") == "connected", "socket.io connected")


def wait_end(page: Page, testid: str = "status") -> None:
    page.wait(
        lambda: page.el(testid).get_attribute("data-state") in ("ok", "failed", "error"),
        f"the run in {testid} ends",
        RUN_TIMEOUT,
    )
    assert page.el(testid).get_attribute("data-verdict") == "ok", page.el(testid).text


def wait_refused(page: Page) -> str:
    page.wait(lambda: page.el("status").get_attribute("data-state") == "error", "refused")
    return page.status


def paste_token(page: Page, value: str) -> None:
    field = page.el("token")
    field.clear()
    field.send_keys(value)


def stored(page: Page) -> dict[str, Any]:
    return dict(
        page.js(
            "return {session: sessionStorage.getItem('codex.token'),"
            " local: Object.keys(localStorage).map(k => localStorage.getItem(k)).join('\\n')}"
        )
    )


def run_terminal_with_input(page: Page) -> None:
    page.type_program(INPUT_PROGRAM)
    page.el("run").click()
    page.wait_status(r"waiting for input", timeout=RUN_TIMEOUT)
    page.wait(lambda: page.active_testid_container() == "terminal", "the terminal has focus")
    page.keys("Ada")
    page.wait_terminal("Your name? Ada")
    page.keys(Keys.ENTER)
    wait_end(page)
    assert page.terminal_text.splitlines()[:2] == ["Your name? Ada", "Hello, ADA"]


def run_events_with_input(page: Page) -> None:
    page.el("events-run").click()
    page.wait(
        lambda: page.el("events-status").get_attribute("data-state") == "waiting",
        "the event-API run waits for input",
        RUN_TIMEOUT,
    )
    page.wait(lambda: page.active_testid_container() == "events-input", "the answer box")
    page.keys("Bob", Keys.ENTER)
    wait_end(page, "events-status")
    assert "Hello, BOB" in page.el("events-transcript").text


def output_link(page: Page, session_id: str) -> Any:
    page.wait(
        lambda: page.el("output-files").get_attribute("data-session-id") == session_id,
        "the output-files list of the run",
    )
    return page.driver.find_element(
        "css selector", '[data-testid=output-files] li[data-name="out.txt"] a'
    )


def test_a_token_in_the_fragment_is_kept_hidden_and_both_panels_run(identity_page: Page) -> None:
    page, token = identity_page, mint()
    page.open_fresh("#token=" + token)
    # Gone from the address bar (and so from bookmarks and shared links), kept for the tab.
    assert page.js("return location.href") == page.base_url + "/"
    assert token not in page.driver.current_url
    assert stored(page)["session"] == token
    assert token not in stored(page)["local"]
    assert page.el("token").get_attribute("value") == token
    assert page.el("token").get_attribute("type") == "password"
    assert token_state(page) == "set"
    wait_connected(page)  # Socket.IO took the token: a refused connection never connects

    run_terminal_with_input(page)  # POST with the header, then ["auth", token] first
    run_events_with_input(page)  # POST, then join on the authenticated connection
    assert token_state(page) == "set"
    assert page.el("token-note").text == ""
    assert page.browser_errors() == []  # no 401 or 403 anywhere


def test_without_a_token_run_says_so_then_a_pasted_token_works(identity_page: Page) -> None:
    page, token = identity_page, mint()
    page.open_fresh()
    # Socket.IO's connect_error is the first sign: the field asks for a token.
    page.wait(lambda: token_state(page) == "needed", "the Token field asks for a token")
    assert "needs a token" in page.el("token-note").text
    assert page.el("events-conn").text == "needs a token"
    assert page.el("token").get_attribute("aria-invalid") == "true"

    page.type_program('print("ran")')
    page.el("run").click()
    status = wait_refused(page)
    assert "This server needs a token (401)" in status and "Token field" in status
    assert page.el("status").get_attribute("data-auth") == "unauthorized"
    assert page.js("return codex.runner.state.sessionId") is None
    assert page.el("run").get_attribute("disabled") is None
    assert page.terminal_text == ""

    # A token the server did not sign: refused, with the server's reason.
    paste_token(page, mint(secret="some-other-secret-that-is-long-enough-0123"))
    page.el("run").click()
    status = wait_refused(page)
    assert "The server refused the token (401)" in status
    assert "signature is not valid" in status
    page.wait(lambda: token_state(page) == "refused", "the field says the token was refused")

    # The right one, pasted (with "Bearer " in front, as copied from a header): runs.
    paste_token(page, "Bearer " + token)
    page.el("token-show").click()
    assert page.el("token").get_attribute("type") == "text"
    assert page.el("token-show").get_attribute("aria-pressed") == "true"
    page.el("token-show").click()
    assert page.el("token").get_attribute("type") == "password"
    page.el("run").click()
    wait_end(page)
    page.wait_terminal("ran")
    assert page.el("status").get_attribute("data-auth") is None
    assert token_state(page) == "set" and page.el("token-note").text == ""
    assert stored(page)["session"] == token and token not in stored(page)["local"]

    # Socket.IO connected again with the new token: the event-API panel runs too.
    wait_connected(page)
    page.el("events-run").click()
    wait_end(page, "events-status")
    assert "ran" in page.el("events-transcript").text


def test_an_output_file_downloads_through_the_token(identity_page: Page, tmp_path: Path) -> None:
    page, token = identity_page, mint()
    page.driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    page.open_fresh("#token=" + token)
    page.type_program(FILE_PROGRAM)
    page.el("run").click()
    wait_end(page)
    session_id = page.js("return codex.runner.state.sessionId")
    link = output_link(page, session_id)
    href = link.get_attribute("href")
    assert href.endswith(f"/api/sessions/{session_id}/files/out.txt") and token not in href
    # The plain link alone is refused: it cannot carry the header.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(href, timeout=10)
    assert refused.value.code == 401

    link.click()  # fetched with the header, saved from a blob: URL
    saved = tmp_path / "out.txt"
    page.wait(lambda: saved.is_file() and saved.read_bytes() == b"hi", "out.txt saved", 15)
    assert not page.js("return document.querySelector('.download-error')")


def test_the_token_is_in_no_request_url(identity_page: Page, tmp_path: Path) -> None:
    page, token = identity_page, mint()
    signature = token.rsplit(".", 1)[1]
    page.driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    script = page.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER}
    )
    try:
        page.open_fresh("#token=" + token)
        assert page.js("return Array.isArray(window.__seen.sockets)")  # recording
        wait_connected(page)
        page.type_program(FILE_PROGRAM)
        page.el("run").click()
        wait_end(page)
        output_link(page, page.js("return codex.runner.state.sessionId")).click()
        page.wait(lambda: (tmp_path / "out.txt").is_file(), "out.txt saved", 15)
        page.el("events-run").click()
        wait_end(page, "events-status")

        seen = page.js("return window.__seen")
        resources = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    finally:
        page.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    sockets = [s["url"] for s in seen["sockets"]]
    assert any("/ws/terminal/" in url for url in sockets), sockets
    assert any("/socket.io/" in url for url in sockets), sockets
    assert any("/api/execute" in url for url in resources), resources
    assert any("/files/out.txt" in url for url in resources), resources
    for url in [*resources, *sockets, *(s["protocols"] for s in seen["sockets"])]:
        assert token not in url and signature not in url, url
    # REST carried it as the header instead: every session call the page made.
    session_calls = [f for f in seen["fetches"] if "/api/" in f["url"]]
    assert len(session_calls) >= 2, seen["fetches"]
    for call in session_calls:
        assert token not in call["url"]
        assert call["auth"] == f"Bearer {token}", call
