"""The GitHub side of a run, end to end against the emulator: which commit a pull-request run
belongs to, the job summary's chart, the post step's words, check_command's environment and helper.
"""

from __future__ import annotations

import json
from pathlib import Path

from cloudrun_emulator import Emulator
from deployer.context import load_context
from tests import harness
from tests.cloudrun import Api
from tests.fakes.github_api import FakeGitHub

TOKEN = "ghs_" + "HeadShaTokenValue0123456789abcdef"
MERGE_SHA = harness.DEFAULT_GITHUB["GITHUB_SHA"]
HEAD_SHA = "5e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b"


def test_context_takes_the_head_commit_on_pull_request_events(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(harness.pull_request_event(7, head_sha=HEAD_SHA.upper())))
    env = {"GITHUB_SHA": MERGE_SHA, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    assert load_context(env).sha == HEAD_SHA
    assert load_context({**env, "GITHUB_EVENT_NAME": "pull_request_target"}).sha == HEAD_SHA
    # Other events, and payloads without a usable head SHA, keep GITHUB_SHA.
    assert load_context({**env, "GITHUB_EVENT_NAME": "push"}).sha == MERGE_SHA
    for head in ({"sha": "abc123"}, {"sha": 7}, "x", None):
        event.write_text(json.dumps({"pull_request": {"number": 7, "head": head}}))
        assert load_context(env).sha == MERGE_SHA, head


def test_pull_request_run_names_labels_and_deploys_the_head_commit(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create("pr-app", "sample/hello:v1", "pr-app-v1")
    inputs = {
        "service": "pr-app",
        "image": "sample/hello:v2",
        "project_id": project,
        "api_endpoint": emulator.url,
        "steps": "0",
        "tag": "pr-7",
        "github_token": TOKEN,
        "environment": "pr-7",
    }
    with FakeGitHub(token=TOKEN) as gh:
        result = harness.run(
            inputs,
            tmp_path=tmp_path,
            event=harness.pull_request_event(7, head_sha=HEAD_SHA),
            event_name="pull_request",
            github={"GITHUB_API_URL": gh.url, "GITHUB_REF": "refs/pull/7/merge"},
        )
        assert result.returncode == 0, result.log
        deployments = list(gh.deployments.values())
    revision = f"pr-app-{HEAD_SHA[:7]}-1"
    assert result.outputs["revision"] == revision
    assert [d["ref"] for d in deployments] == [HEAD_SHA]
    service = api.service("pr-app")
    assert service["spec"]["template"]["metadata"]["name"] == revision
    assert service["metadata"]["labels"]["commit-sha"] == HEAD_SHA
    assert MERGE_SHA[:7] not in json.dumps(service)
