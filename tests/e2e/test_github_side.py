"""The GitHub side of a run, end to end against the emulator: which commit a pull-request run
belongs to, the job summary's chart, the post step's words, check_command's environment and helper.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from deployer.context import load_context
from devtools import harness
from tests.cloudrun import Api, api_path, routing
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
    api.create_service("pr-app", "sample/hello:v1", "pr-app-v1")
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


# --- a manual run beside a deploy (manual.yml's own concurrency group) ---------------------------


def _wait_for_share(api: Api, service: str, revision: str, percent: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        shares = {r: p for r, p, _ in routing(api.service(service)["spec"]["traffic"])}
        if shares.get(revision) == percent:
            return
        time.sleep(0.1)
    raise AssertionError(f"{revision} never reached {percent}%: {api.service(service)['spec']['traffic']}")


def _writes(emulator: Emulator, project: str, service: str) -> int:
    """Successful PUTs of one service (a refused write changes nothing)."""
    path = api_path(project, rf"services/{service}$")
    return len(
        [
            r
            for r in emulator.requests()
            if r["method"] == "PUT" and re.search(path, r["path"]) and r["status"] == 200
        ]
    )


@pytest.mark.parametrize("mode", ["rollback", "promote"])
def test_a_manual_run_ends_a_baking_deploy_which_then_writes_nothing(
    emulator: Emulator, project: str, tmp_path: Path, mode: str
) -> None:
    api = Api(emulator.url, project)
    api.create_service("busy", "sample/hello:v1", "busy-v1")
    deploy = {
        "service": "busy",
        "image": "sample/hello:v2",
        "project_id": project,
        "api_endpoint": emulator.url,
        "suffix": "v2",
        "steps": "10,100",
        "step_interval": "6s",
    }
    with harness.start(deploy, tmp_path=tmp_path / "deploy") as running:
        _wait_for_share(api, "busy", "busy-v2", 10)
        manual = harness.run(
            {"service": "busy", "project_id": project, "api_endpoint": emulator.url, "mode": mode},
            tmp_path=tmp_path / "manual",
            github={"GITHUB_RUN_ID": "555"},
        )
        assert manual.returncode == 0, manual.log
        after_manual = api.service("busy")
        writes_before = _writes(emulator, project, "busy")
        result = running.wait(timeout=60)
    assert result.returncode != 0, result.log
    assert "took over service busy; this run leaves it as it is" in result.log
    assert result.outputs["result"] == "failed"
    # The deploy changed nothing after the manual run (its one attempt was refused with 409 for a
    # stale resourceVersion; it read again and stopped): traffic is what the manual run set.
    writes_after = _writes(emulator, project, "busy")
    assert writes_after == writes_before, result.log
    final = api.service("busy")
    assert final["spec"]["traffic"] == after_manual["spec"]["traffic"]
    # What serves (status): a rollback restores the spec as it was (here "latest", i.e. busy-v1 again).
    shares = {r: p for r, p, _ in routing(final) if p}
    assert shares == ({"busy-v1": 100} if mode == "rollback" else {"busy-v2": 100})
    assert "run-canary.dev/rollout" not in (final["metadata"].get("annotations") or {})


# --- check_command: the step's facts as variables, and an HTTP check without curl ----------------


def test_check_command_gets_the_step_and_a_curl_free_http_check(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    Api(emulator.url, project).create_service("checked", "sample/hello:v1", "checked-v1")
    command = (
        'run-canary-http GET "$TAG_URL/healthz" --body ok && run-canary-http "$SERVICE_URL/healthz" && '
        'echo "facts $STEP $REVISION $PREVIOUS_REVISION $ROUND $CANARY_STEP" && '
        '{ env | grep "^INPUT_" && exit 9 || true; }'
    )
    inputs = {
        "service": "checked",
        "image": "sample/hello:v2",
        "project_id": project,
        "api_endpoint": emulator.url,
        "suffix": "v2",
        "steps": "50,100",
        "step_interval": "1s",
        "check_command": command,
        "github_token": TOKEN,
    }
    result = harness.run(inputs, tmp_path=tmp_path)
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"
    assert "facts 50 checked-v2 checked-v1 1 50" in result.stdout
    tag_url = result.outputs["tag_url"]
    assert f"GET {tag_url}/healthz -> 200" in result.stdout
    printed = [line for line in result.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert TOKEN not in "\n".join(printed) + result.summary  # INPUT_GITHUB_TOKEN was not in its env


def test_a_failing_http_check_rolls_back(emulator: Emulator, project: str, tmp_path: Path) -> None:
    Api(emulator.url, project).create_service("checked2", "sample/hello:v1", "checked2-v1")
    inputs = {
        "service": "checked2",
        "image": "sample/hello:v2",
        "project_id": project,
        "api_endpoint": emulator.url,
        "steps": "50,100",
        "step_interval": "1s",
        "check_command": 'run-canary-http "$TAG_URL/healthz" --status 500',
    }
    result = harness.run(inputs, tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back"
    assert "check_command failed (exit 1)" in result.stdout and "(expected 500)" in result.stdout
