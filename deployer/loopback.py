"""Which hosts are this machine: the one rule for "plain http is allowed here" and "this is the emulator".

Per RFC 6761 section 6.3, ``localhost`` and every name under ``.localhost`` are loopback names
(resolvers and DNS servers must never send them elsewhere); W3C Secure Contexts (section 3.1) trusts
``*.localhost`` the same way. So ``localhost``, ``*.localhost`` (with or without the final dot),
127.0.0.0/8 and ::1 count; any other name does not, whatever it resolves to.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """True for localhost, *.localhost, 127.0.0.0/8 and ::1 (a hostname, no port or brackets)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback(url: str | None) -> bool:
    """True for a URL whose host is a loopback host (the emulator); False for None or no host."""
    if not url:
        return False
    return is_loopback_host(urlsplit(url).hostname or "")
