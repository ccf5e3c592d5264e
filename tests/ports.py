"""A free TCP port on loopback, for tests that start a server of their own.

Standard library only, so that any test may import it without the harness's clients
(bench/serverproc.py keeps its own copy: the benchmarks do not depend on the tests)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])
