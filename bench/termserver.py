"""terminado serving programs on local ptys: the reference CodeX's terminal streams are
compared with (same machine, same run, no container).

    python -m bench.termserver --port 8765

Routes (each WebSocket gets its own pty, terminado's `UniqueTermManager`):

- /echo:  ECHO_PROGRAM, reads its terminal until end of file (keystroke echo tests);
- /flood/<bytes>: the program of `flood_program(bytes)` (throughput tests);
- /healthz: 200 once serving.

Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import tornado.web
from terminado.management import UniqueTermManager
from terminado.websocket import TermSocket

from bench.programs import ECHO_PROGRAM, flood_program


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


class Socket(TermSocket):
    def check_origin(self, origin: str) -> bool:
        return True  # loopback only; the benchmark client sends no Origin

    def open(self, *args: object, **kwargs: object) -> None:
        self.set_nodelay(True)  # as CodeX does on its terminal sockets
        super().open(*args, **kwargs)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    python = sys.executable  # a real interpreter, not a shim script
    env = {"LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    echo = UniqueTermManager(shell_command=[python, "-I", "-c", ECHO_PROGRAM], extra_env=env)
    app = tornado.web.Application(
        [
            (r"/echo", Socket, {"term_manager": echo}),
            (r"/flood/(\d+)", FloodSized, {"python": python, "env": env}),
            (r"/healthz", Health),
        ],
        websocket_max_message_size=64 * 1024,
    )
    app.listen(args.port, "127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for manager in (echo, *FloodSized.managers.values()):
        await manager.kill_all()
    os._exit(0)


class FloodSized(Socket):
    """/flood/<bytes>: a pty running `flood_program(bytes)`."""

    managers: dict[int, UniqueTermManager] = {}

    def initialize(self, python: str, env: dict[str, str]) -> None:  # type: ignore[override]
        self._python = python
        self._env = env

    def open(self, size: str) -> None:  # type: ignore[override]
        n = int(size)
        manager = self.managers.get(n)
        if manager is None:
            manager = UniqueTermManager(
                shell_command=[self._python, "-I", "-c", flood_program(n)], extra_env=self._env
            )
            self.managers[n] = manager
        super().initialize(manager)
        super().open()


if __name__ == "__main__":
    asyncio.run(main())
