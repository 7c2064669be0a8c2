"""Rollback means exactly as before, and never over someone else's change (entrypoint.py and post.py
run as the runner runs them, against the emulator).

- The service after a rollback is the service before the run: traffic (shares, every tag, our own tag
  back on the revision that had it, ``latestRevision`` entries) and template (the failed revision is
  no longer the latest, the service is Ready, the next deploy starts from what serves).
- An operator's change during a bake (traffic or a new tag, made with the plain API) is kept: the run
  stops non-zero saying who changed what; an unrelated change (an annotation) is built upon.
- A revision from before the run deleted during a pause: mode rollback restores as close as possible.
- dry_run in modes promote and rollback writes nothing; a cancel during the first write is undone by
  the post step; two jobs of one run attempt (a matrix) detect each other.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.images import builtin_argv
from cloudrun_emulator.store import scope
from deployer.state import STATE_ANNOTATION, RolloutState
from devtools import harness
from tests.cloudrun import Api, api_path, routing, spec_routing
from tests.helpers import EVERY_WRITE, as_operator, inputs, puts, split_two_revisions, writes

SERVICE = "shop"
CANDIDATE = f"{SERVICE}-v3"


def condition(svc: dict[str, Any], kind: str) -> str:
    return next((c["status"] for c in svc["status"].get("conditions", []) if c["type"] == kind), "Unknown")


def template_of(svc: dict[str, Any]) -> dict[str, Any]:
    """The template without its name (a template written back under its revision's name is the same)."""
    tpl = {**svc["spec"]["template"], "metadata": dict(svc["spec"]["template"].get("metadata") or {})}
    tpl["metadata"].pop("name", None)
    return tpl


def every_write(emu: Emulator, project: str) -> list[dict[str, Any]]:
    """Every write request to the project's services (dry runs included), whatever its answer."""
    return writes(emu, project, methods=EVERY_WRITE, dry_runs=True, accepted_only=False)


def wait_output(running: harness.RunningAction, pattern: str) -> None:
    running.wait_for_output(pattern, timeout=30)


# --------------------------------------------------------------------------------------------------
# The service as before the run: template and traffic


def test_failed_rollout_restores_template_and_latest_revision(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """A service that follows the latest revision (the default) with a tag; the release fails at start-up."""
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1", env={"KEEP": "1"})
    before = api.service(SERVICE)
    assert before["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    result = harness.run(
        inputs(emulator, project, service=SERVICE, image="sample/crash", suffix="v3", env_vars="FLAG=bad"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back", result.log
    after = api.wait_ready(SERVICE)
    assert after["spec"]["traffic"] == before["spec"]["traffic"]  # latestRevision, not pinned
    assert template_of(after) == template_of(before)
    assert after["status"]["latestCreatedRevisionName"] == f"{SERVICE}-v1"
    assert after["status"]["latestReadyRevisionName"] == f"{SERVICE}-v1"
    assert condition(after, "Ready") == "True"
    assert routing(after) == [(f"{SERVICE}-v1", 100, "")]  # no tag on the revision that cannot start
    assert STATE_ANNOTATION not in after["metadata"]["annotations"]
    assert sorted(api.revisions(SERVICE)) == [f"{SERVICE}-v1", CANDIDATE]  # no new revision made


def test_env_var_of_a_rolled_back_release_does_not_reach_the_next_one(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    failed = harness.run(
        inputs(
            emulator,
            project,
            service=SERVICE,
            image="sample/hello:v2",
            suffix="v2",
            env_vars="BAD_FLAG=on",
            smoke_body="never-there",
        ),
        tmp_path=tmp_path / "1",
    )
    assert failed.outputs["result"] == "rolled_back", failed.log
    nxt = harness.run(
        inputs(emulator, project, service=SERVICE, image="sample/hello:v3", suffix="v3", steps="100"),
        tmp_path=tmp_path / "2",
    )
    assert nxt.outputs["result"] == "promoted", nxt.log
    revision = requests.get(f"{api.ns}/revisions/{SERVICE}-v3", timeout=10).json()
    names = [e["name"] for e in revision["spec"]["containers"][0].get("env", [])]
    assert "BAD_FLAG" not in names
    served = requests.get(api.service(SERVICE)["status"]["url"], timeout=5).json()
    assert "BAD_FLAG" not in served["env"]


def test_rerun_with_the_same_image_after_the_cause_was_fixed_makes_a_new_revision(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Attempt 1 fails (the image cannot be pulled: ContainerMissing); the registry permission is then
    granted; attempt 2 of the same run, same inputs, deploys a new revision and promotes it."""
    api = Api(own_emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    rollout = inputs(own_emulator, project, service=SERVICE, image="private/app:v2", steps="100")
    first = harness.run(rollout, tmp_path=tmp_path / "1")
    assert first.outputs["result"] == "rolled_back", first.log
    assert "ContainerMissing" in first.stdout
    assert condition(api.wait_ready(SERVICE), "Ready") == "True"
    own_emulator.dataplane.images._mappings["private/app"] = builtin_argv("hello")  # permission granted
    second = harness.run(rollout, tmp_path=tmp_path / "2", github={"GITHUB_RUN_ATTEMPT": "2"})
    assert second.returncode == 0, second.log
    assert second.outputs["result"] == "promoted"
    assert second.outputs["revision"] != first.outputs["revision"]
    assert second.outputs["revision"].endswith("-2")
    assert routing(api.wait_ready(SERVICE)) == [(second.outputs["revision"], 100, "canary")]


def test_our_tag_goes_back_to_the_revision_that_had_it(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    api.replace_service(
        SERVICE,
        "sample/hello:v2",
        f"{SERVICE}-v2",
        [
            {"revisionName": f"{SERVICE}-v1", "percent": 100},
            {"revisionName": f"{SERVICE}-v2", "percent": 0, "tag": "canary"},
            {"latestRevision": True, "percent": 0, "tag": "latest"},
        ],
    )
    before = api.service(SERVICE)
    result = harness.run(
        inputs(emulator, project, service=SERVICE, image="sample/hello:v3", suffix="v3", smoke_body="nope"),
        tmp_path=tmp_path,
    )
    assert result.outputs["result"] == "rolled_back", result.log
    after = api.wait_ready(SERVICE)
    assert spec_routing(after) == spec_routing(before)  # canary on v2 again; candidate untagged
    assert [e for e in after["spec"]["traffic"] if e.get("latestRevision")] == [
        {"latestRevision": True, "tag": "latest"}
    ]
    assert template_of(after) == template_of(before)
    assert routing(after) == routing(before)


# --------------------------------------------------------------------------------------------------
# Other writers win


def _bake(emu: Emulator, project: str, tmp_path: Path, **extra: str) -> harness.RunningAction:
    split_two_revisions(Api(emu.url, project), SERVICE)
    rollout = inputs(
        emu, project, service=SERVICE, image="sample/hello:v3", suffix="v3", steps="10,50,100", **extra
    )
    running = harness.start(rollout, tmp_path=tmp_path)
    wait_output(running, r"::group::10%25")
    time.sleep(1.0)  # the step is written and baking
    return running


def test_operator_traffic_change_during_a_bake_is_kept(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    with _bake(emulator, project, tmp_path, step_interval="3s") as running:

        def everything_to_v1(svc: dict[str, Any]) -> None:
            svc["spec"]["traffic"] = [
                {"revisionName": f"{SERVICE}-v1", "percent": 100, "tag": "blue"},
                {"revisionName": CANDIDATE, "percent": 0, "tag": "canary"},
            ]

        as_operator(api, SERVICE, everything_to_v1)
        result = running.wait()
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "failed"
    errors = " ".join(a.data for a in result.annotations("error"))
    assert "changed by user@emulator.local" in errors, result.log
    assert f"{SERVICE}-v1 100% (tag blue)" in errors
    svc = api.wait_routes(SERVICE)
    assert spec_routing(svc) == [(f"{SERVICE}-v1", 100, "blue"), (CANDIDATE, 0, "canary")]
    assert STATE_ANNOTATION not in svc["metadata"]["annotations"]
    assert not any(
        t["revisionName"] == CANDIDATE and t.get("percent")
        for t in puts(emulator, project, SERVICE)[-1]["spec"]["traffic"]
    )
    assert svc["spec"]["template"]["metadata"]["name"] == f"{SERVICE}-v2"  # the template from before


def test_operator_new_tag_during_a_bake_is_kept(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    with _bake(emulator, project, tmp_path, step_interval="3s") as running:
        theirs = as_operator(
            api,
            SERVICE,
            lambda svc: svc["spec"]["traffic"].append(
                {"revisionName": f"{SERVICE}-v2", "percent": 0, "tag": "hotfix"}
            ),
        )
        result = running.wait()
    assert result.returncode == 1, result.log
    assert "hotfix" in " ".join(a.data for a in result.annotations("error"))
    svc = api.wait_routes(SERVICE)
    assert spec_routing(svc) == sorted(
        (t.get("revisionName", ""), t.get("percent", 0), t.get("tag", "")) for t in theirs["spec"]["traffic"]
    )
    assert (f"{SERVICE}-v2", 0, "hotfix") in routing(svc)
    assert STATE_ANNOTATION not in svc["metadata"]["annotations"]


def test_unrelated_change_during_a_bake_is_built_upon(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    with _bake(emulator, project, tmp_path, step_interval="2s") as running:
        as_operator(api, SERVICE, lambda svc: svc["metadata"]["annotations"].update({"team": "payments"}))
        result = running.wait()
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"
    svc = api.service(SERVICE)
    assert svc["metadata"]["annotations"]["team"] == "payments"
    assert (CANDIDATE, 100, "canary") in spec_routing(svc)


# --------------------------------------------------------------------------------------------------
# Never fails for good; dry run; cancel during the first write; two jobs of one run


def test_base_revision_deleted_during_a_pause_then_rollback_restores_as_close_as_possible(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, SERVICE)
    paused = harness.run(
        inputs(emulator, project, service=SERVICE, image="sample/hello:v3", suffix="v3", steps="90"),
        tmp_path=tmp_path / "1",
    )
    assert paused.outputs["result"] == "paused", paused.log
    # Every revision from before stays named (at 0 % if need be), so routine cleanup cannot delete it...
    refused = requests.delete(f"{api.ns}/revisions/{SERVICE}-v2", timeout=10)
    assert refused.status_code == 400, refused.text
    # ...but a revision can still disappear by other means: then the rollback comes as close as it can.
    with emulator.store.lock:
        del emulator.store.revisions[(scope(project, "us-central1"), f"{SERVICE}-v2")]
    result = harness.run(inputs(emulator, project, service=SERVICE, mode="rollback"), tmp_path=tmp_path / "2")
    assert result.outputs["result"] == "rolled_back", result.log
    warnings = " ".join(a.data for a in result.annotations("warning"))
    assert f"{SERVICE}-v2 no longer exist" in warnings, result.log
    svc = api.wait_routes(SERVICE)
    assert routing(svc) == [
        (f"{SERVICE}-v1", 0, "old"),
        (f"{SERVICE}-v1", 100, "blue"),
        (CANDIDATE, 0, "canary"),
    ]


@pytest.mark.parametrize("mode", ["promote", "rollback"])
def test_dry_run_in_promote_and_rollback_writes_nothing(
    mode: str, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, SERVICE)
    paused = harness.run(
        inputs(emulator, project, service=SERVICE, image="sample/hello:v3", suffix="v3", steps="50"),
        tmp_path=tmp_path / "1",
    )
    assert paused.outputs["result"] == "paused", paused.log
    before, writes_before = api.wait_routes(SERVICE), len(every_write(emulator, project))
    result = harness.run(
        inputs(emulator, project, service=SERVICE, mode=mode, dry_run="true"), tmp_path=tmp_path / "2"
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "planned"
    new_writes = every_write(emulator, project)[writes_before:]
    assert new_writes and all(w["query"].get("dryRun") == "all" for w in new_writes), new_writes
    after = api.service(SERVICE)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    post = harness.run_post(
        result, inputs(emulator, project, service=SERVICE, mode=mode, dry_run="true"), tmp_path=tmp_path / "2"
    )
    assert (
        post.returncode == 0
        and api.service(SERVICE)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    )


def test_cancel_during_the_first_write_then_the_post_step_leaves_no_trace(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(own_emulator.url, project)
    split_two_revisions(api, SERVICE)
    before = api.service(SERVICE)
    # The first PUT reaches the server, which takes 3 s to apply it: the cancel comes meanwhile.
    own_emulator.faults.add(method="PUT", path=api_path(project, rf"services/{SERVICE}$"), delay=3.0)
    rollout = inputs(own_emulator, project, service=SERVICE, image="sample/hello:v3", suffix="v3")
    with harness.start(rollout, tmp_path=tmp_path, post=False) as running:  # the post step comes later
        wait_output(running, r"::group::deploy")
        time.sleep(0.7)
        main = running.cancel_like_runner()
    assert main.returncode != 0, main.log
    time.sleep(3.0)  # the delayed write lands after the main step gave up on it
    assert STATE_ANNOTATION in api.service(SERVICE)["metadata"]["annotations"]
    post = harness.run_post(main, rollout, tmp_path=tmp_path / "post")
    assert post.returncode == 0, post.log
    after = api.wait_ready(SERVICE)
    assert STATE_ANNOTATION not in after["metadata"]["annotations"]
    assert spec_routing(after) == sorted([*spec_routing(before), (CANDIDATE, 0, "canary")])
    assert template_of(after) == template_of(before)


def test_two_jobs_of_one_run_attempt_detect_each_other(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Matrix jobs share run id, attempt and job id: the second refuses instead of undoing the first."""
    api = Api(emulator.url, project)
    split_two_revisions(api, SERVICE)
    first = inputs(emulator, project, service=SERVICE, image="sample/hello:v3", suffix="v3", steps="50")
    paused = harness.run(first, tmp_path=tmp_path / "a")
    assert paused.outputs["result"] == "paused", paused.log
    second = harness.run(
        inputs(emulator, project, service=SERVICE, image="sample/hello:v4", suffix="v4", steps="50"),
        tmp_path=tmp_path / "b",
    )
    assert second.returncode == 1, second.log
    assert "another job of this workflow run" in " ".join(a.data for a in second.annotations("error"))
    recorded = RolloutState.from_service(api.service(SERVICE))
    assert (
        recorded is not None and recorded.candidate == CANDIDATE and recorded.token == paused.state["token"]
    )


@pytest.mark.long
def test_run_taken_over_during_its_last_bake_does_not_report_paused(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    split_two_revisions(api, SERVICE)
    rollout = inputs(
        emulator,
        project,
        service=SERVICE,
        image="sample/hello:v3",
        suffix="v3",
        steps="50",
        step_interval="12s",  # long enough for the other run to finish, even on a loaded machine
    )
    with harness.start(rollout, tmp_path=tmp_path / "a") as running:
        wait_output(running, r"::group::50%25")
        time.sleep(1.0)  # the step is written and baking
        other = harness.run(
            inputs(
                emulator,
                project,
                service=SERVICE,
                image="sample/hello:v4",
                suffix="v4",
                steps="0",
                takeover="true",
            ),
            tmp_path=tmp_path / "b",
            github={"GITHUB_RUN_ID": "111", "GITHUB_JOB": "other"},
        )
        assert other.outputs["result"] == "deployed", other.log
        result = running.wait()
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "failed"
    assert "took over" in " ".join(a.data for a in result.annotations("error"))
