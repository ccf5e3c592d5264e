"""What a client asks for, parsed and validated in one place for every transport.

Each function returns the valid value or raises the error naming the field (400 on
HTTP, an `error` event on Socket.IO and the terminal WebSockets), so an HTTP body, a
Socket.IO payload and a terminado message are held to the same rules.
"""

from __future__ import annotations

from typing import Any

from codex.api.request_options import parse_args, parse_files, parse_flag, parse_limits
from codex.config import Settings
from codex.errors import PayloadTooLarge, text_field
from codex.languages import normalize_language
from codex.sessions.registry import ExecuteRequest
from codex.sessions.sizes import valid_size


def parse_execute(body: dict[str, Any], s: Settings) -> ExecuteRequest:
    """An execute request (HTTP body or Socket.IO payload).

    An optional field that is null is the same as one left out (what the OpenAPI
    document's ``nullable`` says); tests/unit/test_wire_bugs.py keeps the two in step."""
    code = text_field(body.get("code"), "code")
    language = body.get("language")
    language = "python" if language is None else text_field(language, "language")
    stdin = body.get("stdin")
    stdin = "" if stdin is None else text_field(stdin, "stdin")
    if len(code.encode("utf-8")) > s.max_code_bytes:
        raise PayloadTooLarge(
            f"The code is larger than the limit of {s.max_code_bytes} bytes.", field="code"
        )
    if len(stdin.encode("utf-8")) > s.max_stdin_bytes:
        raise PayloadTooLarge(
            f"The stdin text is larger than the limit of {s.max_stdin_bytes} bytes.",
            field="stdin",
        )
    rows, cols = body.get("rows"), body.get("cols")
    if rows is not None or cols is not None:
        rows, cols = valid_size(rows, cols)
    return ExecuteRequest(
        code,
        normalize_language(language),
        stdin,
        rows,
        cols,
        files=parse_files(body.get("files"), s),
        args=parse_args(body.get("args"), s),
        interactive=parse_flag(body.get("interactive"), "interactive"),
        limits=parse_limits(body.get("limits"), s),
    )


def typed_text(value: object, s: Settings, field: str) -> str:
    """One message of input as text (an `input` event, a terminado `stdin`)."""
    text = text_field(value, field)
    typed_bytes(text.encode("utf-8"), s, field)
    return text


def typed_bytes(data: bytes, s: Settings, field: str) -> bytes:
    """One message of input as bytes (also a raw terminal WebSocket's frame)."""
    if len(data) > s.max_input_bytes:
        raise PayloadTooLarge(
            f"A message may carry at most {s.max_input_bytes} bytes of input.", field=field
        )
    return data


def terminal_size(rows: object, cols: object) -> tuple[int, int]:
    """A terminal size from a client (rows and cols together)."""
    return valid_size(rows, cols)
