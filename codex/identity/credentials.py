"""Credentials to identities: an API key (compared by hash, in constant time) or a
learner token (a JWT verified with PyJWT: the algorithm fixed by the server's key,
`exp` required, `nbf`, `iss` and `aud` checked when configured).

A token's limit claims can only lower the server's limits: ``{"codex": {"timeLimit":
5, "memoryLimitMb": 128, "executionsPerMinute": 10}}``; above the server's they are
the server's. ``observe`` lists session ids its holder may watch (a teacher's view).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from codex.config import Settings
from codex.errors import ConfigError, Unauthorized

MAX_CREDENTIAL_CHARS = 8192  # longer than any key or token a host mints
ASYMMETRIC = ["RS256", "ES256"]


LEARNER = "sub:"  # the subject of a learner's token: one person, never a class


def is_learner(subject: str) -> bool:
    return subject.startswith(LEARNER)


@dataclass(frozen=True)
class Identity:
    """Who: ``subject`` keys their budgets and owns their sessions."""

    subject: str  # LEARNER + <sub> for a learner, "key:<digest prefix>" for an API key
    time_limit: float | None = None
    memory_limit_mb: int | None = None
    executions_per_minute: int | None = None
    observe: frozenset[str] = field(default_factory=frozenset)


class Authenticator:
    def __init__(self, s: Settings) -> None:
        self._keys = [_digest(k) for k in _read_keys(s.api_keys)]  # never the keys
        self._issuer, self._audience, self._leeway = (
            s.token_issuer,
            s.token_audience,
            s.token_leeway,
        )
        self._caps = (s.time_limit, s.memory_limit_mb)
        self._key: str | bytes | None = None
        self._algorithms: list[str] = []
        if s.token_secret:
            self._key, self._algorithms = s.token_secret, ["HS256"]
        elif s.token_public_key:
            try:
                self._key = Path(s.token_public_key).read_bytes()
            except OSError as exc:
                raise ConfigError(f"token_public_key: cannot read it ({exc.strerror})") from exc
            self._algorithms = ASYMMETRIC

    @property
    def enabled(self) -> bool:
        return bool(self._keys or self._key)

    def authenticate(self, credential: str | None) -> Identity | None:
        """None when identity is off; else the identity, or Unauthorized saying what is
        wrong (never echoing the credential)."""
        if not self.enabled:
            return None
        if not credential:
            raise Unauthorized("A credential is required: an API key or a learner token.")
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise Unauthorized("The credential is too long to be a key or a token.")
        digest = _digest(credential)
        if any(hmac.compare_digest(digest, k) for k in self._keys):
            return Identity("key:" + digest.hex()[:16])
        if self._key is None:
            raise Unauthorized("The API key is not valid.")
        return self._token(credential)

    def _token(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=self._algorithms,
                audience=self._audience or None,
                issuer=self._issuer or None,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": bool(self._audience)},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"The token has no {exc.claim!r} claim.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(_refusal(exc)) from None
        return _identity(claims, *self._caps)


# What each refusal says, most specific first (PyJWT's errors are subclasses of one
# another); never the token itself.
REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf)."),
    (jwt.InvalidAudienceError, "The token is not for this audience (aud)."),
    (jwt.InvalidIssuerError, "The token is not from the expected issuer (iss)."),
    (jwt.InvalidAlgorithmError, "The token's algorithm is not the one this server uses."),
    (jwt.InvalidSignatureError, "The token's signature is not valid."),
)


def _refusal(exc: Exception) -> str:
    for kind, message in REFUSALS:
        if isinstance(exc, kind):
            return message
    return "The credential is neither an API key nor a valid token."


def _identity(claims: dict[str, Any], time_cap: float, memory_cap: int) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise Unauthorized("The token's 'sub' claim is not a learner's name.")
    found = claims.get("codex")
    limits: dict[str, Any] = found if isinstance(found, dict) else {}
    observe = claims.get("observe")
    watched = (
        frozenset(x for x in observe if isinstance(x, str))
        if isinstance(observe, list)
        else frozenset()
    )
    memory = _lower(limits.get("memoryLimitMb"), memory_cap)
    per_minute = _lower(limits.get("executionsPerMinute"), None)
    return Identity(
        LEARNER + sub,
        time_limit=_lower(limits.get("timeLimit"), time_cap),
        memory_limit_mb=int(memory) if memory is not None else None,
        executions_per_minute=int(per_minute) if per_minute is not None else None,
        observe=watched,
    )


def _lower(claim: object, cap: float | None) -> float | None:
    """A limit claim, which may only lower ``cap``; None when it does not."""
    if isinstance(claim, bool) or not isinstance(claim, (int, float)) or claim <= 0:
        return None
    if cap is not None and claim >= cap:
        return None
    return float(claim)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _read_keys(entries: tuple[str, ...]) -> list[str]:
    keys: list[str] = []
    for entry in entries:
        if not entry.startswith("@"):
            keys.append(entry.strip())
            continue
        try:
            text = Path(entry[1:]).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"api_keys: cannot read {entry[1:]} ({exc.strerror})") from exc
        keys.extend(line.strip() for line in text.splitlines() if line.strip())
    return [k for k in keys if k]


def bearer(header: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <credential>` header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <credential>'.")
    return value.strip()
