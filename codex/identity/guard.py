"""Authentication as every transport does it: failures counted per address (a setting
of their own), and an address over that budget refused before its credential is even
looked at, so keys and tokens cannot be guessed at speed."""

from __future__ import annotations

import logging

from codex.config import Settings
from codex.errors import RateLimited, Unauthorized
from codex.identity.credentials import Authenticator, Identity
from codex.sessions.admission import RateLimiter

log = logging.getLogger(__name__)

AUTH_FAILURE = "auth_failure"  # the rate limiter's action for failed attempts


class Guard:
    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.authenticator = Authenticator(settings)
        self.limiter = limiter

    @property
    def enabled(self) -> bool:
        return self.authenticator.enabled

    async def identify(self, credential: str | None, address: str) -> Identity | None:
        """The identity (None with identity off); Unauthorized, or RateLimited for an
        address that failed too often."""
        if not self.enabled:
            return None
        await self.limiter.check(AUTH_FAILURE, address)
        try:
            return self.authenticator.authenticate(credential)
        except Unauthorized as exc:
            log.info("authentication failed from %s: %s", address, exc.message)
            try:
                await self.limiter.hit(AUTH_FAILURE, address)
            except RateLimited:
                pass  # this one is answered 401; the next is refused before the check
            raise
