"""The OpenAPI description matches the route table and what the handlers answer."""

from __future__ import annotations

import re

import pytest

from codex.api.http import routes
from codex.api.openapi import OPENAPI
from codex.sessions.registry import SessionRegistry
from tests.harness import running_app

METHODS = ("get", "post", "put", "delete", "patch")


def _template(pattern: str) -> str:
    """The route's groups named as the document names them, in order."""
    path = pattern.replace("\\.", ".")
    second = "{path}" if "/files/" in path else "{index}"
    names = iter(("{sessionId}", second))
    return re.sub(r"\([^)]*\)", lambda _: next(names), path)


def test_every_route_is_described_and_nothing_else() -> None:
    table = routes(SessionRegistry.__new__(SessionRegistry))
    described = {path for path in OPENAPI["paths"]}
    assert {_template(pattern) for pattern, _, _ in table} == described
    for pattern, handler, _ in table:
        spec = OPENAPI["paths"][_template(pattern)]
        implemented = {
            m
            for m in METHODS
            if m.upper() in handler.SUPPORTED_METHODS
            and getattr(handler, m) is not getattr(handler.__mro__[-2], m, None)
        }
        assert implemented == {m for m in spec if m in METHODS}, pattern


@pytest.mark.gen_test(timeout=60)
async def test_handlers_answer_with_the_described_statuses() -> None:
    async with running_app(runtime="local") as h:
        served = await h.request("GET", "/api/openapi.json")
        assert served.status == 200 and served.body == OPENAPI
        checks = [
            ("POST", "/api/execute", {"code": "print(1)"}),
            ("POST", "/api/execute", {"code": 1}),
            ("POST", "/api/execute", {"code": "1", "language": "cobol"}),
            ("GET", "/api/sessions/unknown", None),
            ("DELETE", "/api/sessions/unknown", None),
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
        ]
        for method, path, body in checks:
            resp = await h.request(method, path, body)
            template = "/api/sessions/{sessionId}" if path.startswith("/api/sessions/") else path
            responses = OPENAPI["paths"][template][method.lower()]["responses"]
            assert str(resp.status) in responses, (method, path, resp.status)
            schema = responses[str(resp.status)]["content"]["application/json"]["schema"]["$ref"]
            required = OPENAPI["components"]["schemas"][schema.rsplit("/", 1)[1]].get(
                "required", []
            )
            assert set(required) <= set(resp.body), (method, path, resp.body)
