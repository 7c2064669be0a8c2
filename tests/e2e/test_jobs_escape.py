"""No job execution escapes the rollout that started it (issue: killed runs, re-runs, cancels during
``jobs/NAME:run``), and executions behave as Cloud Run and gcloud say (fail fast on resources, gcloud's
cancel report, every task page, the job's container chosen as gcloud chooses it).

Each execution the action starts carries ``RUN_CANARY_ROLLOUT=<token>/<when>`` (``RunJobRequest``
overrides: the execution's env only); whoever ends or takes over the rollout finds them by it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import requests

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, condition, routing
from tests.helpers import SHOP as SERVICE
from tests.helpers import Jobs
from tests.helpers import shop_inputs as rollout_inputs
from tests.helpers import target as job_inputs

MARKER = "RUN_CANARY_ROLLOUT"


def marker(execution: dict[str, Any]) -> str:
    env = execution["spec"]["template"]["spec"]["containers"][0].get("env", [])
    return next((e["value"] for e in env if e["name"] == MARKER), "")


def running(jobs: Jobs, job: str) -> list[str]:
    return [
        e["metadata"]["name"]
        for e in jobs.executions(job)
        if condition(e, "Completed")["status"] == "Unknown"
    ]


def settle(jobs: Jobs, job: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The job's executions once ``count`` exist and none is still running (a cancel takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        found = jobs.executions(job)
        if len(found) >= count and not running(jobs, job):
            return found
        assert time.monotonic() < deadline, [e["status"] for e in found]
        time.sleep(0.1)


def test_cancel_while_the_run_call_is_in_flight_leaves_no_running_execution(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    emu = own_emulator
    api = Api(emu.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    before = [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p]
    # The server creates the execution 2 s after the request came: after the cancel, answer abandoned.
    emu.faults.add(method="POST", path=r"/jobs/migrate:run$", delay=2.0)
    inputs = rollout_inputs(
        emu, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    with harness.start(inputs, tmp_path=tmp_path, post=False) as action:  # its post step: below
        action.wait_for_output(r"Created job migrate", timeout=60)
        time.sleep(0.8)  # the :run request is on its way
        signalled = time.monotonic()
        action.send_signal(signal.SIGINT)
        main = action.wait(timeout=30)
    assert main.returncode != 0 and time.monotonic() - signalled < 7.5, main.log
    jobs = Jobs(emu.url, project)
    (execution,) = settle(jobs, "migrate", 1)
    assert condition(execution, "Completed")["reason"] == "Cancelled", main.log
    assert marker(execution).endswith("/pre")
    assert main.outputs["job_result"] == "cancelled"
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == before
    post = harness.run_post(main, inputs, tmp_path=tmp_path / "post", timeout=60)
    assert post.returncode == 0, post.log
    assert len(jobs.executions("migrate")) == 1 and not running(jobs, "migrate")


def test_an_execution_that_lands_after_the_main_step_gave_up_is_cancelled_by_the_post_step(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    emu = own_emulator
    Api(emu.url, project).create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    emu.faults.add(method="POST", path=r"/jobs/migrate:run$", delay=6.0)  # longer than the main step looks
    inputs = rollout_inputs(
        emu, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    with harness.start(inputs, tmp_path=tmp_path / "main", post=False) as action:  # its post step: below
        action.wait_for_output(r"Created job migrate", timeout=60)
        time.sleep(0.8)
        action.send_signal(signal.SIGINT)
        main = action.wait(timeout=30)
    assert main.returncode != 0, main.log
    assert main.state.get("job_launch") == "pre/migrate"  # sent, never answered
    post = harness.run_post(main, inputs, tmp_path=tmp_path / "post", timeout=60)
    assert post.returncode == 0, post.log
    jobs = Jobs(emu.url, project)
    (execution,) = settle(jobs, "migrate", 1)
    assert condition(execution, "Completed")["reason"] == "Cancelled", post.log
    assert f"cancelled execution {execution['metadata']['name']}" in post.log


def test_rerun_after_a_killed_run_cancels_its_execution_and_leaves_one(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    # Pinned (a service that follows latestRevision meets the re-run "latest" issue, not this one).
    api.replace_service(
        SERVICE, "sample/hello:v1", f"{SERVICE}-v1", [{"revisionName": f"{SERVICE}-v1", "percent": 100}]
    )
    flag = tmp_path / "slow"
    flag.write_text("")  # while it exists, the migration takes a minute
    script = f'if [ -e "{flag}" ]; then sleep 60; fi'
    inputs = rollout_inputs(
        emulator,
        project,
        pre_job="migrate",
        job_image="sample/job",
        job_command=f'["/bin/sh", "-c", {script!r}]',
    )
    with harness.start(inputs, tmp_path=tmp_path / "1") as action:
        action.wait_for_output(r"Execution migrate-\w+ of job migrate started", timeout=60)
        action.kill()
        killed = action.wait()
    old = killed.state["job_execution"]
    jobs = Jobs(emulator.url, project)
    assert running(jobs, "migrate") == [old]
    flag.unlink()
    rerun = harness.run(inputs, tmp_path=tmp_path / "2", github={"GITHUB_RUN_ATTEMPT": "2"}, timeout=90)
    assert rerun.returncode == 0, rerun.log
    assert rerun.outputs["result"] == "promoted", rerun.log
    assert "Undoing the unfinished rollout" in rerun.log
    executions = settle(jobs, "migrate", 2)
    results = {e["metadata"]["name"]: condition(e, "Completed") for e in executions}
    assert results[old]["reason"] == "Cancelled", rerun.log
    (new,) = set(results) - {old}
    assert results[new]["status"] == "True" and rerun.outputs["job_execution"] == new
    assert marker(jobs.execution(old)).split("/")[0] != marker(jobs.execution(new)).split("/")[0]


def test_an_execution_without_resources_fails_at_once_with_the_reason(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    emu = own_emulator
    image = f"sample/job:doomed-{project}"
    inputs = job_inputs(emu, project, mode="job", job="backfill", image=image, job_wait_timeout="10m")
    first = harness.run(inputs, tmp_path=tmp_path / "1")
    assert first.returncode == 0, first.log
    emu.configure({"deleted_images": [image]})  # deleted from its registry since the job was written
    # The job stays as it is (the same image, nothing to write); its next execution finds no resources.
    started = time.monotonic()
    second = harness.run(inputs, tmp_path=tmp_path / "2", timeout=60)
    assert second.returncode == 1 and time.monotonic() - started < 20, second.log
    assert second.outputs["job_result"] == "failed"
    assert f"ResourcesAvailable: ContainerMissing: Image '{image}' not found." in second.log
    jobs = Jobs(emu.url, project)
    latest = jobs.execution(second.outputs["job_execution"])
    assert condition(latest, "Completed")["reason"] == "Cancelled"  # so that it can never start later
    assert not running(jobs, "backfill")


def test_tasks_are_read_on_every_page(own_emulator: Emulator, project: str, tmp_path: Path) -> None:
    from deployer.client import CloudRun

    emu = own_emulator
    inputs = job_inputs(
        emu, project, mode="job", job="wide", image="sample/job", job_tasks="5", job_max_retries="0",
        job_command='["/bin/sh", "-c", "exit $((CLOUD_RUN_TASK_INDEX + 1))"]',
    )  # fmt: skip
    result = harness.run(inputs, tmp_path=tmp_path)
    assert result.returncode == 1
    api = CloudRun(requests.Session(), region="us-central1", project=project, api_endpoint=emu.url)
    api.page_size = 2
    start = len(emu.requests())
    tasks = api.list_tasks(result.outputs["job_execution"])
    assert sorted(t["status"].get("index", 0) for t in tasks) == [0, 1, 2, 3, 4]
    pages = [r for r in emu.requests()[start:] if r["path"].endswith("/tasks")]
    assert len(pages) == 3 and [bool(r["query"].get("continue")) for r in pages] == [False, True, True]
    assert "task 4 exited with code 5" in result.log  # the run read them all too


def test_a_job_with_several_containers_needs_job_container(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    ns = f"{emulator.url}/apis/run.googleapis.com/v1/namespaces/{project}"
    containers = [  # the first is the main container: its exit ends the task; the proxy is stopped
        {"name": "migrate", "image": "sample/job", "env": [{"name": "SLEEP_MS", "value": "0"}]},
        {"name": "proxy", "image": "sample/job", "command": ["/bin/sh", "-c", "sleep 60"]},
    ]
    body = {
        "apiVersion": "run.googleapis.com/v1",
        "kind": "Job",
        "metadata": {"name": "multi"},
        "spec": {"template": {"spec": {"template": {"spec": {"containers": containers, "maxRetries": 0}}}}},
    }
    assert requests.post(f"{ns}/jobs", json=body, timeout=10).status_code == 200
    inputs = job_inputs(emulator, project, mode="job", job="multi", image="sample/job:v2")
    refused = harness.run(inputs, tmp_path=tmp_path / "1")
    assert refused.returncode == 1
    assert "the job has 2 containers ('migrate', 'proxy'); name the one to run" in refused.log
    assert "job_container" in refused.log
    chosen = harness.run({**inputs, "job_container": "migrate", "job_env_override": "STAGE=one"},
                         tmp_path=tmp_path / "2", timeout=60)  # fmt: skip
    assert chosen.returncode == 0, chosen.log
    jobs = Jobs(emulator.url, project)
    job = jobs.job("multi")
    images = {
        c["name"]: c["image"] for c in job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"migrate": "sample/job:v2", "proxy": "sample/job"}
    execution = jobs.execution(chosen.outputs["job_execution"])
    env = {
        c["name"]: {e["name"] for e in c.get("env", [])}
        for c in execution["spec"]["template"]["spec"]["containers"]
    }
    assert {"STAGE", MARKER} <= env["migrate"] and not {"STAGE", MARKER} & env.get("proxy", set())
    missing = harness.run({**inputs, "job_container": "web"}, tmp_path=tmp_path / "3")
    assert missing.returncode == 1 and "no container named 'web'" in missing.log


def test_a_new_job_names_its_namespace(emulator: Emulator, project: str, tmp_path: Path) -> None:
    inputs = job_inputs(emulator, project, mode="job", job="ns", image="sample/job")
    assert harness.run(inputs, tmp_path=tmp_path).returncode == 0
    (create,) = [
        r for r in emulator.requests()
        if r["method"] == "POST" and r["path"].endswith(f"/namespaces/{project}/jobs")
    ]  # fmt: skip
    assert create["body"]["metadata"]["namespace"] == project


def test_a_manual_rollback_cancels_the_pre_job_of_the_rollout_it_undoes(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    pinned = [{"revisionName": f"{SERVICE}-v1", "percent": 100}]
    api.replace_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1", pinned)
    before = [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p]
    inputs = rollout_inputs(
        emulator, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    with harness.start(inputs, tmp_path=tmp_path / "1") as action:
        action.wait_for_output(r"Execution migrate-\w+ of job migrate started", timeout=60)
        action.kill()
        killed = action.wait()
    jobs = Jobs(emulator.url, project)
    assert running(jobs, "migrate") == [killed.state["job_execution"]]
    # An operator, from another workflow: mode rollback names no job.
    manual = harness.run(
        job_inputs(emulator, project, service=SERVICE, mode="rollback"),
        tmp_path=tmp_path / "2",
        github={"GITHUB_RUN_ID": "2222222222"},
    )
    assert manual.returncode == 0, manual.log
    assert f"Cancelled execution [{killed.state['job_execution']}]" in manual.log
    (execution,) = settle(jobs, "migrate", 1)
    assert condition(execution, "Completed")["reason"] == "Cancelled"
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == before


def test_a_post_step_without_step_state_cancels_the_execution_through_the_record(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    # act gives a Docker action's post step no STATE_*: what it must know is in the record on the service.
    api = Api(emulator.url, project)
    api.create_service(SERVICE, "sample/hello:v1", f"{SERVICE}-v1")
    api.replace_service(
        SERVICE, "sample/hello:v1", f"{SERVICE}-v1", [{"revisionName": f"{SERVICE}-v1", "percent": 100}]
    )
    before = [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p]
    inputs = rollout_inputs(
        emulator, project, pre_job="migrate", job_image="sample/job", job_env_vars="SLEEP_MS=60000"
    )
    with harness.start(inputs, tmp_path=tmp_path / "main") as action:
        action.wait_for_output(r"Execution migrate-\w+ of job migrate started", timeout=60)
        action.kill()
        killed = action.wait()
    post = harness.run_post({}, inputs, tmp_path=tmp_path / "post", timeout=60)
    assert post.returncode == 0, post.log
    jobs = Jobs(emulator.url, project)
    (execution,) = settle(jobs, "migrate", 1)
    assert execution["metadata"]["name"] == killed.state["job_execution"]
    assert condition(execution, "Completed")["reason"] == "Cancelled", post.log
    assert [(r, p) for r, p, _ in routing(api.service(SERVICE)) if p] == before
