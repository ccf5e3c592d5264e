from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from codex.config import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker command is missing"
    try:
        subprocess.run(["docker", "info"], check=True, capture_output=True, timeout=20)
    except (subprocess.SubprocessError, OSError):
        return "no Docker engine answers"
    image = Settings().sandbox_image
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"the sandbox image {image} is missing (make image)"
    return None


_DOCKER_PROBLEM: list[str | None] = []


def docker_problem() -> str | None:
    if not _DOCKER_PROBLEM:
        _DOCKER_PROBLEM.append(_docker_problem())
    return _DOCKER_PROBLEM[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `fault` tests (one restarts the Docker engine) run after every other test; the
    # order is otherwise the collection order (a stable partition).
    faults = [item for item in items if item.get_closest_marker("fault")]
    if faults:
        items[:] = [item for item in items if not item.get_closest_marker("fault")] + faults
    if not any(item.get_closest_marker("docker") for item in items):
        return
    problem = docker_problem()
    if problem is None or IN_CI:
        return  # in CI, pytest_runtest_setup fails them instead
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.skip(reason=f"Docker: {problem}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    # In CI a missing engine is a failure, never a quiet skip (nor an xfail).
    if IN_CI and item.get_closest_marker("docker"):
        problem = docker_problem()
        if problem is not None:
            pytest.fail(f"Docker is required in CI: {problem}", pytrace=False)


def require(what: str, problem: str | None) -> None:
    """Skip for a missing tool outside CI; fail in CI."""
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {problem}", pytrace=False)
    pytest.skip(f"{what}: {problem}")
