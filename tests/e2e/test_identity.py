"""Identity on, end to end: learners with real PyJWT tokens, an API key, a teacher who
observes, over REST, Socket.IO and both terminal WebSockets, in real sandboxes."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import socketio

from tests.harness import Harness, running_app

pytestmark = [pytest.mark.docker, pytest.mark.gen_test(timeout=120)]

SECRET = "a-long-enough-secret-for-hs256-tokens!!"
KEY = "server-to-server-key-1"
QUESTION = "name = input('Who? ')\nprint('Hello', name)\n"


def token(sub: str, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600, **claims}, SECRET, "HS256")


def auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def app(**overrides: Any) -> Any:
    return running_app(token_secret=SECRET, api_keys=(KEY,), **overrides)


async def start(h: Harness, credential: str, code: str = QUESTION) -> str:
    resp = await h.request("POST", "/api/execute", {"code": code}, headers=auth(credential))
    assert resp.status == 201, resp
    return str(resp.body["sessionId"])


async def refused_connect(h: Harness, **kwargs: Any) -> Any:
    sio = socketio.AsyncClient(reconnection=False)
    got: list[Any] = []
    sio.on("connect_error", lambda data: got.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(h.base_url, wait_timeout=10, **kwargs)
    return got[0] if got else None


async def test_no_or_a_bad_credential_is_401_everywhere_and_never_echoed() -> None:
    async with app() as h:
        resp = await h.request("POST", "/api/execute", {"code": "print(1)"})
        assert resp.status == 401 and resp.body["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        expired = jwt.encode({"sub": "ada", "exp": 1}, SECRET, "HS256")
        resp = await h.request("POST", "/api/execute", {"code": "1"}, headers=auth(expired))
        assert resp.status == 401 and "expired" in resp.body["error"]
        assert expired not in resp.body["error"]
        assert (await h.request("GET", "/api/sessions/nobody")).status == 401
        assert (await h.request("GET", "/healthz")).status == 200  # probes stay open
        data = await refused_connect(h)
        required = "A credential is required: an API key or a learner token."
        assert data == {"message": required, "data": {"error": required, "code": "unauthorized"}}
        bad = await refused_connect(h, auth={"token": "nonsense"})
        assert bad["data"]["code"] == "unauthorized"
        sid = await start(h, token("ada"))
        raw = await h.terminal(sid, raw=True)
        await raw.read_until(lambda c: c.closed)
        assert raw.conn.close_code == 4401
        term = await h.terminal(sid)
        await term.send("auth", "wrong")
        await term.read_until(lambda c: c.closed)
        assert term.conn.close_code == 4401 and term.named("error")[0]["code"] == "unauthorized"


async def test_a_learner_drives_their_own_session_everywhere_and_an_api_key_works() -> None:
    async with app() as h:
        ada = token("ada")
        async with h.client(auth={"token": ada}) as sio:
            sid = await start(h, ada)
            t = await h.follow(sid, ["Ada"], sio=sio)
        assert t.output == "Who? Hello Ada\r\n" and t.complete["status"] == "ok"
        described = await h.request("GET", f"/api/sessions/{sid}", headers=auth(ada))
        assert described.status == 200
        sid = await start(h, ada)
        term = await h.terminal(sid)
        await term.send("auth", ada)
        await term.read_until(lambda c: "Who? " in c.screen_text)
        await term.send("stdin", "Ann\r")
        await term.read_to_end()
        assert "Hello Ann" in term.screen_text
        sid = await start(h, ada)
        raw = await h.terminal(sid, raw=True, subprotocols=["bearer", ada])
        assert raw.conn.selected_subprotocol == "bearer"
        await raw.read_until(lambda c: "Who? " in c.screen_text)
        await raw.send("Raw\r")
        await raw.read_until(lambda c: "Hello Raw" in c.screen_text)
        keyed = await h.request(
            "POST", "/api/execute?wait=true", {"code": "print(6 * 7)"}, headers=auth(KEY)
        )
        assert keyed.status == 200 and keyed.body["output"] == "42\r\n"


async def test_a_learner_cannot_touch_anothers_session_on_any_transport() -> None:
    async with app() as h:
        ada, bob = token("ada"), token("bob")
        sid = await start(h, ada)
        for method in ("GET", "DELETE"):
            resp = await h.request(method, f"/api/sessions/{sid}", headers=auth(bob))
            assert resp.status == 403 and resp.body["code"] == "forbidden", resp
        for path in (f"/api/sessions/{sid}/displays/1", f"/api/sessions/{sid}/files/x"):
            assert (await h.request("GET", path, headers=auth(bob))).status == 403
        async with h.client(auth={"token": bob}) as sio:
            for event, data in (
                ("join", {"sessionId": sid}),
                ("input", {"sessionId": sid, "input": "Mallory"}),
                ("resize", {"sessionId": sid, "rows": 30, "cols": 90}),
                ("interrupt", {"sessionId": sid}),
                ("eof", {"sessionId": sid}),
            ):
                reply = await sio.call(event, data)
                assert reply["code"] == "forbidden", (event, reply)
        term = await h.terminal(sid)
        await term.send("auth", bob)
        await term.read_until(lambda c: c.closed)
        assert term.conn.close_code == 4403
        raw = await h.terminal(sid, raw=True, subprotocols=["bearer", bob])
        await raw.read_until(lambda c: c.closed)
        assert raw.conn.close_code == 4403 and raw.screen_text == ""
        # Ada's program never saw any of it.
        async with h.client(auth={"token": ada}) as sio:
            t = await h.follow(sid, ["Ada"], sio=sio)
        assert t.output == "Who? Hello Ada\r\n" and t.complete["status"] == "ok"


async def test_an_observer_watches_but_cannot_type() -> None:
    async with app() as h:
        ada = token("ada")
        sid = await start(h, ada)
        teacher = token("teacher", observe=[sid])
        async with h.client(auth={"token": teacher}) as sio:
            joined = await sio.call("join", {"sessionId": sid})
            assert joined["sessionId"] == sid
            typed = await sio.call("input", {"sessionId": sid, "input": "Teacher"})
            assert typed["code"] == "forbidden"
        term = await h.terminal(sid)
        await term.send("auth", teacher)
        await term.read_until(lambda c: "Who? " in c.screen_text)
        await term.send("stdin", "Teacher\r")
        await term.read_until(lambda c: c.named("error"))
        assert term.named("error")[0]["code"] == "forbidden"
        assert (await h.request("GET", f"/api/sessions/{sid}", headers=auth(teacher))).status == 200
        resp = await h.request("DELETE", f"/api/sessions/{sid}", headers=auth(teacher))
        assert resp.status == 403
        async with h.client(auth={"token": ada}) as sio:
            t = await h.follow(sid, ["Ada"], sio=sio)
        assert t.output == "Who? Hello Ada\r\n"


async def test_two_learners_behind_one_address_have_their_own_budgets() -> None:
    async with app(rate_limit_execute="2/minute", max_sessions_per_ip=64) as h:
        ada, bob = token("ada"), token("bob")
        statuses = []
        for who in (ada, ada, ada, bob, bob):
            resp = await h.request("POST", "/api/execute", {"code": "("}, headers=auth(who))
            statuses.append(resp.status)
        assert statuses == [201, 201, 429, 201, 201]


async def test_limit_claims_lower_the_limits_and_never_raise_them() -> None:
    async with app(time_limit=5) as h:
        quick = token("ada", codex={"timeLimit": 1, "executionsPerMinute": 2})
        body = {"code": "while True: pass\n"}
        resp = await h.request("POST", "/api/execute?wait=true", body, headers=auth(quick))
        assert (
            resp.body["result"]["status"] == "timeout" and resp.body["result"]["durationMs"] < 3000
        )
        third = [
            (await h.request("POST", "/api/execute", {"code": "("}, headers=auth(quick))).status
            for _ in range(2)
        ]
        assert third == [201, 429]  # the claim's 2 a minute, counted with the first
        greedy = token("bob", codex={"timeLimit": 600})
        resp = await h.request("POST", "/api/execute?wait=true", body, headers=auth(greedy))
        assert resp.body["result"]["status"] == "timeout"
        assert 4500 <= resp.body["result"]["durationMs"] < 9000  # the server's 5 s


async def test_metrics_behind_its_own_token_and_failures_rate_limited() -> None:
    async with running_app(
        metrics_token="scrape-me", token_secret=SECRET, rate_limit_auth_failures="3/minute"
    ) as h:
        assert (await h.request("GET", "/metrics")).status == 401
        ok = await h.request("GET", "/metrics", headers=auth("scrape-me"))
        assert ok.status == 200
        statuses = [
            (await h.request("POST", "/api/execute", {"code": "1"}, headers=auth("guess"))).status
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]


async def test_identity_off_a_terminal_auth_message_is_ignored() -> None:
    async with running_app() as h:
        sid = await h.execute(QUESTION)
        term = await h.terminal(sid)
        await term.send("auth", "a-token-kept-from-elsewhere")
        await term.read_until(lambda c: "Who? " in c.screen_text)
        await term.send("stdin", "Ada\r")
        await term.read_to_end()
    assert "Hello Ada" in term.screen_text and term.named("error") == []
