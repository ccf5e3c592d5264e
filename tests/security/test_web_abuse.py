"""Web abuse: oversized bodies and messages, wrong types in every field of every event,
foreign origins, a request storm over the rate limit, guessing session ids.

Every answer must be the one JSON error shape (``{"error": <sentence>, "code": <code>}``),
never ``internal_error``; the server must stay healthy and the next execution work.
Rate-limit settings (``rate_limit_execute``, ``rate_limit_join``) are new: without
them the storm tests skip."""

from __future__ import annotations

import asyncio
import math
import secrets
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from codex.config import Settings
from tests.harness import Harness, running_app
from tests.security.runner import (
    SETTING_NAMES,
    assert_contained,
    no_rate_limits,
    server_settings,
)

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]

EVIL_ORIGINS = [
    "https://evil.example",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example",
    "http://localhost@evil.example",
    "null",
    "file://",
    "chrome-extension://abcdefghijklmnop",
]

BAD_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    True,
    "",
    "x" * 70,
    [],
    {},
    [1, 2],
    {"a": 1},
    10**30,
    -(10**30),
    math.inf,
    "\x00",
    "\u202e",
    "\ud800",
    "a\udfffb",
    "../../etc/passwd",
]

# Each event's fields, with a valid value (a fresh session id is put in at run time).
EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "join": {"sessionId": "SID"},
    "leave": {"sessionId": "SID"},
    "execute": {"code": "print(1)", "language": "python", "stdin": ""},
    "input": {"input": "x", "sessionId": "SID"},
    "resize": {"rows": 24, "cols": 80, "sessionId": "SID"},
    "interrupt": {"sessionId": "SID"},
    "eof": {"sessionId": "SID"},
}


def needs(*names: str) -> None:
    missing = [n for n in names if n not in SETTING_NAMES]
    if missing:
        pytest.skip(f"waiting for setting {', '.join(missing)}")


def assert_error_shape(body: Any, *codes: str) -> None:
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert body["code"] != "internal_error", body
    if codes:
        assert body["code"] in codes, body


async def assert_healthy(h: Harness) -> None:
    health = await h.request("GET", "/healthz")
    assert health.status == 200, health
    t = await h.run('print("ok")', timeout=30)
    assert t.complete["status"] == "ok" and t.output == "ok\r\n", t.events


STUBBORN = (
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "while True:\n    try:\n        input('? ')\n    except EOFError:\n        pass\n"
)


async def waiting_session(h: Harness) -> str:
    """A session that keeps reading input, whatever it gets (Ctrl-C and Ctrl-D
    included), until it is deleted; returned once it waits."""
    session_id = await h.execute(STUBBORN)
    for _ in range(200):
        state = (await h.request("GET", f"/api/sessions/{session_id}")).body
        if state["waitingForInput"]:
            return session_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"the session never waited for input: {state}")


# -- oversized ------------------------------------------------------------------------


async def test_oversized_http_bodies() -> None:
    async with running_app(**server_settings()) as h:
        s = Settings()
        resp = await h.request("POST", "/api/execute", {"code": "#" * (s.max_code_bytes + 1)})
        assert resp.status == 413, resp
        assert_error_shape(resp.body, "payload_too_large")
        assert resp.body.get("field") == "code", resp.body
        resp = await h.request(
            "POST", "/api/execute", {"code": "pass", "stdin": "y" * (s.max_stdin_bytes + 1)}
        )
        assert resp.status == 413 and resp.body.get("field") == "stdin", resp
        for size in (300 * 1024, 5 * 1024 * 1024):  # past the limit; past Tornado's own cap
            body = b'{"code": "' + b"#" * size + b'"}'
            resp = await h.request("POST", "/api/execute", raw=body)
            assert resp.status == 413, (size, resp.status, str(resp.body)[:200])
            assert_error_shape(resp.body, "payload_too_large")
        # A megabyte at routes that take no body.
        for method, path in (
            ("POST", "/healthz"),
            ("DELETE", "/api/sessions/abc"),
            ("PUT", "/api/execute"),
        ):
            resp = await h.request(method, path, raw=b"x" * (1024 * 1024))
            assert 400 <= resp.status < 500, (method, path, resp.status)
            assert_error_shape(resp.body)
        # Headers a client should never send.
        resp = await h.request(
            "POST", "/api/execute", {"code": "pass"}, headers={"X-Junk": "j" * 60000}
        )
        assert 400 <= resp.status < 500 or resp.status in (201, 599), resp.status
        await assert_healthy(h)


async def test_oversized_socketio_and_websocket_messages() -> None:
    async with running_app(**server_settings()) as h:
        s = Settings()
        sid = await waiting_session(h)
        # Over max_input_bytes: a clean refusal.
        async with h.client() as sio:
            ack = await sio.call(
                "input", {"input": "z" * (s.max_input_bytes + 1), "sessionId": sid}, timeout=10
            )
            assert_error_shape(ack, "payload_too_large")
            assert sio.connected
        # Over Engine.IO's maxPayload: the connection is closed, nothing else happens.
        async with h.client() as sio:
            closed = asyncio.Event()
            sio.on("disconnect", lambda *a: closed.set())
            over = s.max_code_bytes + s.max_stdin_bytes + 32 * 1024
            await sio.emit("execute", {"code": "#" * over})
            try:
                await asyncio.wait_for(closed.wait(), 10)
            except TimeoutError:
                pytest.fail("an oversized Engine.IO message did not close the connection")
        # Over the WebSocket frame cap of the terminal endpoints: closed with 1009.
        for raw in (False, True):
            term = await h.terminal(sid, raw=raw)
            await term.send(*(["x" * 70000] if raw else ["stdin", "x" * 70000]))
            await term.read_until(lambda c: c.closed, timeout=10)
            assert term.conn.close_code == 1009, (raw, term.conn.close_code)
        await h.request("DELETE", f"/api/sessions/{sid}")
        await assert_contained(h, sid)


# -- wrong types ----------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def test_wrong_types_in_every_field_of_every_event() -> None:
    """Every transport, every field: all refusals are collected, then reported at once."""
    failures: list[str] = []
    async with running_app(**server_settings(pool_size=2, **no_rate_limits())) as h:
        sid = await waiting_session(h)
        started: list[str] = []
        async with h.client() as sio:
            for event, fields in EVENT_FIELDS.items():
                base = {k: (sid if v == "SID" else v) for k, v in fields.items()}
                payloads: list[tuple[str, Any]] = [("payload", bad) for bad in BAD_VALUES]
                for name in fields:
                    payloads += [(name, {**base, name: bad}) for bad in BAD_VALUES]
                    payloads.append(
                        (name + " missing", {k: v for k, v in base.items() if k != name})
                    )
                for label, payload in payloads:
                    value = payload.get(label) if isinstance(payload, dict) else payload
                    what = f"socket.io {event} {label}={_show(value)}"
                    try:
                        ack = await sio.call(event, payload, timeout=10)
                    except Exception as exc:  # no acknowledgement at all
                        failures.append(f"{what}: no acknowledgement ({exc!r})")
                        continue
                    if isinstance(ack, dict) and "error" not in ack and "sessionId" in ack:
                        if event == "execute":
                            started.append(ack["sessionId"])
                        continue  # a value that happens to be valid
                    try:
                        assert_error_shape(ack)
                    except AssertionError:
                        failures.append(f"{what}: {_show(ack)}")
            assert sio.connected
            ack = await sio.call("join", {"sessionId": sid}, timeout=10)
            assert ack.get("sessionId") == sid, ack
        # The terminado protocol, message by message, on a session still running.
        state = (await h.request("GET", f"/api/sessions/{sid}")).body
        assert state["state"] == "running", "the stubborn program ended"
        term = await h.terminal(sid)
        bad_messages = [
            "not json",
            "{}",
            "[]",
            "null",
            "42",
            '"stdin"',
            '["stdin"]',
            '["stdin", 1]',
            '["stdin", {"a": 1}]',
            '["stdin", null]',
            '["set_size"]',
            '["set_size", "a", "b"]',
            '["set_size", 0, 0]',
            '["set_size", 1e30, 5]',
            '["set_size", 1.5, 2]',
            '["set_size", -1, -1]',
            '["unknown"]',
            "[null]",
            "[1, 2]",
            '["set_size", 24, 80, "x", {}]',
            '["stdin", "\\ud800"]',
        ]
        for message in bad_messages:
            await term.conn.write_message(message)
        # All but the last two are invalid (extra set_size arguments are allowed; a lone
        # surrogate may be typed as U+FFFD or refused).
        try:
            await term.read_until(lambda c: len(c.named("error")) >= len(bad_messages) - 2, 15)
            await term.send("stdin", "still-open\r")
            await term.read_until(lambda c: "still-open" in c.screen_text, 10)
        except AssertionError as exc:
            failures.append(f"terminado: {str(exc)[:300]}")
        for err in term.named("error"):
            try:
                assert_error_shape(err)
            except AssertionError:
                failures.append(f"terminado error: {_show(err)}")
        term.close()
        for body in (
            {"code": 1},
            {"code": None},
            {"code": ["print(1)"]},
            {"code": "pass", "language": 3},
            {"code": "pass", "stdin": 5},
            {"code": "pass", "stdin": ["a"]},
            {"code": {"a": 1}},
        ):
            resp = await h.request("POST", "/api/execute", body)
            if resp.status != 400 or resp.body.get("code") != "invalid_field":
                failures.append(f"HTTP {_show(body)}: {resp.status} {_show(resp.body)}")
        for raw in (
            b"",
            b"{",
            b"[]",
            b'"code"',
            b"\xff\xfe",
            b"null",
            b'{"code": "\\ud800"}',
            b'{"code": "pass", "stdin": "\\udfff"}',
            b'{"code": "pass", "language": "\\ud800"}',
            b'{"code": "pass", "code": 1}',
            b'{"code": "pass"} trailing',
            b'{"code": "' + b"[" * 100000 + b'"}',
            b"[" * 100000,
        ):
            resp = await h.request("POST", "/api/execute", raw=raw)
            if resp.status == 201:
                started.append(resp.body["sessionId"])
                continue
            try:
                assert 400 <= resp.status < 500, resp.status
                assert_error_shape(resp.body)
            except AssertionError:
                failures.append(f"HTTP raw {_show(raw)}: {resp.status} {_show(resp.body)}")
        await h.request("DELETE", f"/api/sessions/{sid}")
        await assert_contained(h, sid)
        for other in started:
            await h.wait_finished(other)
            await assert_contained(h, other)
    assert not failures, f"{len(failures)} refusals not in the error shape:\n" + "\n".join(failures)


async def test_extra_arguments_get_an_error_acknowledgement() -> None:
    """Several arguments where one payload is expected: an acknowledgement in the error
    shape, like any other malformed payload (not a handler crash and no answer)."""
    async with running_app(**server_settings()) as h:
        sid = await waiting_session(h)
        async with h.client() as sio:
            await sio.call("join", {"sessionId": sid}, timeout=10)
            unanswered = []
            for event in EVENT_FIELDS:
                try:
                    ack = await sio.call(event, ({"sessionId": sid}, "b", 3), timeout=3)
                except Exception as exc:
                    unanswered.append(f"{event}: {exc!r}")
                    continue
                assert_error_shape(ack)
            assert sio.connected
            ack = await sio.call("join", {"sessionId": sid}, timeout=10)
            assert ack.get("sessionId") == sid, ack
        await h.request("DELETE", f"/api/sessions/{sid}")
        await assert_contained(h, sid)
        assert not unanswered, f"no acknowledgement for: {unanswered}"


# -- origins --------------------------------------------------------------------------


async def test_foreign_origins_are_refused_on_every_transport() -> None:
    async with running_app(**server_settings()) as h:
        sid = await waiting_session(h)
        ws_base = h.base_url.replace("http", "ws", 1)
        for origin in EVIL_ORIGINS:
            hdr = {"Origin": origin}
            for method, path, body in (
                ("POST", "/api/execute", {"code": "print(1)"}),
                ("GET", f"/api/sessions/{sid}", None),
                ("DELETE", f"/api/sessions/{sid}", None),
                ("OPTIONS", "/api/execute", None),
                ("GET", "/readyz", None),
            ):
                resp = await h.request(method, path, body, headers=hdr)
                assert resp.status == 403, (origin, method, path, resp)
                assert_error_shape(resp.body, "origin_not_allowed")
                assert "Access-Control-Allow-Origin" not in resp.headers, resp.headers
            resp = await h.request("GET", "/socket.io/?EIO=4&transport=polling", headers=hdr)
            assert resp.status in (400, 403), (origin, "polling", resp.status)
            for path in (
                "/socket.io/?EIO=4&transport=websocket",
                f"/ws/terminal/{sid}",
                f"/ws/terminal/{sid}/raw",
            ):
                request = tornado.httpclient.HTTPRequest(ws_base + path, headers=hdr)
                with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
                    conn = await tornado.websocket.websocket_connect(request)
                    conn.close()
                assert refused.value.code == 403, (origin, path, refused.value.code)
        state = await h.request("GET", f"/api/sessions/{sid}")
        assert state.body["state"] != "finished", "a refused DELETE stopped the program"
        await h.request("DELETE", f"/api/sessions/{sid}")
        await assert_contained(h, sid)


# -- request storms -------------------------------------------------------------------


async def test_execute_storm_over_the_rate_limit() -> None:
    needs("rate_limit_execute")
    async with running_app(**server_settings(rate_limit_execute="5/second")) as h:
        answers = await asyncio.gather(
            *(h.request("POST", "/api/execute", {"code": "pass"}) for _ in range(25))
        )
        statuses = sorted(a.status for a in answers)
        assert set(statuses) <= {201, 429}, statuses
        accepted = [a.body["sessionId"] for a in answers if a.status == 201]
        assert 1 <= len(accepted) <= 5, statuses
        limited = [a for a in answers if a.status == 429]
        assert limited, statuses
        retry = 1
        for a in limited:
            assert_error_shape(a.body, "rate_limited")
            headers = {k.lower(): v for k, v in a.headers.items()}
            assert headers.get("retry-after", "").isdigit(), a.headers
            retry = max(retry, int(headers["retry-after"]))
            assert any(k.startswith("ratelimit") for k in headers), a.headers
        # A forged X-Forwarded-For (no trusted proxy configured) is not a new client.
        spoofed = await h.request(
            "POST",
            "/api/execute",
            {"code": "pass"},
            headers={"X-Forwarded-For": "198.51.100.77"},
        )
        assert spoofed.status == 429, spoofed
        # The Socket.IO `execute` shares the budget and answers in the error shape.
        async with h.client() as sio:
            acks = [await sio.call("execute", {"code": "pass"}, timeout=10) for _ in range(8)]
        refused = [a for a in acks if isinstance(a, dict) and a.get("code") == "rate_limited"]
        assert refused, acks
        for a in acks:
            if "error" in a:
                assert_error_shape(a, "rate_limited")
            else:
                accepted.append(a["sessionId"])
        await asyncio.sleep(retry + 0.2)
        for session_id in accepted:
            await h.wait_finished(session_id)
            await assert_contained(h, session_id)  # its follow-up run: the limit has passed


async def test_join_storm_over_the_rate_limit() -> None:
    needs("rate_limit_join")
    async with running_app(**server_settings(rate_limit_join="10/second")) as h:
        sid = await waiting_session(h)
        async with h.client() as sio:
            acks = await asyncio.gather(
                *(sio.call("join", {"sessionId": sid}, timeout=10) for _ in range(40))
            )
            assert sio.connected
        limited = [a for a in acks if a.get("code") == "rate_limited"]
        assert limited, acks
        for a in acks:
            if "error" in a:
                assert_error_shape(a, "rate_limited")
        await asyncio.sleep(1.2)
        await h.request("DELETE", f"/api/sessions/{sid}")
        await assert_contained(h, sid)


# -- guessing ids ---------------------------------------------------------------------


async def test_joining_random_session_ids_finds_nothing() -> None:
    async with running_app(**server_settings()) as h:
        real = await waiting_session(h)
        guesses = [secrets.token_urlsafe(24) for _ in range(30)]
        guesses += [
            real[:-1],
            real[:-1] + ("A" if real[-1] != "A" else "B"),
            real.lower(),
            real + "x",
            "",
            " " + real,
        ]
        async with h.client() as sio:
            for guess in guesses:
                ack = await sio.call("join", {"sessionId": guess}, timeout=10)
                assert_error_shape(ack, "session_not_found", "rate_limited")
                ack = await sio.call("input", {"input": "pwn", "sessionId": guess}, timeout=10)
                assert_error_shape(ack, "session_not_found", "rate_limited")
        for guess in guesses[:10]:
            for method in ("GET", "DELETE"):
                resp = await h.request(method, f"/api/sessions/{guess}")
                assert resp.status == 404, (method, guess, resp)
                assert_error_shape(resp.body, "session_not_found")
            term = await h.terminal(guess)
            await term.read_until(lambda c: c.closed, timeout=10)
            assert term.conn.close_code in (4404, 4429), term.conn.close_code
        for path in (
            "/api/sessions/" + "a" * 65,
            "/api/sessions/..%2f..%2fetc",
            "/api/sessions/%00",
            "/api/sessions/a;b",
        ):
            resp = await h.request("GET", path)
            assert resp.status == 404, (path, resp)
            assert_error_shape(resp.body, "not_found", "session_not_found")
        state = await h.request("GET", f"/api/sessions/{real}")
        assert state.body["state"] == "running" and state.body["outputBytes"] == len("? "), state
        await h.request("DELETE", f"/api/sessions/{real}")
        await assert_contained(h, real)
