"""The whole action as GitHub runs it: the image's runtime dependencies only (the hash-locked lock in
a clean virtualenv), INPUT_* from action.yml's defaults, a pull_request event, a token, the emulator
for Cloud Run and a loopback fake of the GitHub REST API."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, routing
from tests.fakes.github_api import FakeGitHub

TOKEN = "ghs_" + "S3cretTokenValue0123456789abcdef"


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    return harness.make_runtime_venv()


def test_pr_rollout_with_deployment_statuses_and_one_updated_comment(
    emulator: Emulator, project: str, tmp_path: Path, runtime_python: Path
) -> None:
    Api(emulator.url, project).create_service("web", "sample/hello:v1", "web-v1")
    inputs = {
        "service": "web",
        "image": "sample/hello:v2",
        "project_id": project,
        "api_endpoint": emulator.url,
        "steps": "50,100",
        "step_interval": "1s",
        "github_token": TOKEN,
        "environment": "staging",
    }
    with FakeGitHub(token=TOKEN, prefix="/api/v3") as gh:
        run_env = {
            "python": runtime_python,
            "event": harness.pull_request_event(42),
            "event_name": "pull_request",
            "github": {"GITHUB_API_URL": gh.url},
        }
        first = harness.run(inputs, tmp_path=tmp_path / "1", **run_env)  # type: ignore[arg-type]
        assert first.returncode == 0, first.log
        rerun = harness.run(
            inputs,
            tmp_path=tmp_path / "2",
            **{**run_env, "github": {"GITHUB_API_URL": gh.url, "GITHUB_RUN_ATTEMPT": "2"}},  # type: ignore[arg-type]
        )
        assert rerun.returncode == 0, rerun.log

        deployments = list(gh.deployments.values())
        assert [d["environment"] for d in deployments] == ["staging", "staging"]
        assert all(d["transient_environment"] for d in deployments)  # a PR preview environment
        for d in deployments:
            statuses = sorted(gh.statuses[d["id"]], key=lambda s: s["id"])
            assert [s["state"] for s in statuses] == ["in_progress", "success"]
            assert statuses[-1]["environment_url"] == first.outputs["tag_url"]
            assert statuses[-1]["log_url"].endswith("/attempts/" + ("1" if d is deployments[0] else "2"))
        comments = gh.comments_on(42)
        assert len(comments) == 1  # updated in place, not duplicated
        assert first.outputs["tag_url"] in comments[0]["body"]
        assert any(r["method"] == "PATCH" for r in gh.requests)

    out = first.outputs
    assert out["result"] == "promoted"
    assert routing(Api(emulator.url, project).service("web"))[-1][1:] == (100, "canary")
    assert "```mermaid" in first.summary and "xychart-beta" in first.summary
    assert "| 50% |" in first.summary or "50%" in first.summary
    for result in (first, rerun):
        printed = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if not line.startswith("::add-mask::")
        ]
        everything = "\n".join(printed) + result.summary + "".join(result.outputs.values())
        assert TOKEN not in everything
        assert TOKEN in result.masks  # masked before anything could print it
        assert not result.printed_before_masked(TOKEN)
