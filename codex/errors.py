"""One error hierarchy. Each error knows its HTTP status and its wire `code`, so every
transport renders it the same way: ``{"error": "<sentence>", "code": "<machine_code>"}``.
"""

from __future__ import annotations

from typing import Any


class CodexError(Exception):
    status = 500
    code = "internal_error"
    retry_after: int | None = None

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        if retry_after is not None:
            self.retry_after = retry_after
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}


class ConfigError(CodexError):
    code = "config_error"


class BadRequest(CodexError):
    status = 400
    code = "bad_request"


class MalformedJson(BadRequest):
    code = "malformed_json"


class InvalidField(BadRequest):
    code = "invalid_field"


class Unauthorized(CodexError):
    """No valid credential: missing, malformed, expired, badly signed."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="codex"'}, **extra)


class Forbidden(CodexError):
    """A valid identity, on a session that is not theirs."""

    status = 403
    code = "forbidden"


class LimitTooHigh(CodexError):
    """A request's own limit above the server's: the cap is named."""

    status = 422
    code = "limit_too_high"


class PayloadTooLarge(CodexError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(CodexError):
    status = 415
    code = "unsupported_media_type"


class UnsupportedLanguage(CodexError):
    status = 422
    code = "unsupported_language"


class PolicyViolation(CodexError):
    status = 422
    code = "policy_violation"


class SessionNotFound(CodexError):
    status = 404
    code = "session_not_found"


class NotFound(CodexError):
    status = 404
    code = "not_found"


class SessionFinished(CodexError):
    status = 409
    code = "session_finished"


class Unavailable(CodexError):
    status = 503
    code = "unavailable"
    retry_after = 5


class RateLimited(CodexError):
    status = 429
    code = "rate_limited"
    retry_after = 1


class RuntimeUnavailable(Unavailable):
    code = "runtime_unavailable"


class NoCapacity(Unavailable):
    code = "no_capacity"
    retry_after = 2


class HostNotAllowed(CodexError):
    status = 403
    code = "host_not_allowed"


class SandboxError(CodexError):
    """The engine failed while starting or running an execution."""

    code = "internal_error"


def text_field(value: object, name: str) -> str:
    """A string field that is valid Unicode (JSON allows lone surrogates, which no
    terminal can be sent); anything else is the error naming the field."""
    if not isinstance(value, str):
        raise field_error(name, "a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidField(f"Field '{name}' is not valid Unicode.", field=name) from None
    return value


def field_error(name: str, expected: str) -> InvalidField:
    return InvalidField(f"Field '{name}' is required and must be {expected}.", field=name)
