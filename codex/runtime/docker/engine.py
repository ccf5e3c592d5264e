"""The Docker SDK's client as this server uses it, and the engine's errors in brief."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from codex.config import Settings
from codex.errors import RuntimeUnavailable, SandboxError
from codex.runtime.base import Readiness
from codex.runtime.docker.hardening import choose_oci_runtime

log = logging.getLogger(__name__)


def connect(settings: Settings) -> docker.APIClient:
    """A client for the configured engine (or the environment's, or the local socket)."""
    kwargs: dict[str, Any] = {
        "timeout": settings.docker_timeout,
        "max_pool_size": 64,
        "version": "auto",
    }
    if settings.docker_url:
        kwargs["base_url"] = settings.docker_url
    else:
        kwargs.update(docker.utils.kwargs_from_env())
        kwargs.setdefault("base_url", "unix:///var/run/docker.sock")
    try:
        return docker.APIClient(**kwargs)
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailable(f"No Docker engine answers: {exc}") from exc


def short(exc: BaseException) -> str:
    """An error fit for a log line or a learner's message: engine errors can carry
    whole HTTP bodies."""
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def image_readiness(api: docker.APIClient, image: str) -> Readiness:
    """Ready if the engine has the sandbox image (blocking: call it in a thread)."""
    try:
        found = api.inspect_image(image)
    except docker.errors.ImageNotFound:
        missing = f"the sandbox image {image} is missing (build it with `make image`)"
        return Readiness(False, missing)
    except Exception as exc:
        return Readiness(False, f"the Docker engine failed: {short(exc)}")
    from codex.sessions.input.detector import proc_detector_available

    detector = "proc" if proc_detector_available() else "heuristic"
    return Readiness(True, detector=detector, extra={"image": found["Id"]})


def start_failure(exc: BaseException, image: str) -> Exception:
    """What a learner is told when the engine could not start a sandbox."""
    if isinstance(exc, docker.errors.ImageNotFound):
        return RuntimeUnavailable(
            f"The sandbox image {image} is missing; build it with `make image`."
        )
    return SandboxError(f"The Docker engine could not start the sandbox: {short(exc)}")


def pick_oci_runtime(
    api: docker.APIClient, settings: Settings, trial: Callable[[str], None]
) -> str:
    """The OCI runtime the sandboxes run under ("": the engine's default), from what the
    engine registered (blocking: call it in a thread). A runtime `auto` picked is first
    tried on one sandbox (`trial` raises if it cannot start one): crun may be registered
    on a host whose cgroup layout it refuses, and then every start would fail."""
    try:
        registered = set(api.info().get("Runtimes") or {})
    except docker.errors.DockerException as exc:
        log.warning("could not ask the engine for its runtimes: %s", short(exc))
        return choose_oci_runtime(settings.oci_runtime, set())
    chosen = choose_oci_runtime(settings.oci_runtime, registered)
    if chosen and chosen not in registered:
        log.warning(
            "oci_runtime %s is not registered with the engine (it has %s): starts will fail",
            chosen,
            ", ".join(sorted(registered)) or "none",
        )
    elif chosen and settings.oci_runtime == "auto":
        try:
            trial(chosen)
        except docker.errors.ImageNotFound:
            pass  # nothing starts yet, under any runtime: readiness says why
        except Exception as exc:  # the engine's refusal, or a timeout: not this one
            log.warning("%s cannot start a sandbox here (%s)", chosen, short(exc))
            chosen = ""
    log.info("sandboxes run under %s", chosen or "the engine's default OCI runtime")
    return chosen
