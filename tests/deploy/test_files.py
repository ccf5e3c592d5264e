"""The deployment files, checked without an engine: the compose file's server has what
exact input detection needs, the Dockerfile's healthcheck and user, and the compose
copy of the sandbox Dockerfile is in step with sandbox-image/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]


def service(name: str) -> str:
    """The text of one service in docker-compose.yml (read as text: no YAML library
    is among the test requirements)."""
    text = (ROOT / "docker-compose.yml").read_text()
    match = re.search(rf"(?ms)^  {re.escape(name)}:\n(.*?)(?=^  \S|\Z)", text)
    assert match, f"no service {name}"
    return match.group(1)


def lines(block: str) -> set[str]:
    return {line.strip() for line in block.splitlines() if not line.strip().startswith("#")}


def test_compose_sandbox_dockerfile_is_generated_from_the_sandbox_image() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "sandbox" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr


def test_compose_server_can_read_the_sandboxes_proc() -> None:
    server = lines(service("server"))
    assert "<<: *server" in server
    for line in (
        'user: "0:0"',
        '- "5"',
        "pid: host",
        "cgroup: host",
        "- ALL",
        "- SYS_PTRACE",
        "- DAC_READ_SEARCH",
        "- /var/run/docker.sock:/var/run/docker.sock",
        "- /sys/fs/cgroup:/sys/fs/cgroup:ro",
    ):
        assert line in server, line
    assert len([x for x in server if x.startswith("- ") and x[2:].isupper()]) == 3  # caps
    common = (ROOT / "docker-compose.yml").read_text()
    assert "CODEX_HOST: 0.0.0.0" in common
    assert "condition: service_completed_successfully" in common


def test_compose_unprivileged_variant_and_redis_are_opt_in() -> None:
    unprivileged = lines(service("server-unprivileged"))
    assert 'profiles: ["unprivileged"]' in unprivileged
    assert 'user: "10001:10001"' in unprivileged
    assert not any(x.startswith("pid:") for x in unprivileged)
    assert 'profiles: ["redis"]' in lines(service("redis"))
    for name in ("server", "sandbox"):
        assert not any(x.startswith("profiles:") for x in lines(service(name)))


def test_dockerfile_base_is_an_argument_user_and_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "\nARG BASE_IMAGE=python:3.12-slim\n" in text
    assert text.count("FROM ${BASE_IMAGE}") == 2
    assert "\nUSER 10001:10001\n" in text
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]


def test_compose_file_is_valid_for_the_installed_compose() -> None:
    """`docker compose config` (v2), else Debian's docker-compose 1.29, which does not
    know `cgroup:` (Compose v2 only): it checks the rest of the file without that key."""
    text = (ROOT / "docker-compose.yml").read_text()
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        if subprocess.run([*cmd, "version"], capture_output=True, timeout=30).returncode:
            continue
        path = ROOT / "docker-compose.yml"
        if cmd == ["docker-compose"]:
            path = (
                ROOT / f".compose-v1-check-{os.getpid()}.yml"
            )  # relative paths as in the original
            path.write_text(re.sub(r"(?m)^\s+cgroup: host\n", "", text))
        try:
            out = subprocess.run(
                [*cmd, "-f", str(path), "config", "-q"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
        finally:
            if path.name.startswith(".compose-v1-check"):
                path.unlink()
        assert out.returncode == 0, out.stderr
        return
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")
