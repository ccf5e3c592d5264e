"""make_app(settings): routes, the Socket.IO mount, the static page, start and stop."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import tornado.netutil
import tornado.web

from codex.api.hosts import host_allowed
from codex.api.http import JsonHandler, NotFoundHandler, routes
from codex.api.http_server import BoundedHTTPServer, raise_fd_limit
from codex.api.socketio import SocketIOTransport
from codex.api.terminal_ws import routes as terminal_routes
from codex.cluster.directory import Cluster
from codex.cluster.locator import CommandHandler, SessionLocator
from codex.config import Settings
from codex.errors import HostNotAllowed
from codex.gcpauses import PauseWatch, freeze_startup
from codex.looplag import watch_lag
from codex.runtime.base import Runtime
from codex.sessions.registry import SessionRegistry
from codex.tasks import Tasks

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class HostRefusedHandler(JsonHandler):
    async def prepare(self) -> None:
        raise HostNotAllowed("This server does not answer to that Host name (see allowed_hosts).")


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's files; a path no file can have is a 404, never a traceback."""

    async def get(self, path: str, include_body: bool = True) -> None:
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            raise tornado.web.HTTPError(404)
        await super().get(path, include_body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        code = "not_found" if status_code == 404 else "http_error"
        self.finish(json.dumps({"error": f"{self._reason}.", "code": code}))


class CodexWebApplication(tornado.web.Application):
    """The route table behind one Host check: every request (HTTP, Socket.IO, both
    WebSockets, the page) goes through ``find_handler`` first."""

    def __init__(self, registry: SessionRegistry, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.registry = registry

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        if not host_allowed(request.headers.get("Host"), self.registry.settings):
            log.info("refused Host %r from %s", request.headers.get("Host"), request.remote_ip)
            return self.get_handler_delegate(
                request, HostRefusedHandler, {"registry": self.registry}
            )
        return super().find_handler(request, **kwargs)


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "local":
        from codex.runtime.local import LocalRuntime

        return LocalRuntime(settings)
    from codex.runtime.docker.runtime import DockerRuntime

    return DockerRuntime(settings)


class CodexApp:
    """The server's parts, wired once; tests build it the same way `python -m codex` does."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or make_runtime(settings)
        self.registry = SessionRegistry(settings, self.runtime)
        self.locator = SessionLocator(self.registry)
        self.socketio = SocketIOTransport(self.registry, self.locator)
        handlers: list[tuple[str, type[tornado.web.RequestHandler], dict[str, object]]] = [
            (r"/socket\.io/", self.socketio.handler(), {}),
            *routes(self.registry, self.locator),
            *terminal_routes(self.registry, self.locator),
            (
                r"/()",
                StaticHandler,
                {"path": str(STATIC_DIR), "default_filename": "index.html"},
            ),
            (r"/static/(.*)", StaticHandler, {"path": str(STATIC_DIR)}),
        ]
        self.web = CodexWebApplication(
            self.registry,
            handlers,
            default_handler_class=NotFoundHandler,
            default_handler_args={"registry": self.registry},
            websocket_max_message_size=64 * 1024,
        )
        self.server: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None
        self.cluster: Cluster | None = None
        self.commands: CommandHandler | None = None
        self.tasks = Tasks("app")  # the loop-lag watch, the reaper of dead peers' sandboxes
        self.gc_watch = PauseWatch(self.registry.metrics.gc_pause.observe)

    async def start(self) -> int:
        if self.settings.redis_url:
            # Lease and command channel first: no session may exist without them.
            self.cluster = Cluster(
                self.settings.redis_url, self.runtime.instance, self.settings.instance_lease
            )
            self.commands = CommandHandler(self.registry, self.cluster)
            await self.cluster.start(self.commands)
            self.registry.cluster = self.cluster
            self.tasks.spawn(self._reap_dead_peers(self.cluster))
        await self.runtime.startup()
        raise_fd_limit()
        self.server = BoundedHTTPServer(
            self.web,
            xheaders=False,
            max_body_size=4 * 1024 * 1024,
            idle_connection_timeout=self.settings.http_idle_timeout,
            body_timeout=self.settings.http_body_timeout,
            max_connections_per_ip=self.settings.max_connections_per_ip,
            exempt=self.registry.trusted_proxies,
        )
        sockets = tornado.netutil.bind_sockets(self.settings.port, self.settings.host)
        self.server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        if self.settings.runtime == "local":
            log.warning("runtime=local: programs run UNSANDBOXED on this machine")
        log.info(
            "CodeX serving on http://%s:%d (runtime %s)",
            self.settings.host,
            self.port,
            self.runtime.name,
        )
        # Last: a start that failed before this leaves no task behind.
        self.tasks.spawn(watch_lag(self.registry.metrics.loop_lag.observe))
        self.gc_watch.install()
        if self.settings.gc_freeze:
            log.info("%d objects of the start frozen (gc.freeze)", freeze_startup())
        return self.port

    async def _reap_dead_peers(self, cluster: Cluster) -> None:
        """Remove the sandboxes of instances (sharing this engine) whose lease ran out."""
        while True:
            await asyncio.sleep(self.settings.instance_lease)
            try:
                await self.runtime.reap_dead_peers(await cluster.live_instances())
            except Exception as exc:  # Redis or the engine away for a moment
                log.warning("could not reap dead instances' sandboxes: %s", exc)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop taking work, let running programs finish for up to `grace` seconds,
        cancel the rest with a clear verdict, remove every sandbox."""
        # Still listening while programs finish: clients keep following them, and a
        # load balancer's health check reads 503 from /readyz.
        self.registry.accepting = False
        await self.registry.drain(grace)
        if self.server is not None:
            self.server.stop()
        await self.tasks.close()  # cancelled and ended: no reaping during the sweep
        self.gc_watch.uninstall()
        if self.commands is not None:
            self.commands.stop()
        await self.socketio.sio.shutdown()
        await self.runtime.shutdown()
        if self.cluster is not None:
            await self.cluster.stop()


async def serve(settings: Settings) -> None:
    app = CodexApp(settings)
    await app.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    # /readyz turns 503 at once, so a load balancer drains this instance.
    app.registry.accepting = False
    log.info("shutting down: up to %g s for running programs", settings.shutdown_grace)
    await app.stop(grace=settings.shutdown_grace)
