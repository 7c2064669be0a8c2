"""Where a call goes: the regional form of an API endpoint override, as gcloud derives it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit


def regional_endpoint(base: str, region: str) -> str:
    """Where a Knative-style call of ``region`` goes through the endpoint override ``base``.

    Cloud Run's v1 API addresses services and revisions by location (``/v1/projects/P/locations/R``),
    but jobs, executions and tasks only as ``namespaces/P`` on a regional endpoint. gcloud derives
    that endpoint from an override by prefixing the region to its host
    (command_lib/run/connection_context.DeriveRegionalEndpoint): so does this, for a host name. An
    IP address or ``localhost`` (an emulator) has no such name to resolve: it is used as it is, and
    :func:`regional_host` names the region in the ``Host`` header instead.
    """
    if not _has_regional_name(base):
        return base
    parts = urlsplit(base)
    return urlunsplit(parts._replace(netloc=f"{region}-{parts.netloc}"))


def regional_host(base: str, region: str) -> str | None:
    """The ``Host`` header that names ``region`` for an override with no regional name, else None.

    gcloud would call ``http://europe-west1-localhost:PORT`` (a name that resolves only through a
    hosts file); connecting to the address as given while sending that name as ``Host`` reaches the
    same server and keeps the region, so one emulator serves every region's jobs.
    """
    if _has_regional_name(base):
        return None
    return f"{region}-{urlsplit(base).netloc}"


def _has_regional_name(base: str) -> bool:
    host = urlsplit(base).hostname or ""
    return bool(host) and host != "localhost" and not _is_ip(host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
