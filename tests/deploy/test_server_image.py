"""The registry-less deployment path, end to end: build the server image from the
locally made base (deploy/build-server.sh), run it with the Docker socket, and run a
program with input through it, as docs/deployment.md describes.

Three containers of the one image:

- ``privileged``: what docker-compose.yml runs (root, the host's PID namespace and
  cgroup tree, only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, group tty): input
  detection from /proc, exact, and verdicts from the kernel's counters.
- ``no-pid-host``: root with Docker's default capabilities but its own PID
  namespace (the usual mistake): sessions fall back to the heuristic.
- ``unprivileged``: compose's ``server-unprivileged`` (uid 10001, the socket's
  group, no capabilities, own PID namespace): the heuristic, and it still works.

The sandbox containers come from a copy of the sandbox image with a label of this
run only (a new image id), so they can be found and removed without touching
containers of anyone else on the engine. Everything created is labelled
``org.codex.test=deploy-<run>`` and removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from codex.config import Settings
from tests.conftest import IN_CI
from tests.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.deploy]

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:8]
LABEL = f"org.codex.test=deploy-{RUN}"
SERVER_IMAGE = f"codex-server-test:{RUN}"
SANDBOX_IMAGE = f"codex-sandbox-test:{RUN}"

PROGRAM = (
    'name = input("Name? ")\n'
    "import getpass\n"
    'secret = getpass.getpass("Password: ")\n'
    'print(f"Hello {name}, {len(secret)} characters")\n'
)
# Prints a prompt-like text and sleeps: the /proc detector must stay silent.
NOT_A_PROMPT = 'import time\nprint("Enter: ", end="", flush=True)\ntime.sleep(1.0)\nprint("done")\n'


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def docker_socket() -> Path:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return Path(host[len("unix://") :])
    return Path("/var/run/docker.sock")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Server:
    name: str
    base: str
    started: float


@dataclass
class Deployment:
    network: str | None
    sock: Path
    build_seconds: float
    servers: dict[str, Server] = field(default_factory=dict)

    def start(self, variant: str, *args: str) -> Server:
        """Run the server image (detached) and wait until /readyz answers 200."""
        name = f"codex-deploytest-{RUN}-{variant}"
        port = free_port()
        if self.network:
            net = ["--network", self.network, "-p", f"127.0.0.1:{port}:8000"]
        else:  # no bridge on this engine: the server on the host's network instead
            net = ["--network", "host", "-e", "CODEX_HOST=127.0.0.1", "-e", f"CODEX_PORT={port}"]
        docker(
            "run", "-d", "--init", "--name", name, "--label", LABEL,
            "-v", f"{self.sock}:/var/run/docker.sock",
            "-e", f"CODEX_SANDBOX_IMAGE={SANDBOX_IMAGE}",
            "-e", "CODEX_POOL_SIZE=1",
            *net, *args, SERVER_IMAGE,
        )  # fmt: skip
        server = Server(name, f"http://127.0.0.1:{port}", time.monotonic())
        self.servers[variant] = server
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(server.base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return server
            except (OSError, urllib.error.URLError):
                pass
            state = docker("inspect", "-f", "{{.State.Status}}", name, check=False).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                logs = docker("logs", "--tail", "40", name, check=False)
                pytest.fail(f"server {variant} not ready ({state}):\n{logs.stdout}{logs.stderr}")
            time.sleep(0.2)


def _cleanup(network: str | None) -> None:
    for c in docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split():
        docker("rm", "-f", c, check=False)
    # Sandbox containers of this run's servers (a server stopped with SIGTERM
    # removes its own; this is for a failed run).
    for c in docker(
        "ps", "-aq", "--filter", f"ancestor={SANDBOX_IMAGE}", check=False
    ).stdout.split():
        docker("rm", "-f", c, check=False)
    if network:
        docker("network", "rm", network, check=False)
    if os.environ.get("CODEX_KEEP_TEST_IMAGE") != "1":
        docker("image", "rm", "-f", SERVER_IMAGE, check=False)
    docker("image", "rm", "-f", SANDBOX_IMAGE, check=False)
    docker("image", "prune", "-f", "--filter", f"label={LABEL}", check=False)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    sock = docker_socket()
    if not sock.exists():
        unavailable(f"the Docker socket {sock} is not a local file to mount")
    t0 = time.monotonic()
    build = subprocess.run(
        ["bash", str(ROOT / "deploy" / "build-server.sh"), "--tag", SERVER_IMAGE, "--label", LABEL],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    build_seconds = time.monotonic() - t0
    print(build.stdout + build.stderr)
    if build.returncode == 3:
        _cleanup(None)
        unavailable(f"no base image for the server can be had here: {build.stderr.strip()}")
    assert build.returncode == 0, f"deploy/build-server.sh failed:\n{build.stdout}{build.stderr}"
    # A copy of the sandbox image with a new id: `ancestor=` then finds only our containers.
    dockerfile = f"FROM {Settings().sandbox_image}\nLABEL org.codex.test-run={RUN}\n"
    subprocess.run(
        ["docker", "build", "-q", "--network", "none", "--label", LABEL, "-t", SANDBOX_IMAGE, "-"],
        input=dockerfile, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    network: str | None = f"codex-deploytest-{RUN}"
    made = docker("network", "create", "--label", LABEL, network, check=False)
    if made.returncode != 0:
        print(f"no network of its own ({made.stderr.strip()}): using the host's network")
        network = None
    deploy = Deployment(network, sock, build_seconds)
    try:
        yield deploy
    finally:
        _cleanup(network)


# -- a client: the seed flow over Socket.IO ------------------------------------------


async def _run(base: str, code: str, answers: list[str]) -> tuple[list[tuple[str, Any]], Any]:
    import aiohttp
    import socketio

    events: list[tuple[str, Any]] = []
    done = asyncio.Event()
    pending = list(answers)
    sio = socketio.AsyncClient(reconnection=False)

    async def on_any(event: str, data: Any = None) -> None:
        events.append((event, data))
        if event == "input_required" and pending:
            await sio.emit("input", {"input": pending.pop(0)})
        if event == "execution_complete":
            done.set()

    sio.on("*", on_any)
    await sio.connect(base)
    try:
        async with aiohttp.ClientSession() as http:
            body = {"code": code, "language": "python"}
            async with http.post(base + "/api/execute", json=body) as r:
                assert r.status == 201, await r.text()
                session_id = (await r.json())["sessionId"]
            await sio.emit("join", {"sessionId": session_id})
            await asyncio.wait_for(done.wait(), 30)
            async with http.get(f"{base}/api/sessions/{session_id}") as r:
                described = await r.json()
    finally:
        await sio.disconnect()
    return events, described


def run(
    base: str, code: str, answers: list[str] | None = None
) -> tuple[list[tuple[str, Any]], Any]:
    return asyncio.run(_run(base, code, answers or []))


def named(events: list[tuple[str, Any]], name: str) -> list[Any]:
    return [data for event, data in events if event == name]


def output(events: list[tuple[str, Any]]) -> str:
    return "".join(d["output"] for d in named(events, "output"))


def readyz(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
        return dict(json.load(r))


def asked(events: list[tuple[str, Any]]) -> list[tuple[str, bool, str]]:
    return [(d["prompt"], d["password"], d["detector"]) for d in named(events, "input_required")]


# -- the tests -----------------------------------------------------------------------


def test_privileged_container_detects_input_exactly(deployment: Deployment) -> None:
    server = deployment.start(
        "privileged",
        "--user", "0:0", "--group-add", "5", "--pid", "host",
        "--cap-drop", "ALL", "--cap-add", "SYS_PTRACE", "--cap-add", "DAC_READ_SEARCH",
        "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "--read-only", "--tmpfs", "/tmp", "--security-opt", "no-new-privileges",
    )  # fmt: skip
    print(f"server image built in {deployment.build_seconds:.1f} s")
    assert readyz(server.base)["detector"] == "proc"

    events, described = run(server.base, PROGRAM, ["Ada", "s3cret"])
    assert asked(events) == [("Name? ", False, "proc"), ("Password: ", True, "proc")]
    assert "Hello Ada, 6 characters" in output(events)
    assert "s3cret" not in output(events)
    done = named(events, "execution_complete")
    assert len(done) == 1 and done[0]["status"] == "ok" and done[0]["exitCode"] == 0
    assert described["detector"] == "proc"

    # Exact: text that looks like a prompt, while the program sleeps, is not one.
    events, _ = run(server.base, NOT_A_PROMPT)
    assert named(events, "input_required") == []
    assert output(events) == "Enter: done\r\n"
    assert named(events, "execution_complete")[0]["status"] == "ok"


def test_privileged_container_reads_the_kernels_counters(deployment: Deployment) -> None:
    server = deployment.servers.get("privileged")
    if server is None:
        pytest.skip("the privileged server did not start")
    # The sandbox's cgroup, read through the host's /sys/fs/cgroup: an OOM kill is
    # `memory_limit` (not a bare SIGKILL), and CPU time and peak memory are known.
    events, _ = run(server.base, "x = bytearray(1024 * 1024 * 1024)\n")
    done = named(events, "execution_complete")[0]
    assert done["status"] == "memory_limit", done
    events, _ = run(server.base, "print(sum(range(100000)))\n")
    done = named(events, "execution_complete")[0]
    assert done["status"] == "ok"
    assert done["cpuMs"] is not None and done["memoryPeakBytes"] is not None, done


def test_without_the_host_pid_namespace_falls_back_to_the_heuristic(
    deployment: Deployment,
) -> None:
    server = deployment.start("no-pid-host", "--user", "0:0")
    # /readyz only checks that this process can read its own /proc entries, so it
    # still says "proc" here; the sessions say what they really use.
    events, described = run(server.base, PROGRAM, ["Ada", "s3cret"])
    assert described["detector"] == "heuristic"
    assert asked(events) == [("Name? ", False, "heuristic"), ("Password: ", False, "heuristic")]
    assert "Hello Ada, 6 characters" in output(events)
    assert named(events, "execution_complete")[0]["status"] == "ok"


def test_unprivileged_container_works_with_the_heuristic(deployment: Deployment) -> None:
    gid = deployment.sock.stat().st_gid
    server = deployment.start(
        "unprivileged",
        "--user", "10001:10001", "--group-add", str(gid), "--cap-drop", "ALL",
        "--read-only", "--tmpfs", "/tmp", "--security-opt", "no-new-privileges",
    )  # fmt: skip
    ready = readyz(server.base)
    assert ready["ready"] is True
    events, described = run(server.base, PROGRAM, ["Ada", "s3cret"])
    assert described["detector"] == "heuristic"
    assert [d["detector"] for d in named(events, "input_required")] == ["heuristic"] * 2
    assert "Hello Ada, 6 characters" in output(events)
    assert named(events, "execution_complete")[0]["status"] == "ok"


def test_healthcheck_turns_healthy(deployment: Deployment) -> None:
    server = deployment.servers.get("privileged")
    if server is None:
        pytest.skip("the privileged server did not start")
    # Docker 20.10 runs the first check one interval (15 s) after the start.
    deadline = server.started + 45
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", server.name).stdout.strip()
        if status == "healthy":
            break
        assert status == "starting", docker("inspect", "-f", "{{json .State.Health}}", server.name)
        time.sleep(0.5)
    assert status == "healthy"


def test_stopping_a_server_removes_its_sandbox_containers(deployment: Deployment) -> None:
    assert deployment.servers, "no server was started"
    left_running = docker("ps", "-q", "--filter", f"ancestor={SANDBOX_IMAGE}").stdout.split()
    assert left_running, "each server keeps one pooled sandbox container (CODEX_POOL_SIZE=1)"
    for server in deployment.servers.values():
        docker("stop", "-t", "30", server.name, timeout=60)
    deadline = time.monotonic() + 10
    while True:
        left = docker("ps", "-aq", "--filter", f"ancestor={SANDBOX_IMAGE}").stdout.split()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == [], "sandbox containers left after SIGTERM"
