"""The OpenAPI 3 description of the HTTP API, served at /api/openapi.json.

tests/e2e/test_openapi.py checks it against the route table and the handlers' answers.
"""

from __future__ import annotations

import re
from typing import Any

from codex.api.openapi_request import (
    EXECUTE_OPTIONS,
    FILE_OUT,
    FILE_PATH_PARAMETER,
    FILE_ROUTE,
    WAIT_ANSWER,
    WAIT_PARAMETER,
)
from codex.languages import LANGUAGES
from codex.sessions.sizes import MAX_COLS, MAX_DIMENSION, MAX_ROWS
from codex.wire import ID_PATTERN, RESULT_SCHEMA, STATES


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _any_case(names: list[str]) -> str:
    """A pattern matching these names with their ASCII letters in any case."""

    def one(name: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)

    return "^(" + "|".join(one(n) for n in names) + ")$"


def _size(name: str, other: str) -> dict[str, Any]:
    return {
        "type": "integer",
        "nullable": True,
        "minimum": 1,
        "maximum": MAX_DIMENSION,
        "description": f"Terminal {name} the program starts with (only with {other}; "
        f"clamped to {MAX_ROWS} x {MAX_COLS}).",
    }


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": "integer"}}}


_SESSION_ID = {
    "name": "sessionId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ID_PATTERN},
}

_DISPLAY_INDEX = {
    "name": "index",
    "in": "path",
    "required": True,
    "description": "The image's number, from 1, in the order the program showed images.",
    "schema": {"type": "integer", "minimum": 1},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "CodeX",
        "version": "1",
        "description": "Run Python in a hardened container and stream it live. "
        "The live stream is Socket.IO (`/socket.io/`) or a terminal WebSocket "
        "(`/ws/terminal/{sessionId}`): see docs/api.md.",
    },
    "paths": {
        "/api/execute": {
            "post": {
                "summary": "Start an execution",
                "operationId": "execute",
                "parameters": [WAIT_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ExecuteRequest"}
                        }
                    },
                },
                "responses": {
                    "200": _json("With `wait=true`: the program has ended.", "WaitAnswer"),
                    "201": _json("The session; join it to follow the program.", "Created"),
                    "400": _error(
                        "Malformed JSON, a field missing or of the wrong type, or a bad "
                        "file (`field` names it: `files[2].name`)."
                    ),
                    "403": _error("The request's Origin is not allowed."),
                    "413": _error("The code or stdin is larger than the limit."),
                    "415": _error("The body is not application/json."),
                    "422": _error(
                        "The language is not supported, the code breaks the teaching "
                        "policy (`policy_violation`, with `line`), or a limit is above "
                        "the server's (`limit_too_high`, with `cap`)."
                    ),
                    "429": _error(
                        "Too many executions from this address (Retry-After, RateLimit-*)."
                    ),
                    "503": _error(
                        "No sandbox can run now: the engine is down, or max_sessions run "
                        "and queue_max wait (Retry-After)."
                    ),
                },
            }
        },
        "/api/sessions/{sessionId}": {
            "parameters": [_SESSION_ID],
            "get": {
                "summary": "A session's state and, once finished, its verdict",
                "operationId": "getSession",
                "responses": {
                    "200": _json("The session.", "Session"),
                    "404": _error("No session has that id."),
                },
            },
            "delete": {
                "summary": "Stop the program (verdict `cancelled`)",
                "operationId": "cancelSession",
                "responses": {
                    "202": _json("Stopping.", "Cancelled"),
                    "404": _error("No session has that id."),
                },
            },
        },
        "/api/sessions/{sessionId}/displays/{index}": {
            "parameters": [_SESSION_ID, _DISPLAY_INDEX],
            "get": {
                "summary": "One image the program displayed, byte for byte",
                "operationId": "getDisplay",
                "responses": {
                    "200": {
                        "description": "The image, as its own content type.",
                        "content": {
                            mime: {"schema": {"type": "string", "format": "binary"}}
                            for mime in ("image/png", "image/jpeg", "image/svg+xml")
                        },
                    },
                    "404": _error("No such session, or it showed no image of that number."),
                },
            },
        },
        "/api/sessions/{sessionId}/files/{path}": {
            "parameters": [_SESSION_ID, FILE_PATH_PARAMETER],
            **FILE_ROUTE,
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "health",
                "responses": {"200": _json("The process serves.", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the engine answers and the sandbox image exists",
                "operationId": "ready",
                "responses": {
                    "200": _json("Ready.", "Ready"),
                    "503": _json("Not ready; `reason` says why.", "Ready"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "operationId": "metrics",
                "responses": {"200": {"description": "Metrics in the Prometheus text format."}},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3 document."}},
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "code"],
                "properties": {
                    "error": {"type": "string", "description": "A sentence for a person."},
                    "code": {"type": "string", "description": "A machine-readable code."},
                    "field": {"type": "string"},
                },
            },
            "ExecuteRequest": {
                "type": "object",
                "description": "An optional field that is null is the same as one left out.",
                "required": ["code"],
                "properties": {
                    "code": {"type": "string"},
                    "language": {
                        "type": "string",
                        "nullable": True,
                        "pattern": _any_case(sorted(LANGUAGES)),
                        "default": "python",
                        "description": "One of "
                        + ", ".join(f"`{n}`" for n in sorted(LANGUAGES))
                        + ", case-insensitive (ASCII).",
                    },
                    "stdin": {
                        "type": "string",
                        "nullable": True,
                        "default": "",
                        "description": "Text typed ahead, before the program starts reading.",
                    },
                    "rows": _size("height", "cols"),
                    "cols": _size("width", "rows"),
                    **EXECUTE_OPTIONS,
                },
                # rows and cols: both or neither (a null one counts as left out).
                "anyOf": [
                    {"allOf": [_given("rows"), _given("cols")]},
                    {"not": {"anyOf": [_given("rows"), _given("cols")]}},
                ],
            },
            "Created": {
                "type": "object",
                "required": ["sessionId", "status"],
                "properties": {
                    "sessionId": {"type": "string"},
                    "status": {
                        "type": "string",
                        "description": "`running`, or `syntax_error` if it did not compile.",
                    },
                },
            },
            "Result": {
                "type": "object",
                "nullable": True,
                "properties": RESULT_SCHEMA,
            },
            "Session": {
                "type": "object",
                "required": ["sessionId", "state"],
                "properties": {
                    "sessionId": {"type": "string"},
                    "language": {"type": "string"},
                    "state": {"type": "string", "enum": list(STATES)},
                    "queuePosition": {
                        "type": "integer",
                        "nullable": True,
                        "description": "While `queued`: its place in line (1: next to start).",
                    },
                    "createdAt": {"type": "number"},
                    "waitingForInput": {"type": "boolean"},
                    "prompt": {"type": "string", "nullable": True},
                    "detector": {"type": "string"},
                    "owner": {
                        "type": "string",
                        "description": "With redis_url, on a server that does not own it.",
                    },
                    "outputBytes": {"type": "integer"},
                    "screen": {"$ref": "#/components/schemas/Screen"},
                    "displays": {
                        "type": "array",
                        "description": "The images shown, in order (refused ones left out).",
                        "items": {"$ref": "#/components/schemas/Display"},
                    },
                    "files": {
                        "type": "array",
                        "description": "Files the program left (once finished).",
                        "items": {"$ref": "#/components/schemas/OutputFile"},
                    },
                    "result": {"$ref": "#/components/schemas/Result"},
                },
            },
            "OutputFile": FILE_OUT,
            "WaitAnswer": WAIT_ANSWER,
            "Display": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "mime": {
                        "type": "string",
                        "enum": ["image/png", "image/jpeg", "image/svg+xml"],
                    },
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "bytes": {"type": "integer"},
                },
            },
            "Screen": {
                "type": "object",
                "description": "What the terminal shows now (a pyte screen model).",
                "properties": {
                    "rows": {"type": "integer"},
                    "cols": {"type": "integer"},
                    "lines": {"type": "array", "items": {"type": "string"}},
                    "cursor": {
                        "type": "object",
                        "properties": {
                            "row": {"type": "integer"},
                            "col": {"type": "integer"},
                            "hidden": {"type": "boolean"},
                        },
                    },
                },
            },
            "Cancelled": {
                "type": "object",
                "properties": {"sessionId": {"type": "string"}, "state": {"type": "string"}},
            },
            "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
            "Ready": {
                "type": "object",
                "required": ["ready"],
                "properties": {
                    "ready": {"type": "boolean"},
                    "runtime": {"type": "string"},
                    "detector": {"type": "string"},
                    "running": {"type": "integer"},
                    "reason": {"type": "string"},
                },
            },
        }
    },
}

# With identity on (api_keys, token_secret or token_public_key), the session routes
# need a Bearer credential; with it off, none. Both are described: an empty
# requirement, or the bearer scheme.
OPENAPI["components"]["securitySchemes"] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key, or a learner token (JWT) minted by the host application.",
    }
}
for _path, _item in OPENAPI["paths"].items():
    if _path.startswith("/api/sessions") or _path == "/api/execute":
        for _method in ("get", "post", "delete"):
            if _method in _item:
                _item[_method]["security"] = [{}, {"bearer": []}]
                _item[_method]["responses"]["401"] = _error(
                    "Identity is on and the credential is missing, malformed, expired or "
                    "badly signed (WWW-Authenticate: Bearer)."
                )
                if _path != "/api/execute":
                    _item[_method]["responses"]["403"] = _error(
                        "The session belongs to someone else (`forbidden`)."
                    )
OPENAPI["paths"]["/metrics"]["get"]["security"] = [{}, {"bearer": []}]
OPENAPI["paths"]["/metrics"]["get"]["responses"]["401"] = _error(
    "metrics_token is set and the request does not carry it."
)
