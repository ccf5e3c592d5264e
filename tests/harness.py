"""A real server in the test's IOLoop, and real clients for it (HTTP and Socket.IO)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import socketio
import tornado.httpclient
import tornado.websocket

from codex.app import CodexApp
from codex.config import Settings


@dataclasses.dataclass
class Response:
    status: int
    body: Any
    headers: Any  # tornado HTTPHeaders: case-insensitive


@dataclasses.dataclass
class Transcript:
    session_id: str
    events: list[tuple[str, Any]]

    def named(self, name: str) -> list[Any]:
        return [data for ev, data in self.events if ev == name]

    @property
    def output(self) -> str:
        return "".join(d["output"] for d in self.named("output"))

    @property
    def complete(self) -> dict[str, Any]:
        done = self.named("execution_complete")
        assert len(done) == 1, self.events
        return dict(done[0])


class Harness:
    def __init__(self, app: CodexApp | None, base_url: str) -> None:
        self.app = app  # None for a server in another process
        self.base_url = base_url
        self.http = tornado.httpclient.AsyncHTTPClient()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        if method in ("POST", "PUT") and data is None:
            data = b""
        resp = await self.http.fetch(
            self.base_url + path,
            method=method,
            body=data,
            headers=hdrs,
            raise_error=False,
            allow_nonstandard_methods=True,
            request_timeout=30,
        )
        text = resp.body.decode() if resp.body else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Response(resp.code, parsed, resp.headers)

    async def execute(self, code: str, **extra: Any) -> str:
        resp = await self.request(
            "POST", "/api/execute", {"code": code, "language": "python", **extra}
        )
        assert resp.status == 201, resp
        return str(resp.body["sessionId"])

    @contextlib.asynccontextmanager
    async def client(self, **kwargs: Any) -> AsyncIterator[socketio.AsyncClient]:
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(self.base_url, wait_timeout=10, **kwargs)
        try:
            yield sio
        finally:
            await sio.disconnect()

    async def run(
        self,
        code: str,
        answers: list[str] | None = None,
        *,
        stdin: str | None = None,
        timeout: float = 30,
        **fields: Any,
    ) -> Transcript:
        """The seed frontend's flow: connect, POST, join, answer prompts, until complete.
        ``fields`` go into the execute request (files, args, limits...)."""
        extra = {"stdin": stdin, **fields} if stdin is not None else fields
        async with self.client() as sio:
            session_id = await self.execute(code, **extra)
            return await self.follow(session_id, answers, sio=sio, timeout=timeout)

    async def follow(
        self,
        session_id: str,
        answers: list[str] | None = None,
        *,
        sio: socketio.AsyncClient | None = None,
        timeout: float = 30,
        on_event: Any = None,
    ) -> Transcript:
        """Join a session and collect its events until `execution_complete`, answering
        each `input_required` with the next answer. `on_event(event, data)` may act on
        events as they come (a slow learner, killing a server...)."""
        if sio is None:
            async with self.client() as own:
                return await self.follow(
                    session_id, answers, sio=own, timeout=timeout, on_event=on_event
                )
        pending = list(answers or [])
        transcript = Transcript(session_id, [])
        done = asyncio.Event()

        async def on_any(event: str, data: Any = None) -> None:
            transcript.events.append((event, data))
            if on_event is not None:
                await on_event(event, data)
            if event == "input_required" and pending:
                await sio.emit("input", {"input": pending.pop(0)})
            if event == "execution_complete":
                done.set()

        sio.on("*", on_any)
        await sio.emit("join", {"sessionId": session_id})
        await asyncio.wait_for(done.wait(), timeout)
        return transcript

    async def terminal(
        self, session_id: str, *, raw: bool = False, subprotocols: list[str] | None = None
    ) -> TerminalClient:
        url = self.base_url.replace("http", "ws", 1) + f"/ws/terminal/{session_id}"
        conn = await tornado.websocket.websocket_connect(
            url + ("/raw" if raw else ""), subprotocols=subprotocols
        )
        return TerminalClient(conn, raw)

    async def wait_finished(self, session_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            resp = await self.request("GET", f"/api/sessions/{session_id}")
            if resp.body["state"] == "finished":
                return dict(resp.body)
            assert asyncio.get_running_loop().time() < deadline, resp.body
            await asyncio.sleep(0.05)


class TerminalClient:
    """A terminado-protocol (or raw) WebSocket client that keeps what it received."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection, raw: bool) -> None:
        self.conn = conn
        self.raw = raw
        self.messages: list[Any] = []
        self.closed = False

    @property
    def screen_text(self) -> str:
        if self.raw:
            return "".join(m for m in self.messages if isinstance(m, str))
        return "".join(m[1] for m in self.messages if m[0] == "stdout")

    def named(self, name: str) -> list[Any]:
        return [m[1] for m in self.messages if not self.raw and m[0] == name]

    async def send(self, *message: Any) -> None:
        if self.raw:
            await self.conn.write_message(message[0])
        else:
            await self.conn.write_message(json.dumps(list(message)))

    async def read_until(self, predicate: Any, timeout: float = 20) -> None:
        """Read messages until predicate(self) holds (or the server closes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            assert not self.closed, f"closed before the condition held: {self.messages}"
            remaining = deadline - loop.time()
            assert remaining > 0, f"timed out; got {self.messages}"
            msg = await asyncio.wait_for(self.conn.read_message(), remaining)
            if msg is None:
                self.closed = True
                continue
            self.messages.append(msg if self.raw else json.loads(msg))

    async def read_to_end(self, timeout: float = 20) -> None:
        await self.read_until(lambda c: c.closed or (not c.raw and c.named("disconnect")), timeout)

    def close(self) -> None:
        self.conn.close()


@contextlib.asynccontextmanager
async def running_app(**overrides: Any) -> AsyncIterator[Harness]:
    settings = dataclasses.replace(Settings(), port=0, **overrides).validate()
    app = CodexApp(settings)
    port = await app.start()
    try:
        yield Harness(app, f"http://127.0.0.1:{port}")
    finally:
        await app.stop()
        # python-engineio leaves each socket's ping task sleeping after shutdown; end
        # them so the test's loop closes without "Task was destroyed" noise.
        for task in asyncio.all_tasks():
            code = getattr(task.get_coro(), "cr_code", None)
            if code is not None and "engineio" in code.co_filename:
                task.cancel()


async def run_node(
    node: str, *args: str, cwd: str | os.PathLike[str], env: dict[str, str] | None = None
) -> tuple[int, bytes, bytes]:
    """Run a Node script to its end (at most 60 s): (exit status, stdout, stderr);
    ``env`` adds to this process's environment."""
    proc = await asyncio.create_subprocess_exec(
        node,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out, err
