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
    IP address or ``localhost`` (an emulator) has no regional form and is used as it is.
    """
    parts = urlsplit(base)
    host = parts.hostname or ""
    if not host or host == "localhost" or _is_ip(host):
        return base
    return urlunsplit(parts._replace(netloc=f"{region}-{parts.netloc}"))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
