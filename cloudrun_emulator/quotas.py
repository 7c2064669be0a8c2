"""Cloud Run's resource limits that change what a write does (rather than refuse it).

Revision tags, https://cloud.google.com/run/quotas: at most 2,000 per project and region. "When the
revision tag limit is exceeded, Cloud Run executes tag cleanup on the service. For the service for
which a new tag is being created, tags that don't have a specified traffic percentage are
automatically deleted in historical order." Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TAG_LIMIT = 2000


def tags(traffic: Iterable[Mapping[str, Any]]) -> set[str]:
    return {t["tag"] for t in traffic if t.get("tag")}


def tag_cleanup(
    traffic: list[dict[str, Any]], born: Mapping[str, int], new: set[str], excess: int
) -> list[dict[str, Any]]:
    """``traffic`` less up to ``excess`` tagged entries without a percentage, oldest tag first (by
    ``born``, the order tags were created); never a tag this write creates. What the cleanup cannot
    free stays (Cloud Run does not document an answer beyond it)."""
    if excess <= 0 or not new:
        return traffic
    old = sorted(
        (born.get(t["tag"], 0), t["tag"])
        for t in traffic
        if t.get("tag") and not t.get("percent") and t["tag"] not in new
    )
    dropped = {tag for _, tag in old[:excess]}
    return [t for t in traffic if t.get("tag") not in dropped]
