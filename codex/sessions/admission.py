"""Who the client is, how often it may start or join executions, and whether one more
program may run now.

Moving-window limits per client IP from the `limits` library, with in-memory storage
by default and a storage URI (Redis) shared by several instances. The client's IP is
the peer's address, or, when the peer is a configured trusted proxy, the nearest
address in X-Forwarded-For that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from codex.config import Settings
from codex.errors import ConfigError, NoCapacity, RateLimited, Unavailable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Sequence[str]) -> list[Network]:
    try:
        return [ipaddress.ip_network(e, strict=False) for e in entries]
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies: {exc}") from None


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address to account a request to (X-Forwarded-For only from trusted proxies)."""
    address = peer or "unknown"
    if not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, trusted):
            return hop
    return address


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        uri = settings.rate_limit_storage or "memory://"
        if uri == "memory://" and settings.redis_url:
            uri = settings.redis_url  # several instances: one budget per client
        if not uri.startswith("async+"):
            uri = "async+" + uri  # the IOLoop never waits on a blocking client
        options = {"implementation": "redispy"} if "redis" in uri else {}
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri, **options))
        self._limits: dict[str, RateLimitItem] = {}
        for action, spec in (
            ("execute", settings.rate_limit_execute),
            ("join", settings.rate_limit_join),
            ("auth_failure", settings.rate_limit_auth_failures),
        ):
            if spec:
                try:
                    self._limits[action] = parse(spec)
                except ValueError:
                    raise ConfigError(f"rate_limit_{action}: {spec!r} is not a rate") from None
        self.rejections = 0

    async def check(self, action: str, client: str) -> None:
        """RateLimited if `client` has no `action` left, without counting one."""
        item = self._limits.get(action)
        if item is not None and not await self._limiter.test(item, action, client):
            stats = await self._limiter.get_window_stats(item, action, client)
            reset = max(1, math.ceil(stats.reset_time - time.time()))
            self.rejections += 1
            raise RateLimited(
                f"Too many failed attempts; try again in {reset} s.", retry_after=reset
            )

    async def hit_rate(self, action: str, client: str, per_minute: int) -> None:
        """Count one `action` against a rate of the client's own (an identity's claim)."""
        item = parse(f"{per_minute}/minute")
        if not await self._limiter.hit(item, action + "-own", client):
            self.rejections += 1
            raise RateLimited(
                f"At most {per_minute} {action}s a minute are allowed for you.", retry_after=60
            )

    async def hit(self, action: str, client: str) -> dict[str, str]:
        """Count one `action` by `client`; raises RateLimited over the limit. Returns
        the RateLimit-* headers describing what is left."""
        item = self._limits.get(action)
        if item is None:
            return {}
        allowed = await self._limiter.hit(item, action, client)
        stats = await self._limiter.get_window_stats(item, action, client)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            self.rejections += 1
            raise RateLimited(
                f"Too many requests to {action}; try again in {reset} s.",
                retry_after=reset,
                headers=headers,
            )
        return headers


def check_room(s: Settings, *, accepting: bool, running: int, mine: int, queued: int = 0) -> bool:
    """May one more program start now (False), or wait its turn in the queue (True):
    the server's cap and its queue (codex.sessions.waitlist), then the client's own."""
    if not accepting:
        raise Unavailable("The server is shutting down; try another one.")
    wait = running >= s.max_sessions or queued > 0  # nobody overtakes the line
    if wait and queued >= s.queue_max:
        raise NoCapacity("Too many programs are running and waiting; try again shortly.")
    if mine >= s.max_sessions_per_ip:
        raise RateLimited(
            f"At most {s.max_sessions_per_ip} programs may run at once from one address.",
            retry_after=2,
        )
    return wait
