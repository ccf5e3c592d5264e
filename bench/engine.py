"""The Docker engine seen directly: the floors (a bare `docker run --rm` and a bare
`docker exec` of the same program, timed to the first output byte), the containers a
CodeX server owns, and which executions a warm pool served (from the engine's events).

Blocking docker SDK calls: run them outside an event loop, or in a thread.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import docker
import docker.errors

IMAGE = "codex-sandbox:latest"
HELLO_ARGV = ["python3", "-c", 'print("hi")']
BENCH_LABEL = "org.codex.bench"  # containers this module starts (never CodeX-managed)
MANAGED = "org.codex.managed"
OWNER = "org.codex.owner"
SESSION = "org.codex.session"


def api() -> docker.APIClient:
    return docker.APIClient(version="auto", timeout=60, **docker.utils.kwargs_from_env())


def _sock(stream: Any) -> socket.socket:
    raw = getattr(stream, "_sock", stream)
    if not isinstance(raw, socket.socket):  # a SocketIO wrapper around it
        raw = raw._sock
    return raw  # type: ignore[no-any-return]


def _first_byte(sock: socket.socket, timeout: float) -> None:
    sock.settimeout(timeout)
    if not sock.recv(1):
        raise RuntimeError("the stream ended without output")


def _drain(sock: socket.socket, timeout: float) -> None:
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return
        except TimeoutError:
            return


def docker_run_ms(client: docker.APIClient) -> float:
    """`docker run --rm --network none IMAGE python3 -c 'print("hi")'` as the CLI does
    it (create, attach, start), to the first byte of output; then waits until the
    container is gone, so runs never overlap."""
    t0 = time.perf_counter()
    cid = client.create_container(
        IMAGE,
        HELLO_ARGV,
        labels={BENCH_LABEL: "run"},
        host_config=client.create_host_config(network_mode="none", auto_remove=True),
    )["Id"]
    stream = client.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
    sock = _sock(stream)
    try:
        client.start(cid)
        _first_byte(sock, 30)
        t1 = time.perf_counter()
        _drain(sock, 10)
    finally:
        sock.close()
    _until_gone(client, cid, 30)
    return (t1 - t0) * 1000


def _until_gone(client: docker.APIClient, cid: str, seconds: float) -> None:
    # (`wait` with condition=removed hangs on this engine when the removal is over.)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.inspect_container(cid)
        except docker.errors.NotFound:
            return
        time.sleep(0.02)
    client.remove_container(cid, force=True)


class ExecTarget:
    """One running container (`sleep infinity`, no network) to `docker exec` into."""

    def __init__(self, client: docker.APIClient) -> None:
        self.client = client
        self.cid = client.create_container(
            IMAGE,
            ["sleep", "infinity"],
            labels={BENCH_LABEL: "exec"},
            host_config=client.create_host_config(network_mode="none", init=True),
        )["Id"]
        client.start(self.cid)

    def exec_ms(self) -> float:
        """`docker exec <c> python3 -c 'print("hi")'`, to the first byte of output."""
        t0 = time.perf_counter()
        exec_id = self.client.exec_create(self.cid, HELLO_ARGV)["Id"]
        stream = self.client.exec_start(exec_id, socket=True)
        sock = _sock(stream)
        try:
            _first_byte(sock, 30)
            t1 = time.perf_counter()
            _drain(sock, 10)
        finally:
            sock.close()
        return (t1 - t0) * 1000

    def close(self) -> None:
        try:
            self.client.remove_container(self.cid, force=True)
        except docker.errors.DockerException:
            pass

    def tty_session(self, argv: list[str]) -> socket.socket:
        """A TTY `docker exec -it` of argv, as CodeX runs its programs: the socket."""
        exec_id = self.client.exec_create(self.cid, argv, stdin=True, tty=True)["Id"]
        return _sock(self.client.exec_start(exec_id, socket=True, tty=True))

    def flood_mb_s(self, program: str, wire_bytes: int) -> dict[str, Any]:
        """Read a TTY `docker exec -it` of the flood program as fast as possible: the
        engine's own throughput for a terminal stream."""
        from bench.serverproc import EngineMeter

        eng = EngineMeter()
        me0 = time.process_time()
        sock = self.tty_session(["python3", "-c", program])
        sock.settimeout(60)
        total = 0
        first = last = 0.0
        try:
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    break
                if not first:
                    first = time.perf_counter()
                total += len(data)
                last = time.perf_counter()
        finally:
            sock.close()
        span = last - first
        return {
            "bytes": total,
            "complete": total >= wire_bytes,
            "mb_per_s": round(total / 1e6 / span, 1) if span > 0 else 0.0,
            "engine_cpu_seconds": eng.stop(),
            # this thread's reads, and whatever else the benchmark process did meanwhile
            "client_cpu_seconds": round(time.process_time() - me0, 2),
        }


def remove_bench_containers(client: docker.APIClient) -> int:
    """Containers a previous, interrupted benchmark left."""
    found = client.containers(all=True, filters={"label": BENCH_LABEL})
    for c in found:
        try:
            client.remove_container(c["Id"], force=True)
        except docker.errors.DockerException:
            pass
    return len(found)


def owned_by(labels: dict[str, str], pid: int) -> bool:
    """Is this container labelled with the CodeX server process `pid` as its owner?
    (The owner label is boot-id/pid-namespace/pid/start-time.)"""
    parts = (labels.get(OWNER) or "").split("/")
    return len(parts) == 4 and parts[2] == str(pid)


def containers_of(client: docker.APIClient, pid: int) -> int:
    """Running containers of the CodeX server `pid`."""
    found = client.containers(filters={"label": MANAGED})
    return sum(1 for c in found if owned_by(c.get("Labels") or {}, pid))


def managed_containers(client: docker.APIClient) -> int:
    """Every running CodeX-managed container on the engine (`docker ps --filter
    label=org.codex.managed`), other servers' included."""
    return len(client.containers(filters={"label": MANAGED}))


class PoolWatch:
    """Tells pool hits from misses by the engine's events, without asking the server.

    A cold start creates a container labelled with the session's id; a pooled one was
    created earlier without it and is renamed `codex-<session id>` when taken."""

    def __init__(self, client: docker.APIClient, pid: int) -> None:
        self.client = client
        self.pid = pid
        self.created: set[str] = set()
        self.renamed: set[str] = set()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # the rename runs after the program started
        if self._stream is not None:
            self._stream.close()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            self._stream = self.client.events(
                filters={"type": "container", "label": MANAGED}, decode=True
            )
        finally:
            self._ready.set()
        try:
            for event in self._stream:
                attrs = (event.get("Actor") or {}).get("Attributes") or {}
                if not owned_by(attrs, self.pid):
                    continue
                action = event.get("Action") or event.get("status")
                if action == "create" and attrs.get(SESSION):
                    self.created.add(attrs[SESSION])
                elif action == "rename" and str(attrs.get("name", "")).startswith("codex-"):
                    self.renamed.add(attrs["name"][len("codex-") :])
        except Exception:  # the stream was closed
            return

    def kind(self, session_id: str) -> str:
        if session_id in self.created:
            return "miss"
        return "hit" if session_id in self.renamed else "unknown"

    def classify(self, session_ids: list[str]) -> dict[str, int]:
        kinds = [self.kind(s) for s in session_ids]
        return {
            "hits": kinds.count("hit"),
            "misses": kinds.count("miss"),
            "unknown": kinds.count("unknown"),
        }
