"""`gcloud run jobs` against the emulator: create, update, execute --wait, executions list / describe /
cancel, tasks list --failed, a job with sidecars, with the requests and conditions gcloud's own source
uses (namespaces/{project}/jobs in the v1 API; ``Completed`` is the terminal condition of an execution,
``Cancelled`` its reason after a cancel; a False ``ResourcesAvailable`` fails ``execute --wait`` at once;
tasks are selected by their ``run.googleapis.com/runningState`` label).
"""

from __future__ import annotations

import time

import pytest

from cloudrun_emulator import Emulator
from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud

JOB_IMAGE = "us-docker.pkg.dev/cloudrun/container/job"


def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in obj["status"]["conditions"]}


def test_create_update_execute_wait_and_list(gc: Gcloud) -> None:
    gc.text(
        "run", "jobs", "create", "migrate", "--image", JOB_IMAGE, "--tasks", "3", "--max-retries", "1",
        "--task-timeout", "60s", "--set-env-vars", "SLEEP_MS=100", "--format", "none",
    )  # fmt: skip
    job = gc.run("run", "jobs", "describe", "migrate")
    assert conditions(job)["Ready"] == ("True", "")
    assert job["spec"]["template"]["spec"]["taskCount"] == 3
    assert job["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"

    gc.text("run", "jobs", "update", "migrate", "--parallelism", "1", "--format", "none")
    job = gc.run("run", "jobs", "describe", "migrate")
    assert job["metadata"]["generation"] == 2 and job["spec"]["template"]["spec"]["parallelism"] == 1

    executed = gc.call("run", "jobs", "execute", "migrate", "--wait", "--update-env-vars", "STAGE=one")
    assert executed.returncode == 0, executed.stderr
    assert "has successfully completed" in executed.stderr
    listed = gc.run("run", "jobs", "executions", "list", "--job", "migrate")
    assert len(listed) == 1
    execution = listed[0]
    assert conditions(execution)["Completed"] == ("True", "")
    assert execution["status"]["succeededCount"] == 3
    env = execution["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STAGE", "value": "one"} in env  # the override, this execution only
    described = gc.run("run", "jobs", "executions", "describe", execution["metadata"]["name"])
    assert described["metadata"]["labels"]["run.googleapis.com/job"] == "migrate"
    tasks = gc.run("run", "jobs", "executions", "tasks", "list", "--execution", execution["metadata"]["name"])
    assert sorted(t["status"]["index"] for t in tasks if "index" in t["status"]) == [1, 2]  # 0 is omitted
    assert len(tasks) == 3 and all(t["status"]["conditions"][0]["status"] == "True" for t in tasks)

    executed = gc.call("run", "jobs", "execute", "migrate", "--wait", "--tasks", "1", "--task-timeout", "30s")
    assert executed.returncode == 0, executed.stderr
    latest = gc.run("run", "jobs", "executions", "list", "--job", "migrate")[0]
    assert latest["spec"]["taskCount"] == 1 and latest["spec"]["template"]["spec"]["timeoutSeconds"] == "30"
    assert gc.call("run", "jobs", "delete", "migrate", "--quiet").returncode == 0
    assert gc.call("run", "jobs", "describe", "migrate").returncode != 0


def test_execute_wait_fails_when_a_task_fails(gc: Gcloud) -> None:
    gc.text(
        "run", "jobs", "create", "broken", "--image", JOB_IMAGE, "--max-retries", "0",
        "--set-env-vars", "FAIL_RATE=1", "--format", "none",
    )  # fmt: skip
    executed = gc.call("run", "jobs", "execute", "broken", "--wait")
    assert executed.returncode != 0
    assert "The execution failed" in executed.stderr
    execution = gc.run("run", "jobs", "executions", "list", "--job", "broken")[0]
    assert conditions(execution)["Completed"] == ("False", "NonZeroExitCode")
    assert execution["status"]["failedCount"] == 1


def test_executions_cancel_stops_a_running_execution(gc: Gcloud) -> None:
    gc.text(
        "run", "jobs", "create", "slow", "--image", JOB_IMAGE, "--set-env-vars", "SLEEP_MS=60000",
        "--format", "none",
    )  # fmt: skip
    started = gc.run("run", "jobs", "execute", "slow", "--async")
    name = started["metadata"]["name"]
    deadline = time.monotonic() + 10
    while (
        conditions(gc.run("run", "jobs", "executions", "describe", name)).get("Started", ("",))[0] != "True"
    ):
        assert time.monotonic() < deadline, "the execution never started"
        time.sleep(0.2)
    cancelled = gc.call("run", "jobs", "executions", "cancel", name)
    assert cancelled.returncode == 0, cancelled.stderr
    # gcloud waits for the terminal condition (reason Cancelled) before it says so (cancellation.py)
    assert f"Cancelled execution [{name}]." in cancelled.stderr, cancelled.stderr
    assert "before it could be cancelled" not in cancelled.stderr
    execution = gc.run("run", "jobs", "executions", "describe", name)
    assert conditions(execution)["Completed"] == ("False", "Cancelled")
    assert execution["status"]["cancelledCount"] == 1


def test_execute_wait_fails_at_once_when_the_execution_gets_no_resources(
    gc: Gcloud, emulator: Emulator
) -> None:
    image = f"{JOB_IMAGE}:doomed-{gc.project}"
    gc.text("run", "jobs", "create", "doomed", "--image", image, "--format", "none")
    emulator.configure({"deleted_images": [image]})  # deleted from its registry since
    started = time.monotonic()
    executed = gc.call("run", "jobs", "execute", "doomed", "--wait")
    assert executed.returncode != 0 and time.monotonic() - started < 60  # not the 600 s task timeout
    assert "The execution failed" in executed.stderr
    execution = gc.run("run", "jobs", "executions", "list", "--job", "doomed")[0]
    assert conditions(execution)["ResourcesAvailable"] == ("False", "ContainerMissing")
    assert conditions(execution)["Completed"] == ("Unknown", "")  # still waiting for resources
    cancelled = gc.call("run", "jobs", "executions", "cancel", execution["metadata"]["name"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert conditions(gc.run("run", "jobs", "executions", "describe", execution["metadata"]["name"]))[
        "Completed"
    ] == ("False", "Cancelled")


def test_tasks_list_failed_shows_the_failed_tasks(gc: Gcloud) -> None:
    gc.text(
        "run", "jobs", "create", "states", "--image", JOB_IMAGE, "--tasks", "3", "--max-retries", "0",
        "--command", "/bin/sh", "--args", '-c,case "$CLOUD_RUN_TASK_INDEX" in 1) exit 4;; esac',
        "--format", "none",
    )  # fmt: skip
    assert gc.call("run", "jobs", "execute", "states", "--wait").returncode != 0
    name = gc.run("run", "jobs", "executions", "list", "--job", "states")[0]["metadata"]["name"]
    failed = gc.run("run", "jobs", "executions", "tasks", "list", "--execution", name, "--failed")
    assert [t["metadata"]["name"] for t in failed] == [f"{name}-task1"]
    assert failed[0]["metadata"]["labels"]["run.googleapis.com/runningState"] == "Failed"
    succeeded = gc.run("run", "jobs", "executions", "tasks", "list", "--execution", name, "--succeeded")
    assert sorted(t["metadata"]["name"] for t in succeeded) == [f"{name}-task0", f"{name}-task2"]


def test_a_job_with_a_sidecar_runs_to_the_main_containers_end(gc: Gcloud) -> None:
    gc.text(
        "run", "jobs", "create", "multi", "--max-retries", "0", "--format", "none",
        "--container", "main", "--image", JOB_IMAGE, "--set-env-vars", "SLEEP_MS=100",
        "--container", "proxy", "--image", JOB_IMAGE, "--command", "sleep", "--args", "600",
    )  # fmt: skip
    job = gc.run("run", "jobs", "describe", "multi")
    containers = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "proxy"]
    started = time.monotonic()
    executed = gc.call("run", "jobs", "execute", "multi", "--wait")
    assert executed.returncode == 0, executed.stderr
    assert time.monotonic() - started < 60  # the sidecar was stopped when the main container ended
    execution = gc.run("run", "jobs", "executions", "list", "--job", "multi")[0]
    assert conditions(execution)["Completed"] == ("True", "")
    refused = gc.call("run", "jobs", "update", "multi", "--image", f"{JOB_IMAGE}:v2")
    assert refused.returncode != 0 and "--container" in refused.stderr  # gcloud asks which container
