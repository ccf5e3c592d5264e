"""Which browser origins may talk to the server: its own, loopback, and the configured
ones. Every transport asks this one function (cross-site WebSocket hijacking is how
IPython's CVE-2014-3429 happened)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from codex.config import is_loopback


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    if not origin:
        return True  # not a browser: nothing to hijack
    if "*" in allowed or origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if host and parts.netloc.lower() == host.lower():
        return True
    return is_loopback(parts.hostname)
