"""The fair queue on the page, in a real browser against a real server and real Docker:
with every slot taken, Run says how many are ahead ("Queued: you are next…"), in
both panels (the terminal's JSON WebSocket and the Socket.IO panel), and the program
runs as soon as the slot frees. A screenshot per test in test-artifacts/."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Page, opened_page, serving

pytestmark = [pytest.mark.docker, pytest.mark.browser]

BLOCKER = "input('holding the only slot ')\n"


@pytest.fixture(scope="module")
def one_slot_server(browser_ready: None) -> Iterator[str]:
    with serving(max_sessions=1, queue_max=5) as base_url:
        yield base_url


@pytest.fixture
def queue_page(driver: Any, one_slot_server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    with opened_page(driver, one_slot_server, request) as p:
        yield p


def call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def hold_the_slot(base: str) -> str:
    session_id = str(call(base, "POST", "/api/execute", {"code": BLOCKER})["sessionId"])
    for _ in range(200):
        if call(base, "GET", f"/api/sessions/{session_id}")["waitingForInput"]:
            return session_id
        time.sleep(0.1)
    raise AssertionError("the blocker never waited")


@pytest.mark.parametrize("panel", ["terminal", "events"])
def test_run_with_every_slot_taken_says_its_place_then_runs(queue_page: Page, panel: str) -> None:
    page = queue_page
    blocker = hold_the_slot(page.base_url)
    page.type_program('print("after the line")')
    if panel == "terminal":
        page.el("run").click()
        status = lambda: page.el("status").text  # noqa: E731
        state = lambda: page.el("status").get_attribute("data-state")  # noqa: E731
    else:
        page.el("events-run").click()
        status = lambda: page.events_status  # noqa: E731
        state = lambda: page.el("events-status").get_attribute("data-state")  # noqa: E731
    page.wait(lambda: "Queued: you are next" in status(), f"{panel}: queued")
    assert state() == "queued"
    call(page.base_url, "DELETE", f"/api/sessions/{blocker}")  # the slot frees
    page.wait(lambda: status().lower().startswith("ok in"), f"{panel}: ran and ended ok")
    if panel == "terminal":
        page.wait_terminal("after the line")
    else:
        assert "after the line" in page.el("events-transcript").text
