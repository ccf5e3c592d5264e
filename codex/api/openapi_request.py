"""The OpenAPI pieces of an execute request's options and of what comes back: files
in and out, arguments, limits, the shell, wait mode (see codex.api.request_options).
Bounds that are settings are described, not fixed in the schema: the document is the
same for every server."""

from __future__ import annotations

from typing import Any

_C = r"[^/\\\u0000-\u001f\u007f]"  # a character of a name's part
_D = r"[^./\\\u0000-\u001f\u007f]"  # ... that is not a dot
_PART = rf"(?:{_D}{_C}*|\.{_D}{_C}*|\.\.{_C}+)"  # any part but "." and ".."
NAME_PATTERN = rf"^{_PART}(?:/{_PART})*$"

FILE_IN: dict[str, Any] = {
    "type": "object",
    "required": ["name", "content"],
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": NAME_PATTERN,
            "not": {"enum": ["main.py"]},
            "description": "A relative path, `/` between its parts (`lib/helper.py`); not "
            "`main.py`, which is the program. Each name once.",
        },
        "content": {"type": "string"},
        "encoding": {
            "type": "string",
            "nullable": True,
            "enum": ["utf-8", "base64", None],
            "default": "utf-8",
        },
    },
}

EXECUTE_OPTIONS: dict[str, Any] = {
    "files": {
        "type": "array",
        "nullable": True,
        "items": FILE_IN,
        "description": "Files written into the program's working directory before it "
        "starts (at most `max_files`, `max_file_bytes` each, `max_files_bytes` in all).",
    },
    "args": {
        "type": "array",
        "nullable": True,
        "items": {"type": "string", "pattern": "^[^\\u0000]*$"},
        "description": "The program's `sys.argv[1:]` (at most `max_args`).",
    },
    "interactive": {
        "type": "boolean",
        "nullable": True,
        "default": False,
        "description": "After the program, a Python shell in its namespace (`>>> `).",
    },
    "limits": {
        "type": "object",
        "nullable": True,
        "additionalProperties": False,
        "description": "The request's own limits, each at most the server's "
        "(above it: 422 `limit_too_high`, with `field` and `cap`).",
        "properties": {
            "timeLimit": {"type": "number", "minimum": 0.1},
            "memoryLimitMb": {"type": "integer", "minimum": 16},
            "outputLimitBytes": {"type": "integer", "minimum": 1},
        },
    },
}

FILE_OUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "size"],
    "properties": {
        "name": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string", "description": "Absent when omitted."},
        "omitted": {"type": "string", "description": "Why it was not collected."},
    },
}

WAIT_PARAMETER: dict[str, Any] = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "`true`: answer 200 when the program has ended, with its result, "
    "output and displays; input comes from `stdin` only (then end of file).",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0"], "default": "false"},
}

WAIT_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["sessionId", "result", "output"],
    "properties": {
        "sessionId": {"type": "string"},
        "result": {"$ref": "#/components/schemas/Result"},
        "output": {"type": "string", "description": "The whole transcript (event view)."},
        "displays": {"type": "array", "items": {"$ref": "#/components/schemas/Display"}},
    },
}

FILE_ROUTE: dict[str, Any] = {
    "get": {
        "summary": "A file the program created or changed, as a download",
        "operationId": "getFile",
        "responses": {
            "200": {
                "description": "The file's bytes (Content-Disposition: attachment).",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            "404": {
                "description": "No such session, or no such collected file.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    },
}

FILE_PATH_PARAMETER: dict[str, Any] = {
    "name": "path",
    "in": "path",
    "required": True,
    "description": "The file's name as listed in `files` (its `/` unescaped).",
    "schema": {"type": "string"},
}
