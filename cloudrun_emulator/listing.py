"""Listing: Kubernetes label selectors and paging with opaque continue tokens."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from cloudrun_emulator.errors import invalid
from cloudrun_emulator.schema import Violation
from cloudrun_emulator.wire import API_VERSION, prune

SELECTOR_TERM = re.compile(
    r"^\s*(?:(?P<neg>!)\s*(?P<absent>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def parse_selector(selector: str) -> list[Callable[[Mapping[str, str]], bool]]:
    """Kubernetes label selector terms (=, ==, !=, in, notin, key, !key); ApiError when bad."""
    tests = []
    for term in re.split(r",(?![^()]*\))", selector):
        if not term.strip():
            continue
        match = SELECTOR_TERM.match(term)
        if match is None:
            raise invalid(
                [Violation("labelSelector", f"labelSelector: unable to parse requirement: '{term}'")]
            )
        tests.append(_selector_test(match))
    return tests


def _selector_test(match: re.Match[str]) -> Callable[[Mapping[str, str]], bool]:
    """One parsed selector term as a predicate on labels."""
    if match["neg"]:
        absent = match["absent"]
        return lambda labels: absent not in labels
    key, op = match["key"], match["op"] or match["setop"]
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == match["value"]
    if op == "!=":
        return lambda labels: labels.get(key) != match["value"]
    if op in ("in", "notin"):
        values = {v.strip() for v in match["values"].split(",")}
        inside = op == "in"
        return lambda labels: (labels.get(key) in values) == inside
    return lambda labels: key in labels


def page(
    kind: str, items: list[dict[str, Any]], selector: str, limit: int, token: str, version: str = "1"
) -> dict[str, Any]:
    """Filter by label selector and cut one page; the continue token is an opaque offset.

    The list always carries ``metadata`` (Kubernetes ListMeta, which Knative lists and Cloud Run's
    v1 ``List*Response`` share: https://cloud.google.com/run/docs/reference/rest/v1/ListMeta):
    ``resourceVersion`` always, ``continue`` only when more items follow. gcloud reads
    ``metadata.continue`` of every list response and fails when ``metadata`` is missing.
    """
    tests = parse_selector(selector)
    matching = [i for i in items if all(t(i.get("metadata", {}).get("labels", {})) for t in tests)]
    start = decode_token(token)
    end = start + limit if limit > 0 else len(matching)
    more = end < len(matching)
    result = prune({"apiVersion": API_VERSION, "kind": kind, "items": matching[start:end]})
    result["metadata"] = prune({"resourceVersion": version, "continue": encode_token(end) if more else None})
    return result


def encode_token(offset: int) -> str:
    """Opaque continue token."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode("ascii")


def decode_token(token: str) -> int:
    """Offset from a continue token; 400 when it is not one of ours."""
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid([Violation("continue", "continue: invalid continue token")]) from exc
