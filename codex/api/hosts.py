"""Which `Host` a request may name: the DNS-rebinding defence, asked once per request.

A web page on an attacker's domain can make that name resolve to 127.0.0.1 and then
talk to a CodeX on the developer's machine as if it were its own origin: the Origin
check passes, because Origin and Host agree. Only the Host tells it apart. As in
Jupyter (``local_hostnames``, ``allow_remote_access``), a request is served when its
Host is

- a loopback name (``localhost``, ``*.localhost``) or address;
- the name or address the server was told to listen on (``--host``);
- in ``allowed_hosts`` (an entry ``.example.org`` allows that domain and its
  subdomains; ``*`` allows any Host, for a deployment behind a proxy that checks it);
- an IP address, when the server listens on a non-loopback address (an address is
  not a name, and cannot be rebound).

With the unsandboxed ``local`` runtime only the first applies, whatever the settings.
A request without a Host (HTTP/1.0, not a browser) is served.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from codex.config import Settings, is_loopback

WILDCARD_ADDRESSES = {"", "0.0.0.0", "::", "[::]"}


def host_name(header: str) -> str | None:
    """The name in a Host header, lower-case, without port or brackets; None if it
    is not a valid Host."""
    if any(ord(c) < 33 or ord(c) == 127 for c in header):
        return None
    try:
        name = urlsplit("//" + header).hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _loopback_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost") or is_loopback(name)


def host_allowed(header: str | None, settings: Settings) -> bool:
    if not header:
        return True
    name = host_name(header)
    if name is None:
        return False
    if _loopback_name(name):
        return True
    if settings.runtime == "local":
        return False  # unsandboxed: a foreign Host would be code execution on this machine
    for entry in settings.allowed_hosts:
        entry = entry.lower().rstrip(".")
        if (
            entry == "*"
            or name == entry
            or (entry.startswith(".") and (name.endswith(entry) or name == entry[1:]))
        ):
            return True
    own = settings.host.lower().strip("[]")
    if settings.host not in WILDCARD_ADDRESSES and name == own:
        return True
    return _is_ip(name) and not settings.is_loopback
