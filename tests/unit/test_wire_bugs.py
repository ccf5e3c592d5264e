"""What the server says on the wire matches what it documents: /metrics types, the
OpenAPI request schema against the real handler. (The README's Node example, which
needs Node: tests/e2e/test_readme_node.py.)

No Docker: the server runs the local runtime and the programs posted here are syntax
errors (answered without running anything) or trivial.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from codex.api.openapi import OPENAPI
from tests.harness import running_app

# ---------------------------------------------------------------------------------------
# /metrics: what only ever goes up is a counter named ..._total


@pytest.mark.gen_test(timeout=60)
async def test_metrics_counts_are_counters_named_total() -> None:
    async with running_app(runtime="local", rate_limit_execute="1/minute") as h:
        first = await h.request("POST", "/api/execute", {"code": "("})
        refused = await h.request("POST", "/api/execute", {"code": "("})
        assert (first.status, refused.status) == (201, 429)
        resp = await h.request("GET", "/metrics")
    text = resp.body
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("codex_pool_hits", "codex_pool_misses", "codex_pool_paced", "codex_rate_limited"):
        assert families[name].type == "counter", name
        assert f"# TYPE {name}_total counter" in text, name
        assert re.search(rf"^{name} ", text, re.M) is None, name  # the old gauge is gone
    values = {s.name: s.value for f in families.values() for s in f.samples}
    assert values["codex_rate_limited_total"] == 1
    assert values["codex_pool_hits_total"] == values["codex_pool_misses_total"] == 0
    assert values["codex_pool_paced_total"] == 0
    # Every counter is exposed as <name>_total; gauges are levels, never "since start".
    for family in families.values():
        if family.type == "counter":
            assert f"{family.name}_total" in values, family.name
        if family.type == "gauge" and not family.name.endswith("_created"):
            assert "since start" not in family.documentation, family.name


# ---------------------------------------------------------------------------------------
# The OpenAPI ExecuteRequest accepts exactly what POST /api/execute accepts


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema to JSON Schema: ``nullable: true`` becomes a null type."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _execute_schema() -> Any:
    return _json_schema(copy.deepcopy(OPENAPI["components"]["schemas"]["ExecuteRequest"]))


CODE = "("  # a syntax error: 201 without a sandbox

REQUESTS: list[Any] = [
    {"code": CODE},
    {"code": CODE, "other": 1},  # other fields are ignored
    {},
    {"code": None},
    {"code": 1},
    {"code": CODE, "language": "python"},
    {"code": CODE, "language": "python3"},
    {"code": CODE, "language": "PYTHON"},
    {"code": CODE, "language": "Python3"},
    {"code": CODE, "language": None},
    {"code": CODE, "language": "cobol"},
    {"code": CODE, "language": ""},
    {"code": CODE, "language": "python "},
    {"code": CODE, "language": "python\n"},
    {"code": CODE, "language": "\uff30ython"},  # a fullwidth P
    {"code": CODE, "language": 3},
    {"code": CODE, "stdin": ""},
    {"code": CODE, "stdin": "Ada\n"},
    {"code": CODE, "stdin": None},
    {"code": CODE, "stdin": 5},
    {"code": CODE, "stdin": ["a"]},
    {"code": CODE, "rows": 24, "cols": 80},
    {"code": CODE, "rows": 1000, "cols": 1},
    {"code": CODE, "rows": None, "cols": None},
    {"code": CODE, "rows": None},
    {"code": CODE, "rows": 24.0, "cols": 80},  # not an integer before draft 6
    {"code": CODE, "rows": 24},
    {"code": CODE, "cols": 80},
    {"code": CODE, "rows": 24, "cols": None},
    {"code": CODE, "rows": 0, "cols": 80},
    {"code": CODE, "rows": 24, "cols": 1001},
    {"code": CODE, "rows": 24.5, "cols": 80},
    {"code": CODE, "rows": True, "cols": 80},
    {"code": CODE, "rows": "24", "cols": "80"},
    {"code": CODE, "files": [{"name": "data.csv", "content": "a,b"}]},
    {"code": CODE, "files": [{"name": "lib/.helper.py", "content": "", "encoding": "utf-8"}]},
    {"code": CODE, "files": [{"name": "...", "content": "AA==", "encoding": "base64"}]},
    {"code": CODE, "files": [{"name": "a", "content": "", "encoding": None}], "args": None},
    {"code": CODE, "files": None, "interactive": None, "limits": None},
    {"code": CODE, "files": [{"name": "/etc/passwd", "content": ""}]},
    {"code": CODE, "files": [{"name": "../up", "content": ""}]},
    {"code": CODE, "files": [{"name": "a/./b", "content": ""}]},
    {"code": CODE, "files": [{"name": "a//b", "content": ""}]},
    {"code": CODE, "files": [{"name": "a/", "content": ""}]},
    {"code": CODE, "files": [{"name": "tab\there", "content": ""}]},
    {"code": CODE, "files": [{"name": "back\\slash", "content": ""}]},
    {"code": CODE, "files": [{"name": "main.py", "content": ""}]},
    {"code": CODE, "files": [{"name": "", "content": ""}]},
    {"code": CODE, "files": [{"name": "a"}]},
    {"code": CODE, "files": [{"name": "a", "content": "", "encoding": "latin-1"}]},
    {"code": CODE, "files": {"name": "a", "content": ""}},
    {"code": CODE, "args": ["one", "two words", ""]},
    {"code": CODE, "args": "one"},
    {"code": CODE, "args": [1]},
    {"code": CODE, "args": ["nul\u0000"]},
    {"code": CODE, "interactive": True},
    {"code": CODE, "interactive": "yes"},
    {"code": CODE, "limits": {"timeLimit": 2.5, "memoryLimitMb": 64, "outputLimitBytes": 10}},
    {"code": CODE, "limits": {}},
    {"code": CODE, "limits": {"timeLimit": 0}},
    {"code": CODE, "limits": {"memoryLimitMb": 8}},
    {"code": CODE, "limits": {"memoryLimitMb": 64.5}},
    {"code": CODE, "limits": {"cpus": 1}},
    {"code": CODE, "limits": 5},
    [],
    "print(1)",
]


@pytest.mark.gen_test(timeout=60)
async def test_execute_accepts_exactly_what_the_openapi_schema_allows() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    # OpenAPI 3.0's schemas are JSON Schema draft wright-00, draft 4's validation rules.
    validator = jsonschema_rs.Draft4Validator(_execute_schema())
    disagree = []
    async with running_app(runtime="local", rate_limit_execute="") as h:
        for body in REQUESTS:
            resp = await h.request("POST", "/api/execute", body)
            accepted = resp.status == 201
            if not accepted:
                assert resp.status in (400, 422), (body, resp.status, resp.body)
                assert {"error", "code"} <= set(resp.body), (body, resp.body)
            if accepted != validator.is_valid(body):
                disagree.append((body, resp.status, resp.body))
    assert disagree == []
