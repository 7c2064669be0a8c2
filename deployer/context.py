"""The run context: what the runner says about this workflow run (``GITHUB_*`` and the event
payload). Every field tolerates being absent, so local runs work."""

from __future__ import annotations

import json
from collections.abc import Mapping

from deployer.settings import RunContext


def load_context(env: Mapping[str, str]) -> RunContext:
    """What the runner says about this run; every field tolerates being absent (local runs)."""

    def var(name: str, default: str = "") -> str:
        return env.get(name, "").strip() or default

    event_name, event_path = var("GITHUB_EVENT_NAME"), var("GITHUB_EVENT_PATH")
    return RunContext(
        sha=var("GITHUB_SHA"),
        ref=var("GITHUB_REF"),
        repository=var("GITHUB_REPOSITORY"),
        run_id=var("GITHUB_RUN_ID"),
        run_attempt=var("GITHUB_RUN_ATTEMPT", "1"),
        job=var("GITHUB_JOB"),
        server_url=var("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
        api_url=var("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        event_name=event_name,
        event_path=event_path,
        workflow=var("GITHUB_WORKFLOW"),
        actor=var("GITHUB_ACTOR"),
        pr_number=_pr_number(event_name, event_path),
    )


def _pr_number(event_name: str, event_path: str) -> int | None:
    """`pull_request.number` from the event payload; None when absent or unreadable."""
    if event_name not in ("pull_request", "pull_request_target") or not event_path:
        return None
    try:
        with open(event_path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return None
    pull = payload.get("pull_request") if isinstance(payload, dict) else None
    number = pull.get("number") if isinstance(pull, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else None
