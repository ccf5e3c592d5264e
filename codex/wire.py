"""What clients see, defined once: session states, verdict statuses, event names, the
result object and the session id's shape.

Every transport, the OpenAPI document and the cluster directory take these from here,
so a status or an event cannot be spelled two ways. (Terminal size caps live with the
screen model they protect: codex.sessions.sizes.)
"""

from __future__ import annotations

import secrets
from typing import Any

# A session's state (GET /api/sessions/<id> `state`). `queued`: waiting for a free slot
# (max_sessions run), first come first served.
QUEUED, STARTING, RUNNING, FINISHED = "queued", "starting", "running", "finished"
STATES = (QUEUED, STARTING, RUNNING, FINISHED)

# The verdict (`execution_complete` and the result's `status`).
OK = "ok"
SYNTAX_ERROR = "syntax_error"
RUNTIME_ERROR = "runtime_error"
TIMEOUT = "timeout"
MEMORY_LIMIT = "memory_limit"
OUTPUT_LIMIT = "output_limit"
CANCELLED = "cancelled"
INTERNAL_ERROR = "internal_error"
STATUSES = (
    OK,
    SYNTAX_ERROR,
    RUNTIME_ERROR,
    TIMEOUT,
    MEMORY_LIMIT,
    OUTPUT_LIMIT,
    CANCELLED,
    INTERNAL_ERROR,
)

# Events a client receives (Socket.IO event names; terminado message kinds) and sends.
OUTPUT = "output"
INPUT_REQUIRED = "input_required"
ERROR = "error"
COMPLETE = "execution_complete"
INPUT = "input"
DISPLAY = "display"  # an image the program showed (Jupyter's display_data content)
# A queued execution's place: {sessionId, position (1: next), ahead (position - 1)}.
QUEUE_POSITION = "queued"

# Which of the program's streams an `output` event's text came from (its `stream`).
STDOUT, STDERR = "stdout", "stderr"

# Session ids: 192 random bits, URL-safe base64; knowing the id is the key. Routes
# accept the wider ID_CHARS so that a wrong id gets a JSON 404, not a routing miss.
ID_CHARS = r"[A-Za-z0-9_\-]{1,64}"
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"  # the same, as the OpenAPI document writes it


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def result_object(
    session_id: str,
    status: str,
    *,
    exit_code: int | None = None,
    signal: str | None = None,
    duration_ms: int = 0,
    cpu_ms: int | None = None,
    memory_peak_bytes: int | None = None,
    output_bytes: int = 0,
    truncated: bool = False,
) -> dict[str, Any]:
    """The `execution_complete` payload and the session's `result`."""
    return {
        "sessionId": session_id,
        "status": status,
        "exitCode": exit_code,
        "signal": signal,
        "durationMs": duration_ms,
        "cpuMs": cpu_ms,
        "memoryPeakBytes": memory_peak_bytes,
        "outputBytes": output_bytes,
        "truncated": truncated,
    }


# The result object's fields, for the OpenAPI document (kept beside result_object).
RESULT_SCHEMA: dict[str, Any] = {
    "sessionId": {"type": "string"},
    "status": {"type": "string", "enum": list(STATUSES)},
    "exitCode": {"type": "integer", "nullable": True},
    "signal": {"type": "string", "nullable": True},
    "durationMs": {"type": "integer", "description": "Running time."},
    "cpuMs": {"type": "integer", "nullable": True},
    "memoryPeakBytes": {"type": "integer", "nullable": True},
    "outputBytes": {"type": "integer"},
    "truncated": {"type": "boolean"},
    "files": {
        "type": "array",
        "description": "Files the program created or changed in its working directory.",
        "items": {"$ref": "#/components/schemas/OutputFile"},
    },
    "filesUnlisted": {
        "type": "integer",
        "description": "Files omitted beyond those listed (only when there are any).",
    },
}
