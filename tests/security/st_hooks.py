"""Schemathesis hooks for tests/security/test_schemathesis.py (loaded through the
SCHEMATHESIS_HOOKS environment variable): one extra check, every error response in the
project's one JSON error shape."""

from __future__ import annotations

import json

import schemathesis


@schemathesis.check
def codex_error_shape(ctx, response, case):
    """A 4xx/5xx answer is JSON: {"error": <non-empty sentence>, "code": <code>}."""
    if response.status_code < 400:
        return None
    ctype = ",".join(response.headers.get("content-type", []))
    if "application/json" not in ctype:
        raise AssertionError(f"error {response.status_code} is not JSON ({ctype!r})")
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"error {response.status_code} body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"error {response.status_code} body is not an object: {body!r}")
    if not isinstance(body.get("error"), str) or not body["error"]:
        raise AssertionError(f"error {response.status_code} has no 'error' sentence: {body!r}")
    if not isinstance(body.get("code"), str) or not body["code"]:
        raise AssertionError(f"error {response.status_code} has no 'code': {body!r}")
    if response.status_code >= 500 and body["code"] not in ("no_capacity", "runtime_unavailable"):
        raise AssertionError(f"server error {response.status_code}: {body!r}")
    return None
