"""The action's HTTP sessions: requests' own, reading the proxy and CA-bundle variables once.

For every request, requests looks up ``*_proxy``/``no_proxy`` and ``REQUESTS_CA_BUNDLE`` in the
environment, and each lookup walks the whole environment (twice): about 1 ms of CPU with a runner's
hundred-odd variables, the action's own inputs among them. A run polls Cloud Run and its tag URLs
thousands of times, and its environment does not change while it runs, so a session here asks
requests once per origin and keeps the answer: the same proxies, the same ``no_proxy`` exemptions
and the same CA bundle as a plain session, read once.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

__all__ = ["plain", "reading_env_once"]

S = TypeVar("S", bound=requests.Session)


def plain() -> requests.Session:
    """A session with no credentials (the service's own URLs, the emulator, webhooks)."""
    return reading_env_once(requests.Session())


def reading_env_once(session: S) -> S:
    """``session``, looking up its environment settings once per origin and per-call options."""
    merge = session.merge_environment_settings
    known: dict[tuple[Any, ...], Any] = {}

    def merged(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        parts = urlsplit(url)
        given = tuple(sorted((proxies or {}).items()))
        key = (parts.scheme, parts.netloc, given, stream, verify, cert)
        if key not in known:
            known[key] = merge(url, proxies, stream, verify, cert)
        settings = known[key]
        return {**settings, "proxies": dict(settings["proxies"])}  # a copy: the caller may change it

    session.merge_environment_settings = merged  # type: ignore[method-assign,assignment]
    return session
