"""What every sandbox container and its exec are made with; docs/security.md explains
each line: no network, no capabilities, a read-only root with a small /tmp, memory,
CPU, process and file limits, the seccomp profile, a uid of its own, no logs kept.
"""

from __future__ import annotations

from typing import Any

import docker
from codex.config import Settings
from codex.runtime.docker.labels import container_name
from codex.runtime.docker.seccomp import security_opt
from codex.runtime.protocol import supervisor_command
from docker.types import LogConfig, Ulimit

SANDBOX_PYTHON = "python3"


def tmpfs(s: Settings) -> dict[str, str]:
    return {"/tmp": f"rw,nosuid,nodev,size={s.tmpfs_size_mb}m,nr_inodes={s.tmpfs_inodes},mode=1777"}


def ulimits(s: Settings) -> list[Ulimit]:
    return [
        Ulimit(name="core", soft=0, hard=0),
        Ulimit(name="nofile", soft=s.nofile_limit, hard=s.nofile_limit),
        Ulimit(name="fsize", soft=s.tmpfs_size_mb << 20, hard=s.tmpfs_size_mb << 20),
    ]


def host_config(api: docker.APIClient, s: Settings, oci_runtime: str = "") -> dict[str, Any]:
    memory = f"{s.memory_limit_mb}m"
    config: dict[str, Any] = api.create_host_config(
        runtime=oci_runtime or None,  # None: the engine's default
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=security_opt(s.seccomp),
        read_only=True,
        tmpfs=tmpfs(s),
        mem_limit=memory,
        memswap_limit=memory,
        pids_limit=s.pids_limit,
        nano_cpus=int(s.cpus * 1e9),
        init=True,
        log_config=LogConfig(type="none"),
        ulimits=ulimits(s),
        ipc_mode="private",
        shm_size=f"{s.shm_size_mb}m",
    )
    return config


def choose_oci_runtime(wanted: str, registered: set[str]) -> str:
    """The runtime to ask the engine for ("": its default). `auto` takes crun when the
    engine has it: it starts and removes a sandbox with ~25 % less machine CPU and
    ~70 ms sooner than runc here (docs/performance.md), under the same seccomp profile
    and limits."""
    if wanted == "auto":
        return "crun" if "crun" in registered else ""
    return wanted


def environment() -> dict[str, str]:
    # The uid has no passwd entry: USER and LOGNAME answer getpass.getuser().
    return {
        "HOME": "/tmp",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }


def container_config(
    api: docker.APIClient,
    s: Settings,
    uid: int,
    labels: dict[str, str],
    session_id: str | None,
    oci_runtime: str = "",
) -> dict[str, Any]:
    """create_container's arguments: an idle process under Docker's init, which the
    program's exec joins."""
    return {
        "image": s.sandbox_image,
        "command": ["sleep", "infinity"],
        "user": f"{uid}:{uid}",  # its own: see codex/runtime/docker/uids.py
        "hostname": "sandbox",
        "working_dir": "/tmp",
        "environment": environment(),
        "labels": labels,
        "name": container_name(session_id) if session_id else None,
        "network_disabled": True,
        "use_config_proxy": False,
        "host_config": host_config(api, s, oci_runtime),
    }


def exec_config(nonce: str) -> dict[str, Any]:
    """exec_create's arguments: the supervisor on a terminal, told its nonce and to
    harden itself before it runs the program."""
    return {
        "cmd": supervisor_command(SANDBOX_PYTHON),
        "stdin": True,
        "tty": True,
        "environment": {
            "CODEX_NONCE": nonce,
            "CODEX_HARDEN": "1",
            "TERM": "xterm-256color",
        },
        "workdir": "/tmp",
    }
