"""Whether a write whose answer was lost has landed: the fresh read that ``client.CloudRun`` compares
with what it sent before it repeats a write, so a lost response never causes a second, different one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deployer.errors import ApiError

_OWN_ANNOTATION_PREFIX = "run-canary.dev/"


def may_have_landed(exc: BaseException) -> bool:
    """Whether a write that failed with ``exc`` may still have reached the service, so the way back
    must run: anything but a clear 4xx refusal (a timeout, a reset, a 5xx, a cancel mid-request)."""
    return not (isinstance(exc, ApiError) and 400 <= exc.status < 500)


def norm_traffic(traffic: Any) -> str:
    """Traffic JSON without zero/false/empty values (which the server omits on the wire)."""
    entries = [{k: v for k, v in t.items() if v} for t in (traffic or []) if isinstance(t, dict)]
    return json.dumps(entries, sort_keys=True)


def carries_env(execution: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> bool:
    """Whether an execution has every env var ``RunJobRequest.overrides`` set (in any container)."""
    wanted = {
        (e.get("name"), e.get("value"))
        for o in (overrides or {}).get("containerOverrides") or []
        for e in o.get("env") or []
    }
    containers = dig(execution, "spec", "template", "spec", "containers") or []
    present = {(e.get("name"), e.get("value")) for c in containers for e in c.get("env") or []}
    return wanted <= present


def dig(obj: Mapping[str, Any] | None, *keys: str) -> Any:
    cur: Any = obj
    for key in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def write_landed(sent: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``current`` (fresh GET) shows that our replaceService of ``sent`` was applied."""
    if not current:
        return False
    sent_rv = dig(sent, "metadata", "resourceVersion")
    if sent_rv and dig(current, "metadata", "resourceVersion") == sent_rv:
        return False
    if norm_traffic(dig(sent, "spec", "traffic")) != norm_traffic(dig(current, "spec", "traffic")):
        return False
    sent_name = dig(sent, "spec", "template", "metadata", "name")
    if sent_name and sent_name != dig(current, "spec", "template", "metadata", "name"):
        return False
    ours = {
        k: v
        for k, v in (dig(sent, "metadata", "annotations") or {}).items()
        if k.startswith(_OWN_ANNOTATION_PREFIX)
    }
    theirs = {
        k: v
        for k, v in (dig(current, "metadata", "annotations") or {}).items()
        if k.startswith(_OWN_ANNOTATION_PREFIX)
    }
    if ours != theirs:
        return False
    sent_tpl = dig(sent, "spec", "template", "metadata", "annotations") or {}
    cur_tpl = dig(current, "spec", "template", "metadata", "annotations") or {}
    return all(cur_tpl.get(k) == v for k, v in sent_tpl.items())


def bindings(policy: Mapping[str, Any] | None) -> list[tuple[str, tuple[str, ...], str]]:
    """Bindings in a comparable form: role, members and condition (conditional bindings differ)."""
    return sorted(
        (
            str(b.get("role")),
            tuple(sorted(b.get("members") or [])),
            json.dumps(b.get("condition") or {}, sort_keys=True),
        )
        for b in (policy or {}).get("bindings") or []
    )
