"""Fixtures for the page's browser tests: a real CodeX server (the harness's
`running_app`, in a thread with its own event loop, so a synchronous WebDriver never
blocks it), headless Chromium from Debian driven by Selenium, and a screenshot of every
test in test-artifacts/.

Chromium missing: the tests skip with the reason; with CI=true they fail instead."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.harness import running_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CODEX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CODEX_CHROMEDRIVER", "/usr/bin/chromedriver")
VENDOR = ROOT / "static" / "vendor"
VENDOR_FILES = (
    "xterm.js",
    "addon-fit.js",
    "addon-image.js",
    "socket.io.min.js",
    "codemirror.js",
    "python.js",
)
WINDOW = (1400, 900)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def _browser_problem() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install -r requirements-dev.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"{CHROMEDRIVER} is missing (apt-get install -y chromium-driver)"
    missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
    if missing:
        return f"static/vendor/ lacks {', '.join(missing)} (run `make page`)"
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    require("the browser", _browser_problem())


class ServerThread:
    """running_app() in its own thread and event loop, until stop()."""

    def __init__(self, **overrides: Any) -> None:
        self.overrides = overrides
        self.base_url = ""
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="codex-browser-server", daemon=True)

    def start(self, timeout: float = 60) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the CodeX server did not start in time")
        if self.error is not None:
            raise RuntimeError(f"the CodeX server failed to start: {self.error!r}")
        return self.base_url

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with running_app(**self.overrides) as h:
            self.base_url = h.base_url
            self._ready.set()
            await self._stopping.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(60)


@contextlib.contextmanager
def serving(**overrides: Any) -> Iterator[str]:
    """A server with these settings overrides, for as long as the block runs."""
    thread = ServerThread(**overrides)
    base_url = thread.start()
    try:
        yield base_url
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def server(browser_ready: None) -> Iterator[str]:
    with serving() as base_url:
        yield base_url


# Identity on: HS256 learner tokens signed with this (at least 32 characters).
IDENTITY_SECRET = "browser-tests-token-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def identity_server(browser_ready: None) -> Iterator[str]:
    """A server with identity on (token_secret): every session route needs a token."""
    with serving(token_secret=IDENTITY_SECRET) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def driver(browser_ready: None) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="codex-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    drv = webdriver.Chrome(service=service, options=options)
    drv.set_script_timeout(20)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The CodeX page in the browser, with the waits the tests need."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    # -- elements ---------------------------------------------------------------------------

    def el(self, testid: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    @property
    def status(self) -> str:
        return str(self.el("status").text)

    @property
    def events_status(self) -> str:
        return str(self.el("events-status").text)

    @property
    def terminal_text(self) -> str:
        return str(self.js("return window.codex.terminalText()"))

    @property
    def code(self) -> str:
        return str(self.js("return window.codex.editor.getValue()"))

    def active_testid_container(self) -> str | None:
        """The data-testid of the element holding the focus, or of its nearest ancestor."""
        found = self.js(
            "const el = document.activeElement && document.activeElement.closest('[data-testid]');"
            "return el ? el.dataset.testid : null;"
        )
        return None if found is None else str(found)

    # -- actions ----------------------------------------------------------------------------

    def open(self) -> None:
        self.driver.get(self.base_url + "/")
        self.js("localStorage.clear()")
        self.driver.get(self.base_url + "/")
        self.wait(lambda: self.js("return document.body.dataset.ready === 'true'"), "page ready")
        self.wait(
            lambda: (
                self.js("return document.querySelector('#events-conn').dataset.state")
                == "connected"
            ),
            "socket.io connected",
        )

    def open_fresh(self, fragment: str = "") -> None:
        """A fresh load of the page (no program, files or token kept from before) at
        `/` + fragment; waits until the page is ready, not for Socket.IO (which a server
        with identity on refuses without a token)."""
        self.driver.get(self.base_url + "/")
        self.js("localStorage.clear(); sessionStorage.clear()")
        self.driver.get("about:blank")  # so a fragment is a new load, not a jump
        self.driver.get(self.base_url + "/" + fragment)
        self.wait(lambda: self.js("return document.body.dataset.ready === 'true'"), "page ready")

    def type_program(self, code: str) -> None:
        """Click the editor and type the program as a person would. The editor indents
        after a colon by itself, so each line is typed without its leading spaces; the
        programs here never dedent. The editor's content must then be exactly `code`."""
        from selenium.webdriver.common.keys import Keys

        self.el("editor").click()
        box = self.driver.switch_to.active_element
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        lines = code.split("\n")
        for i, line in enumerate(lines):
            if line.strip():
                box.send_keys(line.lstrip())
            if i < len(lines) - 1:
                box.send_keys(Keys.ENTER)
        assert self.code == code

    def keys(self, *keys: str) -> None:
        """Send keys to whatever has the focus."""
        self.driver.switch_to.active_element.send_keys(*keys)

    def chord(self, modifier: str, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).key_down(modifier).send_keys(key).key_up(modifier).perform()

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except Exception as exc:  # a stale element between renders, say
                last_exc = exc
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}; status={self._safe('status')!r}, "
            f"events status={self._safe('events_status')!r}, "
            f"terminal={self._safe('terminal_text')!r}, last error={last_exc!r}"
        )

    def _safe(self, name: str) -> str:
        try:
            return str(getattr(self, name))
        except Exception as exc:
            return f"<{exc.__class__.__name__}>"

    def wait_status(self, pattern: str, timeout: float = 20) -> str:
        rx = re.compile(pattern, re.IGNORECASE)
        return str(self.wait(lambda: rx.search(self.status) and self.status, pattern, timeout))

    def wait_terminal(self, text: str, timeout: float = 20) -> str:
        return str(
            self.wait(
                lambda: text in self.terminal_text and self.terminal_text, repr(text), timeout
            )
        )

    def browser_errors(self) -> list[str]:
        try:
            logs = self.driver.get_log("browser")
        except Exception:
            return []
        return [e["message"] for e in logs if e.get("level") == "SEVERE"]


def _screenshot(driver: Any, request: pytest.FixtureRequest) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        driver.save_screenshot(str(ARTIFACTS / f"browser-{name}.png"))
    except Exception:
        pass


@contextlib.contextmanager
def opened_page(driver: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The page of the server at base_url, open; a screenshot of it at the end."""
    driver.set_window_size(*WINDOW)
    p = Page(driver, base_url)
    p.open()
    try:
        yield p
    finally:
        _screenshot(driver, request)


@pytest.fixture
def page(driver: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    with opened_page(driver, server, request) as p:
        yield p


@pytest.fixture
def identity_page(
    driver: Any, identity_server: str, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """The page on the identity_server, not yet opened: the test opens it (with or
    without a `#token=`, see Page.open_fresh)."""
    driver.set_window_size(*WINDOW)
    p = Page(driver, identity_server)
    try:
        yield p
    finally:
        _screenshot(driver, request)
