"""Every setting of the server, declared once: type, default, help and validation.

Each field can be set on the command line (``--time-limit 5``) or in the environment
(``CODEX_TIME_LIMIT=5``); the command line wins. How they are spelt there lives in
``codex.config_cli``; ``docs/configuration.md`` is generated from these declarations by
``codex.config_docs`` (``python -m codex --config-docs``) and a test keeps it in step.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codex.config_capacity import CapacitySettings
from codex.config_cli import build_parser, env_name, parse_value
from codex.config_identity import IdentitySettings
from codex.config_request import RequestSettings, setting
from codex.errors import ConfigError

# The program travels to the sandbox through its terminal and a pipe, so no argv limit
# applies; this ceiling keeps the server-side syntax check and the replay sane.
MAX_CODE_BYTES_CEILING = 1024 * 1024


@dataclass(frozen=True)
class Settings(RequestSettings, IdentitySettings, CapacitySettings):
    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(8000, "TCP port to listen on (0 picks a free one).")
    runtime: str = setting(
        "docker",
        "Where programs run: `docker` (one hardened container per execution) or "
        "`local` (ptyprocess on this machine, UNSANDBOXED, for development only).",
        choices=("docker", "local"),
    )
    allow_unsafe_local: bool = setting(
        False, "Let the unsandboxed `local` runtime listen on a non-loopback address."
    )
    sandbox_image: str = setting("codex-sandbox:latest", "Docker image that user programs run in.")
    docker_url: str = setting(
        "", "Docker engine URL; empty means the usual DOCKER_HOST or local socket."
    )
    docker_timeout: float = setting(30.0, "Seconds one Docker API call may take.")
    oci_runtime: str = setting(
        "auto",
        "OCI runtime of the sandboxes, by the name the engine registered it under "
        "(`crun`, `runc`); empty: the engine's default; `auto`: crun when the engine has "
        "it and it starts a sandbox (~25 % less CPU per sandbox than runc, "
        "docs/performance.md), else the engine's default.",
    )
    max_code_bytes: int = setting(
        64 * 1024, "Largest program accepted, in bytes of UTF-8 (at most 1048576)."
    )
    max_stdin_bytes: int = setting(
        64 * 1024, "Largest `stdin` text accepted with an execution, in bytes."
    )
    max_input_bytes: int = setting(16 * 1024, "Largest single `input` message, in bytes.")
    max_session_input_bytes: int = setting(
        1024 * 1024, "Input one execution may receive in all, in bytes."
    )
    disconnect_grace: float = setting(
        60.0,
        "Seconds a running program waits for a client to come back after its last one "
        "left, before it is cancelled (programs nobody ever joined are not affected).",
    )
    forbidden_imports: tuple[str, ...] = setting(
        (),
        "Comma-separated modules a program may not import (a teaching aid, NOT a "
        "security boundary: see docs/security.md). Empty: off.",
    )
    forbidden_calls: tuple[str, ...] = setting(
        (), "Comma-separated builtins a program may not call, e.g. eval,exec. Empty: off."
    )
    time_limit: float = setting(
        10.0, "Seconds an execution may run; time blocked waiting for input does not count."
    )
    input_wait_limit: float = setting(
        300.0, "Seconds one wait for input may last before the session is ended."
    )
    memory_limit_mb: int = setting(
        256, "Memory limit of an execution's container in MiB (swap equals memory)."
    )
    pids_limit: int = setting(64, "Most processes and threads an execution may have.")
    cpus: float = setting(1.0, "CPU cores an execution may use (a CFS quota).")
    tmpfs_size_mb: int = setting(64, "Size of the writable /tmp of a container, in MiB.")
    tmpfs_inodes: int = setting(4096, "Most files and directories in a container's /tmp.")
    shm_size_mb: int = setting(
        16, "Size of a container's /dev/shm in MiB (counted against its memory limit)."
    )
    nofile_limit: int = setting(256, "Most open files per process in a container (ulimit).")
    seccomp: str = setting(
        "codex",
        "System call filter: `codex` (Docker's default minus io_uring, ptrace, "
        "process_vm_*, namespaces; see docs/security.md), `docker-default`, or "
        "`unconfined` (never in production).",
        choices=("codex", "docker-default", "unconfined"),
    )
    sandbox_uid_base: int = setting(
        1_900_000_000,
        "Lowest uid sandboxes run as: each live sandbox gets a uid (and gid) of its own "
        "from a block of 4096 this server picks at random within 2^24 of it, so no two "
        "share per-uid kernel limits and none is a host user.",
    )
    output_limit_bytes: int = setting(
        1024 * 1024, "Bytes of output an execution may produce before it is stopped."
    )
    display_max_bytes: int = setting(
        2 * 1024 * 1024,
        "Largest image a program may display (plt.show(), codex_display.show()), in "
        "bytes; a larger one is replaced by a notice. Images count against the output "
        "limit.",
    )
    display_max_count: int = setting(
        50, "Images one execution may display; later ones are replaced by a notice."
    )
    display_max_pixels: int = setting(
        4096 * 4096, "Most pixels (width x height) of one displayed image."
    )
    display_text_line: bool = setting(
        True,
        "Also write a short line such as `[figure 1: 640x480]` into the output where an "
        "image was displayed, for clients (and terminals) that do not show images.",
    )
    session_ttl: float = setting(
        300.0, "Seconds a finished session is kept for late joins and GET."
    )
    max_finished_sessions: int = setting(
        256, "Finished sessions kept at most (the oldest go first, before their TTL)."
    )
    finished_memory_mb: int = setting(
        256,
        "Memory all finished sessions together may hold for replay and GET, in MiB of "
        "output (the oldest are forgotten first, before their TTL).",
    )
    gc_freeze: bool = setting(
        True,
        "Freeze the objects that exist once the server has started (gc.freeze), so the "
        "cyclic GC's full collections, which hold the event loop, no longer walk them "
        "(false: they do, as before 2026-12-04; for comparing).",
    )
    term_rows: int = setting(24, "Initial terminal height of an execution.")
    term_cols: int = setting(80, "Initial terminal width of an execution.")
    detector_interval_ms: int = setting(
        50,
        "Longest interval, in ms, between two checks of a running program for a blocking "
        "read (checks come sooner after output or input).",
    )
    max_sessions_per_ip: int = setting(
        16, "Executions one client address may run at once (429 beyond)."
    )
    max_clients_per_ip: int = setting(
        32,
        "Socket.IO connections and terminal WebSockets one client address may hold open "
        "at once (beyond: refused).",
    )
    max_connections_per_ip: int = setting(
        64,
        "Open HTTP connections from one peer address (trusted proxies excepted); more "
        "are closed at once.",
    )
    http_idle_timeout: float = setting(
        10.0,
        "Seconds an HTTP connection may take to send its request headers, or stay idle "
        "between requests, before it is closed.",
    )
    http_body_timeout: float = setting(30.0, "Seconds an HTTP request may take to send its body.")
    rate_limit_execute: str = setting(
        "60/minute", "Executions one client address may start (a `limits` rate; empty: none)."
    )
    rate_limit_join: str = setting(
        "300/minute", "Joins and terminal attaches per client address (empty: none)."
    )
    rate_limit_storage: str = setting(
        "memory://",
        "Where rate-limit counters live: `memory://` (this process) or a `redis://` URI "
        "shared by several instances.",
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "Comma-separated proxy addresses or networks whose X-Forwarded-For is believed "
        "(the client is the nearest address not in this list).",
    )
    redis_url: str = setting(
        "",
        "Redis shared by several instances (redis://host:6379/0): Socket.IO fan-out, rate "
        "limits, the session directory. Empty: everything stays in this process.",
    )
    instance_lease: float = setting(
        10.0, "Seconds an instance's lease in Redis lasts without renewal (with redis_url)."
    )
    instance_name: str = setting(
        "",
        "A stable name for this server (e.g. its container's name). At start-up it removes "
        "sandboxes left by an earlier run of the same name even when it cannot see that "
        "run's processes (a server in a container gets a new PID namespace each start). "
        "Two live servers must never share a name.",
    )
    shutdown_grace: float = setting(
        30.0,
        "On SIGTERM, seconds running programs may still finish before they are cancelled.",
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        "Comma-separated browser origins allowed besides the server's own and loopback "
        "(`*` allows any, without credentials).",
    )
    allowed_hosts: tuple[str, ...] = setting(
        (),
        "Comma-separated names a request's Host may be besides loopback names and the "
        "--host address (`.example.org` also allows its subdomains; `*` allows any). "
        "The defence against DNS rebinding; ignored by the local runtime.",
    )
    log_level: str = setting(
        "info", "Logging level.", choices=("debug", "info", "warning", "error")
    )

    def validate(self) -> Settings:
        for check in _CHECKS:
            check(self)
        return self

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def _need(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {why}")


def _check_port(s: Settings) -> None:
    _need(0 <= s.port <= 65535, "port", "must be between 0 and 65535")


def _check_code_size(s: Settings) -> None:
    _need(
        0 < s.max_code_bytes <= MAX_CODE_BYTES_CEILING,
        "max_code_bytes",
        f"must be between 1 and {MAX_CODE_BYTES_CEILING}",
    )


def _check_scheduling(s: Settings) -> None:
    _need(s.pool_size >= 0, "pool_size", "must be 0 or more")
    _need(s.engine_concurrency > 0, "engine_concurrency", "must be positive")
    _need(s.pool_share_window >= 0, "pool_share_window", "must be 0 or more")
    _need(s.pool_paced_rate >= 0, "pool_paced_rate", "must be 0 or more")
    _need(s.pool_paced_after >= 1, "pool_paced_after", "must be at least 1")
    _need(s.pool_paced_after_learner >= 1, "pool_paced_after_learner", "must be at least 1")
    _need(s.pool_paced_waiting >= 1, "pool_paced_waiting", "must be at least 1")
    _need(s.pool_memory_mb >= 0, "pool_memory_mb", "must be 0 or more")
    _need(s.pool_linger >= 0, "pool_linger", "must be 0 or more")
    _need(s.queue_max >= 0, "queue_max", "must be 0 or more")
    _need(s.shutdown_grace >= 0, "shutdown_grace", "must be 0 or more")


def _check_redis(s: Settings) -> None:
    _need(
        not s.redis_url or s.redis_url.startswith(("redis://", "rediss://", "unix://")),
        "redis_url",
        "must be a redis:// or rediss:// URL",
    )


def _check_sandbox_uids(s: Settings) -> None:
    _need(
        65536 <= s.sandbox_uid_base <= 2**31 - 2**24,
        "sandbox_uid_base",
        "must be between 65536 and 2130706432 (above host users, below 2^31)",
    )


_MUST_BE_POSITIVE = (
    "max_stdin_bytes",
    "max_input_bytes",
    "max_session_input_bytes",
    "memory_limit_mb",
    "pids_limit",
    "max_sessions_per_ip",
    "max_clients_per_ip",
    "max_connections_per_ip",
    "max_finished_sessions",
    "finished_memory_mb",
    "tmpfs_size_mb",
    "tmpfs_inodes",
    "shm_size_mb",
    "nofile_limit",
    "output_limit_bytes",
    "max_files",
    "max_file_bytes",
    "max_files_bytes",
    "max_args",
    "max_args_bytes",
    "files_out_max_bytes",
    "files_out_total_bytes",
    "display_max_bytes",
    "display_max_count",
    "display_max_pixels",
    "max_sessions",
    "term_rows",
    "term_cols",
    "detector_interval_ms",
    "time_limit",
    "input_wait_limit",
    "cpus",
    "docker_timeout",
    "session_ttl",
    "disconnect_grace",
    "instance_lease",
    "http_idle_timeout",
    "http_body_timeout",
)


def _check_positive(s: Settings) -> None:
    for name in _MUST_BE_POSITIVE:
        _need(getattr(s, name) > 0, name, "must be positive")


def _check_identity(s: Settings) -> None:
    problem = s.identity_problem()
    _need(problem is None, *(problem or ("", "")))


def _check_memory_floor(s: Settings) -> None:
    _need(s.memory_limit_mb >= 16, "memory_limit_mb", "must be at least 16")
    _need(s.files_out_max_count >= 0, "files_out_max_count", "must be 0 or more")
    _need(
        s.max_files_bytes < s.tmpfs_size_mb << 20,
        "max_files_bytes",
        "must be less than tmpfs_size_mb (the files are written into /tmp)",
    )


def _check_local_runtime(s: Settings) -> None:
    if s.runtime == "local" and not s.allow_unsafe_local:
        _need(
            is_loopback(s.host),
            "runtime",
            "the local runtime is unsandboxed and only listens on a loopback "
            "address (set allow_unsafe_local to override)",
        )


# The checks run in this order and the first failure is the one reported, so the order
# is part of what an operator sees when several settings are wrong at once.
_CHECKS: tuple[Callable[[Settings], None], ...] = (
    _check_port,
    _check_code_size,
    _check_scheduling,
    _check_redis,
    _check_sandbox_uids,
    _check_positive,
    _check_memory_floor,
    _check_identity,
    _check_local_runtime,
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, then the command line; validated."""
    environ = os.environ if environ is None else environ
    fields = dataclasses.fields(Settings)
    args = build_parser(fields).parse_args(argv)
    values: dict[str, Any] = {}
    for f in fields:
        raw = environ.get(env_name(f.name))
        if raw is not None:
            values[f.name] = parse_value(f, raw)
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = parse_value(f, given) if isinstance(given, str) else given
    return Settings(**values).validate()
