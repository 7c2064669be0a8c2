"""The action's outputs, from what a run did: the same strings on GitHub (``$GITHUB_OUTPUT``), in
``--output json`` and in the terminal's closing lines."""

from __future__ import annotations

import json
from typing import Any

from deployer.result import RolloutResult
from deployer.traffic import Target, Traffic


def traffic_json(traffic: Traffic) -> str:
    """``status.traffic`` as the contract's JSON: camelCase keys, empty fields omitted."""
    return json.dumps([_target_dict(t) for t in traffic], separators=(",", ":"))


def _target_dict(target: Target) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if target.revision:
        entry["revisionName"] = target.revision
    entry["percent"] = target.percent
    if target.tag:
        entry["tag"] = target.tag
    if target.url:
        entry["url"] = target.url
    if target.latest:
        entry["latestRevision"] = True
    return entry


def outputs_for(result: RolloutResult) -> dict[str, str]:
    """The contract outputs as strings (missing values are empty strings)."""
    return {
        "url": result.url or "",
        "tag_url": result.tag_url or "",
        "revision": result.revision or "",
        "previous_revision": result.previous_revision or "",
        "result": str(result.outcome.value),
        "traffic": traffic_json(result.traffic_after),
        **job_outputs(result),
    }


def job_outputs(result: RolloutResult) -> dict[str, str]:
    """The last job execution of the run (the post job when there are two)."""
    last = next((job for job in reversed(result.jobs) if job.execution), None)
    if last is None:
        last = result.jobs[-1] if result.jobs else None
    return {
        "job_execution": last.execution if last else "",
        "job_result": last.result if last else "",
        "job_log_url": (last.log_url or last.console_url) if last else "",
    }
