"""The run context: what the runner says about this workflow run (``GITHUB_*`` and the event
payload). Every field tolerates being absent, so local runs work."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from deployer.settings import RunContext


def load_context(env: Mapping[str, str]) -> RunContext:
    """What the runner says about this run; every field tolerates being absent (local runs)."""

    def var(name: str, default: str = "") -> str:
        return env.get(name, "").strip() or default

    event_name, event_path = var("GITHUB_EVENT_NAME"), var("GITHUB_EVENT_PATH")
    pull = _pull_request(event_name, event_path)
    return RunContext(
        # On pull_request events GITHUB_SHA is the merge commit GitHub made; the image, the revision
        # name, the commit-sha label and the Deployment's ref belong to the head commit.
        sha=_head_sha(pull) or var("GITHUB_SHA"),
        ref=var("GITHUB_REF"),
        repository=var("GITHUB_REPOSITORY"),
        run_id=var("GITHUB_RUN_ID"),
        run_attempt=var("GITHUB_RUN_ATTEMPT", "1"),
        server_url=var("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
        api_url=var("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        event_name=event_name,
        event_path=event_path,
        workflow=var("GITHUB_WORKFLOW"),
        actor=var("GITHUB_ACTOR"),
        pr_number=_pr_number(pull),
    )


def _pull_request(event_name: str, event_path: str) -> dict[str, Any]:
    """The event payload's `pull_request` object on pull_request events; {} otherwise or unreadable."""
    if event_name not in ("pull_request", "pull_request_target") or not event_path:
        return {}
    try:
        with open(event_path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return {}
    pull = payload.get("pull_request") if isinstance(payload, dict) else None
    return pull if isinstance(pull, dict) else {}


def _pr_number(pull: Mapping[str, Any]) -> int | None:
    """`pull_request.number`; None when absent or not a positive integer."""
    number = pull.get("number")
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else None


def _head_sha(pull: Mapping[str, Any]) -> str:
    """`pull_request.head.sha` when it is a full commit SHA; "" otherwise."""
    head = pull.get("head")
    sha = head.get("sha") if isinstance(head, dict) else None
    return sha.lower() if isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{40}", sha) else ""
