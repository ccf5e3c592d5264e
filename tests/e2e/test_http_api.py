"""Every error row of the HTTP contract: its status, its code, one JSON shape."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import Harness, running_app

pytestmark = pytest.mark.gen_test(timeout=60)


def assert_error(resp, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status == status, resp
    assert set(resp.body) >= {"error", "code"}, resp.body
    assert resp.body["code"] == code, resp.body
    assert isinstance(resp.body["error"], str) and resp.body["error"]
    assert resp.headers["Content-Type"].startswith("application/json")


async def post(h: Harness, body: object = None, **kw):  # type: ignore[no-untyped-def]
    return await h.request("POST", "/api/execute", body, **kw)


async def test_bad_requests() -> None:
    async with running_app(runtime="local", max_code_bytes=1000) as h:
        assert_error(await post(h, raw=b"{not json"), 400, "malformed_json")
        assert_error(await post(h, raw=b"[1, 2]"), 400, "bad_request")
        missing = await post(h, {"language": "python"})
        assert_error(missing, 400, "invalid_field")
        assert "code" in missing.body["error"] and missing.body["field"] == "code"
        wrong = await post(h, {"code": "print(1)", "language": 3})
        assert_error(wrong, 400, "invalid_field")
        assert "language" in wrong.body["error"]
        assert_error(await post(h, {"code": "x", "stdin": 5}), 400, "invalid_field")
        assert_error(await post(h, {"code": "x" * 1001}), 413, "payload_too_large")
        assert_error(await post(h, {"code": "x" * 100_000}), 413, "payload_too_large")
        assert_error(
            await post(h, raw=b'{"code": "1"}', headers={"Content-Type": "text/plain"}),
            415,
            "unsupported_media_type",
        )
        lang = await post(h, {"code": "print(1)", "language": "cobol"})
        assert_error(lang, 422, "unsupported_language")
        assert "python" in lang.body["error"]
        assert_error(await h.request("GET", "/api/sessions/nope"), 404, "session_not_found")
        assert_error(await h.request("DELETE", "/api/sessions/nope"), 404, "session_not_found")
        assert_error(await h.request("GET", "/no/such/page"), 404, "not_found")
        assert_error(
            await h.request("PUT", "/api/execute", {"code": "1"}), 405, "method_not_allowed"
        )


async def test_health_and_ready() -> None:
    async with running_app(runtime="local") as h:
        assert (await h.request("GET", "/healthz")).status == 200
        ready = await h.request("GET", "/readyz")
        assert ready.status == 200 and ready.body["ready"] is True


async def test_no_engine_gives_503_with_reason() -> None:
    async with running_app(docker_url="unix:///nonexistent/docker.sock") as h:
        ready = await h.request("GET", "/readyz")
        assert ready.status == 503 and "Docker engine" in ready.body["reason"]
        resp = await post(h, {"code": "print(1)"})
        assert_error(resp, 503, "runtime_unavailable")
        assert "Retry-After" in resp.headers
        assert (await h.request("GET", "/healthz")).status == 200


async def test_capacity_gives_503_with_retry_after_once_the_queue_is_full() -> None:
    async with running_app(runtime="local", max_sessions=1, queue_max=1) as h:
        first = await h.execute("import time\ntime.sleep(30)\n")
        queued = await post(h, {"code": "print(1)"})
        assert queued.status == 201  # it waits its turn
        resp = await post(h, {"code": "print(1)"})
        assert_error(resp, 503, "no_capacity")
        assert int(resp.headers["Retry-After"]) > 0
        await h.request("DELETE", f"/api/sessions/{first}")
        await h.wait_finished(first)
        done = await h.wait_finished(queued.body["sessionId"])
        assert done["result"]["status"] == "ok"
        assert (await post(h, {"code": "print(1)"})).status == 201


async def test_foreign_origin_refused() -> None:
    async with running_app(runtime="local") as h:
        resp = await post(h, {"code": "print(1)"}, headers={"Origin": "https://evil.example"})
        assert_error(resp, 403, "origin_not_allowed")
        ok = await post(h, {"code": "print(1)"}, headers={"Origin": "http://localhost:3000"})
        assert ok.status == 201
        assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


async def test_socketio_errors_are_error_events() -> None:
    async with running_app(runtime="local") as h, h.client() as sio:
        errors: list[dict[str, object]] = []
        sio.on("error", lambda data: errors.append(data))
        ack = await sio.call("join", {"sessionId": "does-not-exist"})
        assert ack["code"] == "session_not_found"
        assert (await sio.call("join", {"sessionId": 12}))["code"] == "invalid_field"
        assert (await sio.call("input", {"input": 5}))["code"] == "invalid_field"
        assert (await sio.call("input", {"input": "x"}))["code"] == "invalid_field"  # no session
        assert (await sio.call("execute", {"code": "1", "language": "ruby"}))["code"] == (
            "unsupported_language"
        )
        await asyncio.sleep(0.1)
        assert [e["code"] for e in errors] == [
            "session_not_found",
            "invalid_field",
            "invalid_field",
            "invalid_field",
            "unsupported_language",
        ]
        # The connection survives its own mistakes.
        t = await h.run("print('still fine')")
        assert t.complete["status"] == "ok"


async def test_socketio_checks_the_browser_origin_on_both_transports() -> None:
    import socketio

    handshake = "/socket.io/?EIO=4&transport=polling"
    async with running_app(runtime="local") as h:
        ok = await h.request("GET", handshake, headers={"Origin": "http://localhost:5173"})
        assert ok.status == 200
        assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        evil = await h.request("GET", handshake, headers={"Origin": "https://evil.example"})
        assert evil.status == 400
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            h.base_url, headers={"Origin": "http://localhost:5173"}, transports=["websocket"]
        )
        assert client.connected
        await client.disconnect()
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                h.base_url, headers={"Origin": "https://evil.example"}, transports=["websocket"]
            )


async def test_terminal_websocket_refuses_a_foreign_origin() -> None:
    import tornado.httpclient
    import tornado.websocket

    async with running_app(runtime="local") as h:
        session_id = await h.execute("print(1)")
        url = h.base_url.replace("http", "ws", 1) + f"/ws/terminal/{session_id}"
        request = tornado.httpclient.HTTPRequest(url, headers={"Origin": "https://evil.example"})
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await tornado.websocket.websocket_connect(request)
        assert refused.value.code == 403


async def test_oversized_bodies_get_the_json_413_however_they_are_sent() -> None:
    async with running_app(runtime="local", max_code_bytes=1000, max_stdin_bytes=1000) as h:
        big = b'{"code": "' + b"x" * 200_000 + b'"}'

        async def chunks(write):  # type: ignore[no-untyped-def]
            for at in range(0, len(big), 8192):
                await write(big[at : at + 8192])

        import tornado.httpclient

        request = tornado.httpclient.HTTPRequest(
            h.base_url + "/api/execute",
            method="POST",
            body_producer=chunks,
            headers={"Content-Type": "application/json"},
            request_timeout=30,
        )
        resp = await h.http.fetch(request, raise_error=False)
        assert resp.code == 413, resp
        assert resp.headers["Content-Type"].startswith("application/json")
        assert_error(await post(h, raw=b"x" * 5_000_000), 413, "payload_too_large")
        # A body where none is expected is read and dropped (memory stays bounded).
        other = await h.request("DELETE", "/api/sessions/abc", raw=b"x" * 5_000_000)
        assert_error(other, 404, "session_not_found")


async def test_rate_limit_on_execute_gives_429_with_headers() -> None:
    async with running_app(runtime="local", rate_limit_execute="3/minute") as h:
        for _ in range(3):
            ok = await post(h, {"code": "print(1)"})
            assert ok.status == 201
        assert ok.headers["RateLimit-Limit"] == "3" and ok.headers["RateLimit-Remaining"] == "0"
        refused = await post(h, {"code": "print(1)"})
        assert_error(refused, 429, "rate_limited")
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Remaining"] == "0"
        # The same budget covers the Socket.IO `execute` event from this address.
        async with h.client() as sio:
            ack = await sio.call("execute", {"code": "print(1)"})
        assert ack["code"] == "rate_limited"


async def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    async with running_app(
        runtime="local", rate_limit_execute="1/minute", trusted_proxies=("127.0.0.1",)
    ) as h:
        # Behind the trusted proxy, each forwarded client has its own budget...
        for client in ("203.0.113.1", "203.0.113.2"):
            hdrs = {"X-Forwarded-For": f"198.51.100.7, {client}"}
            assert (await post(h, {"code": "1"}, headers=hdrs)).status == 201
        again = await post(h, {"code": "1"}, headers={"X-Forwarded-For": "203.0.113.1"})
        assert_error(again, 429, "rate_limited")
    async with running_app(runtime="local", rate_limit_execute="1/minute") as h:
        # ...but an untrusted peer cannot pick its address by sending the header.
        assert (await post(h, {"code": "1"}, headers={"X-Forwarded-For": "1.1.1.1"})).status == 201
        spoofed = await post(h, {"code": "1"}, headers={"X-Forwarded-For": "2.2.2.2"})
        assert_error(spoofed, 429, "rate_limited")


async def test_join_rate_limit_and_per_address_cap() -> None:
    async with running_app(runtime="local", rate_limit_join="2/minute", max_sessions_per_ip=1) as h:
        first = await h.execute("import time\ntime.sleep(30)\n")
        second = await post(h, {"code": "print(2)"})
        assert_error(second, 429, "rate_limited")
        assert "1 programs" in second.body["error"] or "At most 1" in second.body["error"]
        async with h.client() as sio:
            assert (await sio.call("join", {"sessionId": first}))["sessionId"] == first
            assert (await sio.call("join", {"sessionId": first}))["sessionId"] == first
            assert (await sio.call("join", {"sessionId": first}))["code"] == "rate_limited"
        await h.request("DELETE", f"/api/sessions/{first}")
        await h.wait_finished(first)
