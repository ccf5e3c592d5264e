"""REST handlers. One JSON error shape, never a traceback, never HTML."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import quote

import tornado.web

from codex.api.openapi import OPENAPI
from codex.api.origins import origin_allowed
from codex.api.request_options import body_limit
from codex.api.requests import parse_execute
from codex.cluster.locator import SessionHandle, SessionLocator
from codex.errors import (
    BadRequest,
    CodexError,
    InvalidField,
    MalformedJson,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from codex.identity.access import DRIVE, WATCH, check_access
from codex.identity.credentials import Identity, bearer
from codex.sessions.batch import run_to_end
from codex.sessions.registry import SessionRegistry
from codex.sessions.session import Session
from codex.wire import ID_CHARS, INTERNAL_ERROR, RUNNING

log = logging.getLogger(__name__)

DRAIN_LIMIT = 16 * 1024 * 1024


@tornado.web.stream_request_body
class JsonHandler(tornado.web.RequestHandler):
    """Every API handler: the JSON error shape, the origin check, and a body read
    with a cap, so an oversized body always gets this API's 413 (Tornado's own cap,
    which answers with a bare 400, is kept above ours)."""

    registry: SessionRegistry
    body_limit = 16 * 1024  # handlers that take a real body raise it
    needs_identity = False  # the session routes: with identity on, who is asking
    identity: Identity | None = None

    def initialize(self, registry: SessionRegistry) -> None:
        self.registry = registry

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        self._check_origin_and_size()
        if self.needs_identity and self.request.method != "OPTIONS":
            credential = bearer(self.request.headers.get("Authorization"))
            self.identity = await self.registry.guard.identify(credential, self.address())

    def address(self) -> str:
        return self.registry.client_of(
            self.request.remote_ip, self.request.headers.get("X-Forwarded-For")
        )

    def _check_origin_and_size(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin:
            if not origin_allowed(
                origin, self.request.host, self.registry.settings.allowed_origins
            ):
                raise CodexForbiddenOrigin("This origin may not use the API.")
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")
        self._chunks: list[bytes] = []
        self._size = 0
        # A body over the limit is read and dropped, up to DRAIN_LIMIT, so the client
        # (still sending) reads our 413 instead of a reset connection; past that the
        # connection is closed.
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > DRAIN_LIMIT:
            raise self._too_large()
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(max(DRAIN_LIMIT, 2 * self.limit()))

    def limit(self) -> int:
        return self.body_limit

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.limit()} bytes.")

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.limit():
            self._chunks.append(chunk)
        else:
            self._chunks.clear()

    def body(self) -> bytes:
        if self._size > self.limit():
            raise self._too_large()
        return b"".join(self._chunks)

    def options(self, *args: Any) -> None:
        self.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    def send_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, CodexError):
            body = exc.to_json()
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(exc.retry_after))
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            body = {"error": exc.log_message or self._reason, "code": _http_code(status_code)}
        else:
            body = {"error": "The server failed; the error was logged.", "code": INTERNAL_ERROR}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, CodexError):
            # Expected, the client's doing: one log line, no traceback.
            log.info(
                "%s %s -> %d %s: %s",
                self.request.method,
                self.request.path,
                e.status,
                e.code,
                e.message,
            )
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def json_body(self) -> dict[str, Any]:
        ctype = self.request.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise UnsupportedMediaType("The body must be JSON, sent as application/json.")
        try:
            body = json.loads(self.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedJson("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object.")
        return body


class CodexForbiddenOrigin(CodexError):
    status = 403
    code = "origin_not_allowed"


def _http_code(status: int) -> str:
    return {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(status, "http_error")


class ExecuteHandler(JsonHandler):
    needs_identity = True
    _waiting: Session | None = None

    def limit(self) -> int:
        return body_limit(self.registry.settings)

    def _too_large(self) -> PayloadTooLarge:
        s = self.registry.settings
        return PayloadTooLarge(
            f"The request is larger than the limit ({s.max_code_bytes} bytes of code, "
            f"{s.max_stdin_bytes} of stdin, {s.max_files_bytes} of files)."
        )

    async def post(self) -> None:
        client = self.address()
        for name, value in (await self.registry.admit("execute", client, self.identity)).items():
            self.set_header(name, value)
        wait = self._wait_flag()
        request = parse_execute(self.json_body(), self.registry.settings)
        session = await self.registry.create(request, client, self.identity)
        self.set_header("Location", f"/api/sessions/{session.id}")
        if wait:
            self._waiting = session
            self.send_json(await run_to_end(session), 200)
            return
        status = session.result["status"] if session.result else RUNNING
        self.send_json({"sessionId": session.id, "status": status}, 201)

    def _wait_flag(self) -> bool:
        value = self.get_query_argument("wait", "false")
        if value not in ("true", "false", "1", "0"):
            raise InvalidField("The query parameter wait must be true or false.", field="wait")
        return value in ("true", "1")

    def on_connection_close(self) -> None:
        # A caller of wait mode that left will never read the result.
        if self._waiting is not None and not self._waiting.finished:
            self._waiting.cancel("The caller of wait mode went away.")


class SessionRoute(JsonHandler):
    """A route of one session: found wherever it runs, asked of by an identity."""

    locator: SessionLocator
    needs_identity = True

    def initialize(self, registry: SessionRegistry, locator: SessionLocator | None = None) -> None:
        super().initialize(registry)
        # The locator holds no state of its own: a route table made without one (the
        # OpenAPI test's) finds sessions the same way.
        self.locator = locator or SessionLocator(registry)

    async def watched(self, session_id: str) -> SessionHandle:
        """The session, if this identity may look at it."""
        handle = await self.locator.find(session_id)
        check_access(self.identity, handle.creator, handle.id, WATCH)
        return handle


class SessionHandler(SessionRoute):
    async def get(self, session_id: str) -> None:
        self.send_json(await (await self.watched(session_id)).describe())

    async def delete(self, session_id: str) -> None:
        session = await self.locator.find(session_id)
        check_access(self.identity, session.creator, session.id, DRIVE)
        await session.cancel()
        self.send_json({"sessionId": session.id, "state": session.state}, 202)


IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


class DisplayHandler(SessionRoute):
    """One image a session displayed, as its own content type (byte-exact)."""

    async def get(self, session_id: str, index: str) -> None:
        handle = await self.watched(session_id)
        shown = await handle.display(int(index)) if index.isdigit() else None
        if shown is None:
            raise NotFound(f"Session {session_id} has no display {index}.")
        mime, data = shown
        self.set_header("Content-Type", mime)
        # An SVG opened from this URL is a document of this origin: no script, no
        # fetches, its own opaque origin.
        self.set_header("Content-Security-Policy", IMAGE_POLICY)
        self.set_header("Content-Length", str(len(data)))
        self.finish(data)


class FileHandler(SessionRoute):
    """A file the program left in its working directory, as a download."""

    async def get(self, session_id: str, name: str) -> None:
        handle = await self.watched(session_id)
        data = await handle.file(name)
        if data is None:
            raise NotFound(f"Session {session_id} has no file {name!r}.")
        leaf = name.rsplit("/", 1)[-1]
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(leaf)}")
        self.set_header("Content-Security-Policy", IMAGE_POLICY)
        self.set_header("Content-Length", str(len(data)))
        self.finish(data)


class HealthHandler(JsonHandler):
    def get(self) -> None:
        self.send_json({"status": "ok"})


class ReadyHandler(JsonHandler):
    async def get(self) -> None:
        if not self.registry.accepting:
            self.set_header("Retry-After", "5")
            self.send_json({"ready": False, "reason": "shutting down"}, 503)
            return
        ready = await self.registry.runtime.readiness()
        body = {
            "ready": ready.ready,
            "runtime": self.registry.runtime.name,
            "detector": ready.detector,
            "running": self.registry.running,
        }
        if not ready.ready:
            body["reason"] = ready.reason
            self.set_header("Retry-After", "5")
        self.send_json(body, 200 if ready.ready else 503)


class OpenAPIHandler(JsonHandler):
    def get(self) -> None:
        self.send_json(OPENAPI)


class MetricsHandler(JsonHandler):
    async def prepare(self) -> None:
        await super().prepare()
        token = self.registry.settings.metrics_token
        if token:
            # Its own token (what Prometheus's `authorization` sends), not an identity.
            given = bearer(self.request.headers.get("Authorization")) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise Unauthorized("/metrics needs its token (Authorization: Bearer).")

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.registry.metrics.render())


class NotFoundHandler(JsonHandler):
    async def prepare(self) -> None:
        raise NotFound(f"Nothing is at {self.request.path}.")


def routes(
    registry: SessionRegistry, locator: SessionLocator | None = None
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    args = {"registry": registry}
    found = {**args, "locator": locator}
    return [
        (r"/api/execute", ExecuteHandler, args),
        (rf"/api/sessions/({ID_CHARS})", SessionHandler, found),
        (rf"/api/sessions/({ID_CHARS})/displays/([0-9]{{1,6}})", DisplayHandler, found),
        (rf"/api/sessions/({ID_CHARS})/files/(.+)", FileHandler, found),
        (r"/api/openapi\.json", OpenAPIHandler, args),
        (r"/healthz", HealthHandler, args),
        (r"/readyz", ReadyHandler, args),
        (r"/metrics", MetricsHandler, args),
    ]
