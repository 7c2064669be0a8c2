"""The canary rollout end to end: entrypoint.py run as the runner runs it, against the emulator.

Each test asserts what a user would see: traffic on the service after every phase (from the PUTs the
emulator received and from the service itself), the step outputs, the exit code and the messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, hit, routing, spec_routing
from tests.helpers import inputs, puts, split_two_revisions


def test_first_deploy_creates_the_service_and_promotes(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result = harness.run(
        inputs(emulator, project, service="hello", image="sample/hello:v1"), tmp_path=tmp_path
    )
    assert result.returncode == 0, result.log
    out = result.outputs
    assert out["result"] == "promoted"
    assert out["revision"].startswith("hello-")
    svc = Api(emulator.url, project).service("hello")
    assert out["url"] == svc["status"]["url"]
    assert routing(svc) == [(out["revision"], 100, "canary")]
    assert json.loads(out["traffic"])[0]["revisionName"] == out["revision"]
    assert requests.get(out["url"], timeout=5).json()["revision"] == out["revision"]
    assert requests.get(out["tag_url"], timeout=5).json()["image"] == "sample/hello:v1"
    assert "promoted" in result.summary and "```mermaid" in result.summary


def test_canary_over_a_pinned_split_keeps_every_tag(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, "shop")
    before = routing(api.service("shop"))
    result = harness.run(
        inputs(emulator, project, service="shop", image="sample/hello:v3", suffix="v3", steps="10,50,100"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"
    assert result.outputs["previous_revision"] == "shop-v1"
    writes = [spec_routing(b) for b in puts(emulator, project, "shop")[-5:]]
    assert writes == [
        [("shop-v1", 0, "old"), ("shop-v1", 70, "blue"), ("shop-v2", 30, "green"), ("shop-v3", 0, "canary")],
        [("shop-v1", 0, "old"), ("shop-v1", 63, "blue"), ("shop-v2", 27, "green"), ("shop-v3", 10, "canary")],
        [("shop-v1", 0, "old"), ("shop-v1", 35, "blue"), ("shop-v2", 15, "green"), ("shop-v3", 50, "canary")],
        [("shop-v1", 0, "blue"), ("shop-v1", 0, "old"), ("shop-v2", 0, "green"), ("shop-v3", 100, "canary")],
        [("shop-v1", 0, "blue"), ("shop-v1", 0, "old"), ("shop-v2", 0, "green"), ("shop-v3", 100, "canary")],
    ]
    assert before == [("shop-v1", 0, "old"), ("shop-v1", 70, "blue"), ("shop-v2", 30, "green")]
    svc = api.service("shop")
    assert hit(svc["status"]["url"], 20) == {"shop-v3": 20}
    tags = {e["tag"]: e["url"] for e in svc["status"]["traffic"] if e.get("tag")}
    assert requests.get(tags["blue"], timeout=5).json()["revision"] == "shop-v1"
    assert result.outputs["tag_url"] == tags["canary"]


def test_revision_that_never_becomes_ready_is_rolled_back(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, "crashy")
    before = routing(api.service("crashy"))
    result = harness.run(
        inputs(emulator, project, service="crashy", image="sample/crash", suffix="bad"), tmp_path=tmp_path
    )
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back"
    assert "HealthCheckContainerError" in result.log
    svc = api.wait_routes("crashy")
    assert routing(svc) == before  # and no tag left on a revision that cannot serve
    assert hit(svc["status"]["url"], 10) == {"crashy-v1": 7, "crashy-v2": 3}
    errors = [a.data for a in result.annotations("error")]
    assert any("crashy-bad" in m for m in errors), errors


def test_failing_smoke_check_rolls_back_and_leaves_the_revision_tagged(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, "smoky")
    before = routing(api.service("smoky"))
    result = harness.run(
        inputs(
            emulator, project, service="smoky", image="sample/hello:v3", suffix="v3", smoke_body="never-there"
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back"
    assert "smoke check failed" in result.log
    svc = api.wait_ready("smoky")
    assert routing(svc) == sorted([*before, ("smoky-v3", 0, "canary")])
    # no traffic ever moved: the writes were the tagged deploy and the rollback
    assert [
        max(e.get("percent", 0) for e in b["spec"]["traffic"] if e.get("revisionName") == "smoky-v3")
        for b in puts(emulator, project, "smoky")[-2:]
    ] == [0, 0]


def test_step_whose_checks_fail_is_rolled_back(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, "flaky")
    before = routing(api.service("flaky"))
    result = harness.run(
        inputs(
            emulator,
            project,
            service="flaky",
            image="test/flaky",
            suffix="f1",
            steps="10,50,100",
            step_interval="3s",
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back"
    assert "failed at 10%" in result.log
    assert routing(api.wait_ready("flaky")) == sorted([*before, ("flaky-f1", 0, "canary")])
    shares = [
        sum(e.get("percent", 0) for e in b["spec"]["traffic"] if e.get("revisionName") == "flaky-f1")
        for b in puts(emulator, project, "flaky")[-3:]
    ]
    assert shares == [0, 10, 0]  # deployed, step 10, rolled back: never 50


def test_paused_then_promoted(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    api.create_service("paws", "sample/hello:v1", "paws-v1")
    paused = harness.run(
        inputs(emulator, project, service="paws", image="sample/hello:v2", suffix="v2", steps="10,50"),
        tmp_path=tmp_path / "1",
    )
    assert paused.returncode == 0, paused.log
    assert paused.outputs["result"] == "paused"
    assert routing(api.service("paws")) == [("paws-v1", 50, ""), ("paws-v2", 50, "canary")]
    promoted = harness.run(inputs(emulator, project, service="paws", mode="promote"), tmp_path=tmp_path / "2")
    assert promoted.returncode == 0, promoted.log
    assert promoted.outputs["result"] == "promoted"
    assert promoted.outputs["revision"] == "paws-v2"
    assert routing(api.wait_routes("paws")) == [("paws-v2", 100, "canary")]


def test_manual_rollback_to_the_previous_stable_revision(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("back", "sample/hello:v1", "back-v1")
    first = harness.run(
        inputs(emulator, project, service="back", image="sample/hello:v2", suffix="v2", steps="100"),
        tmp_path=tmp_path / "1",
    )
    assert first.outputs["result"] == "promoted", first.log
    rolled = harness.run(inputs(emulator, project, service="back", mode="rollback"), tmp_path=tmp_path / "2")
    assert rolled.returncode == 0, rolled.log
    assert rolled.outputs["result"] == "rolled_back"
    assert rolled.outputs["revision"] == "back-v1"
    assert routing(api.service("back")) == [("back-v1", 100, ""), ("back-v2", 0, "canary")]
    assert hit(api.service("back")["status"]["url"], 10) == {"back-v1": 10}


def test_dry_run_writes_nothing(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, "dry")
    before = api.service("dry")
    writes_before = len(puts(emulator, project, "dry"))
    result = harness.run(
        inputs(emulator, project, service="dry", image="sample/hello:v3", suffix="v3", dry_run="true"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "planned"
    assert len(puts(emulator, project, "dry")) == writes_before
    after = api.service("dry")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "dry-v3 10%" in result.log and "dry-v3 100%" in result.log
    assert "```diff" in result.summary and "sample/hello:v3" in result.summary


def test_rerun_of_the_same_commit_reuses_the_revision(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("again", "sample/hello:v1", "again-v1")
    sha = "0123456789abcdef0123456789abcdef01234567"
    args = inputs(emulator, project, service="again", image="sample/hello:v2")
    first = harness.run(args, tmp_path=tmp_path / "1", github={"GITHUB_SHA": sha, "GITHUB_RUN_ATTEMPT": "1"})
    assert first.outputs["result"] == "promoted", first.log
    assert first.outputs["revision"] == "again-0123456-1"
    second = harness.run(args, tmp_path=tmp_path / "2", github={"GITHUB_SHA": sha, "GITHUB_RUN_ATTEMPT": "2"})
    assert second.returncode == 0, second.log
    assert second.outputs["result"] == "promoted"
    assert second.outputs["revision"] == "again-0123456-1"
    assert api.revisions("again") == ["again-0123456-1", "again-v1"]
    assert routing(api.service("again")) == [("again-0123456-1", 100, "canary")]


def test_bad_inputs_are_all_reported_and_nothing_is_called(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    before = len(emulator.requests())
    result = harness.run(
        inputs(emulator, project, service="Bad_Name", image="", steps="50,10", smoke_status="700"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1
    errors = " ".join(a.data for a in result.annotations("error"))
    for name in ("service", "image", "steps", "smoke_status"):
        assert f"input '{name}'" in errors, errors
    assert len(emulator.requests()) == before


def test_allow_unauthenticated_adds_all_users_as_invoker(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    iam = f"{emulator.url}/v1/projects/{project}/locations/us-central1/services/open"
    result = harness.run(
        inputs(emulator, project, service="open", image="sample/hello:v1", allow_unauthenticated="true"),
        tmp_path=tmp_path / "1",
    )
    assert result.returncode == 0, result.log
    policy = requests.get(f"{iam}:getIamPolicy", timeout=5).json()
    assert {"role": "roles/run.invoker", "members": ["allUsers"]} in policy["bindings"]
    closed = harness.run(
        inputs(emulator, project, service="open", image="sample/hello:v2", allow_unauthenticated="false"),
        tmp_path=tmp_path / "2",
    )
    assert closed.returncode == 0, closed.log
    # same commit and attempt, other settings: the derived name is taken, so the next one is used
    assert closed.outputs["revision"] == result.outputs["revision"] + "-2"
    policy = requests.get(f"{iam}:getIamPolicy", timeout=5).json()
    assert all("allUsers" not in b.get("members", []) for b in policy.get("bindings", []))


def test_metadata_file_is_the_base_and_the_inputs_apply_on_top(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "service.yaml").write_text(
        """
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: meta
  labels: {team: payments}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/maxScale: "7"}
    spec:
      containerConcurrency: 5
      containers:
        - image: sample/hello:from-yaml
          env: [{name: FROM_YAML, value: "yes"}]
"""
    )
    result = harness.run(
        inputs(
            emulator,
            project,
            service="meta",
            image="sample/hello:v9",
            metadata="service.yaml",
            env_vars="ADDED=1",
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    svc = Api(emulator.url, project).service("meta")
    template = svc["spec"]["template"]
    assert template["spec"]["containerConcurrency"] == 5
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"] == "7"
    container = template["spec"]["containers"][0]
    assert container["image"] == "sample/hello:v9"
    assert {"name": "FROM_YAML", "value": "yes"} in container["env"]
    assert {"name": "ADDED", "value": "1"} in container["env"]
    assert svc["metadata"]["labels"]["team"] == "payments"
    assert svc["metadata"]["labels"]["managed-by"] == "github-actions"
    assert requests.get(result.outputs["url"], timeout=5).json()["env"]["FROM_YAML"] == "yes"


def test_steps_zero_deploys_a_tagged_preview_and_blocks_nothing(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("prev", "sample/hello:v1", "prev-v1")
    preview = harness.run(
        inputs(
            emulator, project, service="prev", image="sample/hello:pr7", suffix="pr7", steps="0", tag="pr-7"
        ),
        tmp_path=tmp_path / "1",
        github={"GITHUB_RUN_ID": "111"},
    )
    assert preview.returncode == 0, preview.log
    assert preview.outputs["result"] == "deployed"
    assert routing(api.service("prev")) == [("prev-pr7", 0, "pr-7"), ("prev-v1", 100, "")]
    assert requests.get(preview.outputs["tag_url"], timeout=5).json()["image"] == "sample/hello:pr7"
    assert hit(preview.outputs["url"], 10) == {"prev-v1": 10}
    # another run (say, the production deploy) is not refused: the preview left no unfinished rollout
    main = harness.run(
        inputs(emulator, project, service="prev", image="sample/hello:v2", suffix="v2", steps="100"),
        tmp_path=tmp_path / "2",
        github={"GITHUB_RUN_ID": "222"},
    )
    assert main.outputs["result"] == "promoted", main.log
    assert routing(api.wait_routes("prev")) == [("prev-pr7", 0, "pr-7"), ("prev-v2", 100, "canary")]
