"""Cloud Run jobs around the rollout, with entrypoint.py run like the runner against the emulator.

- mode job creates a job, updates it, executes it with per-execution overrides and waits for it: the
  tasks really run with Cloud Run's task env, the outputs name the execution;
- a failing pre job leaves the traffic exactly as it was and fails the step with the task's exit code;
- a failing post job rolls back to the traffic from before the run (post_job_failure: rollback), or
  keeps the promotion and fails the step (fail);
- a cancel while an execution runs cancels the execution (``:cancel``) and restores the traffic;
- bad job inputs are reported, each naming its input, before any request is made.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import requests

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, api_path, condition, routing
from tests.fakes.github_api import FakeGitHub
from tests.helpers import SHOP as SERVICE
from tests.helpers import Jobs
from tests.helpers import shop_inputs as rollout_inputs
from tests.helpers import target as job_inputs

WRITES = ("PUT", "POST", "DELETE")


def terminal(jobs: Jobs, job: str, timeout: float = 5.0) -> dict[str, Any]:
    """The job's latest execution once its Completed condition is set (a cancel takes a moment)."""
    execution = jobs.executions(job)[0]
    deadline = time.monotonic() + timeout
    while condition(execution, "Completed")["status"] == "Unknown" and time.monotonic() < deadline:
        time.sleep(0.1)
        execution = jobs.execution(execution["metadata"]["name"])
    return execution


def test_mode_job_creates_updates_and_executes_with_overrides(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    # Each task writes its Cloud Run env to a file, so the test sees what really ran.
    out = tmp_path / "out"
    out.mkdir()
    script = (
        'echo "$CLOUD_RUN_JOB $CLOUD_RUN_EXECUTION $CLOUD_RUN_TASK_INDEX/$CLOUD_RUN_TASK_COUNT '
        '$CLOUD_RUN_TASK_ATTEMPT $STAGE $*" > "$OUT/task$CLOUD_RUN_TASK_INDEX"'
    )
    base = job_inputs(
        emulator,
        project,
        mode="job",
        job="migrate",
        image="us-docker.pkg.dev/cloudrun/container/job",
        job_command=json.dumps(["/bin/sh", "-c", script, "sh"]),  # JSON is a YAML list
        job_env_vars=f"OUT={out}\nSTAGE=one",
        job_tasks="2",
    )
    first = harness.run(base, tmp_path=tmp_path / "1")
    assert first.returncode == 0, first.log
    assert first.outputs["result"] == "executed"
    assert first.outputs["job_result"] == "succeeded"
    execution = first.outputs["job_execution"]
    assert execution.startswith("migrate-")
    assert "cloud_run_job" in first.outputs["job_log_url"]
    assert sorted(p.read_text().split()[2] for p in out.iterdir()) == ["0/2", "1/2"]
    assert (out / "task0").read_text().split() == ["migrate", execution, "0/2", "0", "one"]

    # Update: three tasks, one at a time; this execution only gets other args and env.
    second = harness.run(
        {**base, "job_tasks": "3", "job_parallelism": "1", "job_args_override": "--dry-run now",
         "job_env_override": "STAGE=two"},
        tmp_path=tmp_path / "2",
    )  # fmt: skip
    assert second.returncode == 0, second.log
    job = Jobs(emulator.url, project).job("migrate")
    assert job["metadata"]["generation"] == 2
    assert job["spec"]["template"]["spec"]["taskCount"] == 3
    assert "args" not in job["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]  # run only
    expected = ["migrate", second.outputs["job_execution"], "2/3", "0", "two", "--dry-run", "now"]
    assert (out / "task2").read_text().split() == expected
    ran = Jobs(emulator.url, project).execution(second.outputs["job_execution"])
    assert ran["spec"]["parallelism"] == 1 and ran["status"]["succeededCount"] == 3
    assert condition(ran, "Completed")["status"] == "True"
    assert "Cloud Run jobs" in second.summary and second.outputs["job_execution"] in second.summary


def test_failing_pre_job_leaves_traffic_untouched_and_names_the_exit_code(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    before = routing(api.service(SERVICE))
    result = harness.run(
        rollout_inputs(
            emulator,
            project,
            pre_job="migrate",
            job_command='["/bin/sh", "-c", "exit 3"]',
            job_max_retries="1",
            job_env_vars="DB_URL=postgres://app:hunter2-secret@db/app",
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode != 0
    assert "task 0 exited with code 3" in result.log, result.log
    assert "hunter2" not in result.log + result.summary  # env values are never printed
    errors = " ".join(a.data for a in result.annotations("error"))
    assert "pre job migrate failed" in errors and "code 3" in errors
    after = api.service(SERVICE)
    shares = [(rev, pct) for rev, pct, _ in routing(after) if pct]
    assert shares == [(rev, pct) for rev, pct, _ in before if pct] == [(f"{SERVICE}-v1", 100)]
    # No traffic write ever gave the candidate a share.
    for r in emulator.requests():
        if r["method"] == "PUT" and re.search(api_path(project, "services/"), r["path"]):
            assert all(
                t.get("percent", 0) == 0
                for t in r["body"]["spec"]["traffic"]
                if t.get("revisionName") == "shop-v2"
            )
    assert result.outputs["job_result"] == "failed"
    executions = Jobs(emulator.url, project).executions("migrate")
    assert len(executions) == 1 and executions[0]["status"]["retriedCount"] == 1


def test_failing_post_job_rolls_back_when_configured(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    failing = {
        "post_job": "e2e",
        "job_image": "sample/job",
        "job_env_vars": "FAIL_RATE=1",
        "job_max_retries": "0",
    }
    result = harness.run(rollout_inputs(emulator, project, **failing), tmp_path=tmp_path / "rb")
    assert result.returncode != 0
    assert result.outputs["result"] == "rolled_back"
    assert "post job e2e failed" in result.log and "exited with code 1" in result.log
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == [(f"{SERVICE}-v1", 100)]

    kept = harness.run(
        rollout_inputs(
            emulator, project, post_job_failure="fail", suffix="v3", image="sample/hello:v3", **failing
        ),
        tmp_path=tmp_path / "fail",
    )
    assert kept.returncode != 0
    assert kept.outputs["result"] == "promoted" and kept.outputs["job_result"] == "failed"
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == [(f"{SERVICE}-v3", 100)]


def test_cancel_during_pre_job_cancels_the_execution(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    before = [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p]
    inputs = rollout_inputs(
        emulator, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    with harness.start(inputs, tmp_path=tmp_path) as running:
        running.wait_for_output(r"Execution migrate-\w+ of job migrate started", timeout=60)
        signalled = time.monotonic()
        running.send_signal(signal.SIGINT)
        result = running.wait(timeout=30)
    elapsed = time.monotonic() - signalled
    assert result.returncode != 0 and elapsed < 7.5, (elapsed, result.log)
    cancels = [
        r for r in emulator.requests() if r["path"].endswith(":cancel") and f"/{project}/" in r["path"]
    ]
    assert len(cancels) == 1 and cancels[0]["status"] == 200
    execution = terminal(Jobs(emulator.url, project), "migrate")
    assert condition(execution, "Completed")["reason"] == "Cancelled"
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == before
    assert result.outputs["job_result"] == "cancelled"


def test_bad_job_inputs_are_named_before_any_write(emulator: Emulator, project: str, tmp_path: Path) -> None:
    bad = rollout_inputs(
        emulator,
        project,
        pre_job="Migrate_DB",
        job_tasks="0",
        job_parallelism="x",
        job_task_timeout="200h",
        job_max_retries="11",
        job_command="[unclosed",
        post_job_failure="ignore",
        job_service_account="not-an-email",
    )
    result = harness.run(bad, tmp_path=tmp_path / "1")
    assert result.returncode != 0
    named = {a.data.split("'")[1] for a in result.annotations("error") if a.data.startswith("input '")}
    assert named == {
        "pre_job", "job_tasks", "job_parallelism", "job_task_timeout", "job_max_retries", "job_command",
        "post_job_failure", "job_service_account",
    }  # fmt: skip
    lonely = harness.run(job_inputs(emulator, project, mode="job", job_tasks="2"), tmp_path=tmp_path / "2")
    messages = [a.data for a in lonely.annotations("error")]
    assert any(m.startswith("input 'job': is required in mode job") for m in messages), messages
    assert any(m.startswith("input 'job_image': is required in mode job") for m in messages), messages
    stray = harness.run(job_inputs(emulator, project, service=SERVICE, image="sample/hello", job_args="x"),
                        tmp_path=tmp_path / "3")  # fmt: skip
    assert any("input 'job_args': is set but no job runs" in a.data for a in stray.annotations("error"))
    assert not [r for r in emulator.requests() if f"/{project}/" in r["path"]]


def test_post_job_in_mode_promote_runs_the_promoted_image(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    paused = harness.run(rollout_inputs(emulator, project, steps="50"), tmp_path=tmp_path / "1")
    assert paused.outputs["result"] == "paused", paused.log
    promote = {"mode": "promote", "post_job": "e2e", "job_command": '["/bin/sh", "-c", "exit 0"]'}
    promoted = harness.run(job_inputs(emulator, project, service=SERVICE, **promote), tmp_path=tmp_path / "2")
    assert promoted.returncode == 0, promoted.log
    assert (promoted.outputs["result"], promoted.outputs["job_result"]) == ("promoted", "succeeded")
    job = Jobs(emulator.url, project).job("e2e")
    assert job["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["image"] == "sample/hello:v2"


def test_dry_run_validates_the_jobs_and_writes_nothing(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    result = harness.run(
        rollout_inputs(emulator, project, dry_run="true", pre_job="migrate", job_tasks="2"), tmp_path=tmp_path
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "planned" and result.outputs["job_result"] == "planned"
    job_writes = [r for r in emulator.requests() if f"/{project}/jobs" in r["path"] and r["method"] in WRITES]
    assert job_writes and all(r["query"].get("dryRun") == "all" for r in job_writes)
    assert requests.get(f"{Jobs(emulator.url, project).ns}/jobs/migrate", timeout=10).status_code == 404


def test_cancel_in_mode_job_cancels_the_execution(emulator: Emulator, project: str, tmp_path: Path) -> None:
    inputs = job_inputs(
        emulator, project, mode="job", job="backfill", image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    with harness.start(inputs, tmp_path=tmp_path) as running:
        running.wait_for_output(r"Execution backfill-\w+ of job backfill started", timeout=60)
        running.send_signal(signal.SIGINT)
        result = running.wait(timeout=30)
    assert result.returncode != 0
    assert result.outputs["job_result"] == "cancelled", result.log
    execution = terminal(Jobs(emulator.url, project), "backfill")
    assert condition(execution, "Completed")["reason"] == "Cancelled"


def killed_during_the_pre_job(inputs: dict[str, Any], tmp_path: Path) -> harness.RunResult:
    """The main step, SIGKILLed once its pre job's execution has started (what it saved is kept)."""
    with harness.start(inputs, tmp_path=tmp_path / "main") as running:
        running.wait_for_output(r"Execution migrate-\w+ of job migrate started", timeout=60)
        running.kill()
        return running.wait()


def test_killed_during_pre_job_then_the_post_step_cancels_it(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    before = [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p]
    inputs = rollout_inputs(
        emulator, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    main = killed_during_the_pre_job(inputs, tmp_path)
    execution = main.state["job_execution"]
    assert condition(Jobs(emulator.url, project).execution(execution), "Completed")["status"] == "Unknown"
    post = harness.run_post(main, inputs, tmp_path=tmp_path / "post", timeout=30)
    assert post.returncode == 0, post.log
    assert f"cancelled execution {execution}" in post.log
    assert condition(terminal(Jobs(emulator.url, project), "migrate"), "Completed")["reason"] == "Cancelled"
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == before


def promote_inputs(deploy: dict[str, Any]) -> dict[str, Any]:
    """A manual promote (manual.yml): the service and where it is, no image and no job."""
    keep = (
        "api_endpoint",
        "project_id",
        "region",
        "service",
        "step_interval",
        "wait_timeout",
        "smoke_timeout",
    )
    return {**{k: v for k, v in deploy.items() if k in keep}, "mode": "promote"}


def test_promote_after_a_lost_runner_waits_for_its_migration_then_promotes(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """The runner died during the pre job (no post step: a lost machine). mode: promote finishes the
    rollout only once the migration it left running has succeeded, and leaves nothing running."""
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    inputs = rollout_inputs(
        emulator, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=4000"
    )
    main = killed_during_the_pre_job(inputs, tmp_path)
    execution = main.state["job_execution"]
    jobs = Jobs(emulator.url, project)
    assert condition(jobs.execution(execution), "Completed")["status"] == "Unknown"  # still migrating
    promote = harness.run(promote_inputs(inputs), tmp_path=tmp_path / "promote", timeout=90)
    assert promote.outputs["result"] == "promoted", promote.log
    assert (
        f"job execution(s) {execution} of job migrate still run (its runner was lost): waiting" in promote.log
    )
    assert condition(jobs.execution(execution), "Completed")["status"] == "True"
    served = [(r, p) for r, p, _ in routing(api.wait_routes(SERVICE)) if p]
    assert served == [(promote.outputs["revision"], 100)]
    assert promote.log.index("still run (its runner was lost)") < promote.log.index("Traffic (100%)")


def test_a_failed_migration_of_a_lost_runner_is_not_promoted(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    before = [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p]
    inputs = rollout_inputs(
        emulator,
        project,
        pre_job="migrate",
        job_image="sample/job",
        job_env_vars="SLEEP_MS=3000\nFAIL_RATE=1",
        job_max_retries="0",
    )
    main = killed_during_the_pre_job(inputs, tmp_path)
    execution = main.state["job_execution"]
    promote = harness.run(promote_inputs(inputs), tmp_path=tmp_path / "promote", timeout=90)
    assert promote.outputs["result"] == "rolled_back", promote.log
    assert f"the rollout's pre_job execution {execution} of job migrate failed" in promote.log
    assert [(r, p) for r, p, _ in routing(api.wait_routes(SERVICE)) if p] == before


def test_deployment_status_names_the_jobs(emulator: Emulator, project: str, tmp_path: Path) -> None:
    token = "ghs_" + "JobsTokenValue0123456789abcdef0"
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    extra = {"pre_job": "migrate", "job_image": "sample/job", "github_token": token, "environment": "staging"}
    with FakeGitHub(token=token, prefix="/api/v3") as gh:
        result = harness.run(
            rollout_inputs(emulator, project, **extra), tmp_path=tmp_path, github={"GITHUB_API_URL": gh.url}
        )
        assert result.returncode == 0, result.log
        (deployment,) = gh.deployments.values()
        statuses = sorted(gh.statuses[deployment["id"]], key=lambda s: s["id"])
    assert [s["state"] for s in statuses] == ["in_progress", "success"]
    assert statuses[-1]["description"].endswith("pre job migrate: succeeded"), statuses[-1]
