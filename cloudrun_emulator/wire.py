"""Google's JSON conventions for the serving API: proto3 pruning, timestamps, the Status a delete returns."""

from __future__ import annotations

import datetime as dt
from typing import Any

API_VERSION = "serving.knative.dev/v1"
NS_PREFIX = "/apis/serving.knative.dev/v1/namespaces"
MAP_FIELDS = frozenset({"labels", "annotations", "limits", "requests", "nodeSelector"})


def now_iso() -> str:
    """RFC 3339 UTC timestamp with microseconds, as Google writes them."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prune(value: Any, keep_entries: bool = False) -> Any:
    """Drop zero, false, empty and null values like proto3 JSON; map entries are always kept."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pruned = item if keep_entries else prune(item, key in MAP_FIELDS)
            if keep_entries or not _is_default(pruned):
                out[key] = pruned
        return out
    if isinstance(value, list):
        return [prune(item) for item in value]
    return value


def _is_default(value: Any) -> bool:
    """Is this the proto3 default (omitted on the wire)?"""
    return value is None or value is False or (not isinstance(value, bool) and value in (0, "", [], {}))


def status_object(name: str, kind: str, uid: str) -> dict[str, Any]:
    """The Kubernetes Status a delete returns."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success",
        "details": {"name": name, "group": "serving.knative.dev", "kind": kind, "uid": uid},
    }
