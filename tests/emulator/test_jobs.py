"""The emulator's jobs API over real HTTP: strict bodies, executions that really run their tasks
(task env, exit codes, retries, timeouts, parallelism), cancel, and the conditions Cloud Run reports."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest
import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.jobs import JobStore
from tests.cloudrun import condition, error_of
from tests.jobs_api import JOB_IMAGE, Jobs, job_body, shell

_ids = itertools.count()


@pytest.fixture
def jobs(emu: Emulator) -> Jobs:
    return Jobs(emu.url, f"jobs-{next(_ids)}")


def test_create_fills_defaults_and_get_replace_list_delete(jobs: Jobs) -> None:
    created = jobs.create(job_body("migrate"))
    assert created.status_code == 200, created.text
    job = created.json()
    task = job["spec"]["template"]["spec"]["template"]["spec"]
    assert job["spec"]["template"]["spec"]["taskCount"] == 1
    assert (task["maxRetries"], task["timeoutSeconds"]) == (3, "600")
    assert condition(job, "Ready")["status"] == "True"
    assert job["metadata"]["annotations"]["run.googleapis.com/creator"]
    assert jobs.create(job_body("migrate")).status_code == 409

    body = jobs.get("migrate")
    body["spec"]["template"]["spec"]["taskCount"] = 4
    replaced = jobs.put(body)
    assert replaced.status_code == 200 and replaced.json()["metadata"]["generation"] == 2
    stale = jobs.put(body)  # the resourceVersion of before the last write
    assert stale.status_code == 409 and error_of(stale)["status"] == "ABORTED"
    listed = requests.get(f"{jobs.ns}/jobs", timeout=10).json()
    assert [j["metadata"]["name"] for j in listed["items"]] == ["migrate"]
    assert requests.delete(f"{jobs.ns}/jobs/migrate", timeout=10).status_code == 200
    assert requests.get(f"{jobs.ns}/jobs/migrate", timeout=10).status_code == 404


def test_strict_bodies_and_cloud_run_rules(jobs: Jobs) -> None:
    unknown = job_body("j")
    unknown["spec"]["template"]["spec"]["template"]["spec"]["bogus"] = 1
    resp = jobs.create(unknown)
    assert resp.status_code == 400 and 'Unknown name "bogus"' in error_of(resp)["message"]

    bad = job_body("Bad_Name", taskCount=0, parallelism=-1, maxRetries=11, timeoutSeconds="0")
    bad["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    resp = jobs.create(bad)
    assert resp.status_code == 400
    fields = {v["field"] for v in error_of(resp)["details"][0]["fieldViolations"]}
    where = "spec.template.spec"
    assert fields == {
        "metadata.name",
        f"{where}.taskCount",
        f"{where}.parallelism",
        f"{where}.template.spec.maxRetries",
        f"{where}.template.spec.timeoutSeconds",
        f"{where}.template.spec.containers[0].ports",
    }
    assert jobs.create(job_body("j"), dryRun="all").status_code == 200
    assert requests.get(f"{jobs.ns}/jobs/j", timeout=10).status_code == 404  # dry run wrote nothing


def test_missing_image_makes_the_job_not_ready_and_unrunnable(jobs: Jobs) -> None:
    job = jobs.create(job_body("ghost", image="nowhere/none:v1")).json()
    assert condition(job, "Ready")["reason"] == "ContainerMissing"
    resp = jobs.run("ghost")
    assert resp.status_code == 400 and error_of(resp)["status"] == "FAILED_PRECONDITION"


def test_tasks_get_cloud_run_env_and_overrides(jobs: Jobs, tmp_path: Path) -> None:
    script = (
        'echo "$CLOUD_RUN_JOB $CLOUD_RUN_EXECUTION $CLOUD_RUN_TASK_INDEX $CLOUD_RUN_TASK_COUNT '
        '$CLOUD_RUN_TASK_ATTEMPT $GREETING $*" > "$OUT/$CLOUD_RUN_TASK_INDEX"'
    )
    body = job_body(
        "env", command=[*shell(script), "sh"], taskCount=2, env={"OUT": str(tmp_path), "GREETING": "hi"}
    )
    assert jobs.create(body).status_code == 200
    overrides = {
        "taskCount": 3,
        "containerOverrides": [{"args": ["a", "b"], "env": [{"name": "GREETING", "value": "bye"}]}],
    }
    done = jobs.execute("env", overrides)
    name = done["metadata"]["name"]
    assert done["spec"]["taskCount"] == 3 and done["status"]["succeededCount"] == 3
    assert condition(done, "Completed") | {"lastTransitionTime": ""} == {
        "type": "Completed",
        "status": "True",
        "message": f"Execution {name} has completed successfully.",
        "lastTransitionTime": "",
    }
    lines = sorted((tmp_path / str(i)).read_text().split() for i in range(3))
    assert lines == [["env", name, str(i), "3", "0", "bye", "a", "b"] for i in range(3)]
    assert done["metadata"]["labels"]["run.googleapis.com/job"] == "env"
    job = jobs.get("env")  # overrides are for that execution only
    assert job["spec"]["template"]["spec"]["taskCount"] == 2
    assert job["status"]["latestCreatedExecution"]["completionStatus"] == "EXECUTION_SUCCEEDED"


def test_exit_codes_retries_and_failed_condition(jobs: Jobs) -> None:
    # Task 1 fails on its first attempt only; task 2 always exits 7.
    script = 'case "$CLOUD_RUN_TASK_INDEX/$CLOUD_RUN_TASK_ATTEMPT" in 1/0) exit 5;; 2/*) exit 7;; esac'
    assert jobs.create(job_body("flaky", command=shell(script), taskCount=3, maxRetries=2)).status_code == 200
    done = jobs.execute("flaky")
    status = done["status"]
    assert (status["succeededCount"], status["failedCount"], status["retriedCount"]) == (2, 1, 3)
    completed = condition(done, "Completed")
    assert (completed["status"], completed["reason"]) == ("False", "NonZeroExitCode")
    assert "task2 failed after 3 attempt(s)" in completed["message"] and "exit code 7" in completed["message"]
    tasks = jobs.tasks(done["metadata"]["name"])
    assert [t["status"].get("retried", 0) for t in tasks] == [0, 1, 2]
    assert tasks[2]["status"]["lastAttemptResult"]["exitCode"] == 7
    assert condition(tasks[2], "Completed")["status"] == "False"
    assert condition(tasks[1], "Completed")["status"] == "True"


def test_a_command_that_does_not_exist_is_a_failed_attempt_not_an_execution_that_never_started(
    jobs: Jobs,
) -> None:
    # Nothing documents what turns an execution's Started False: here the task starts and fails.
    body = job_body("typo", command=["/no/such/migrate"], maxRetries=1)
    assert jobs.create(body).status_code == 200
    done = jobs.execute("typo")
    assert condition(done, "Started")["status"] == "True"
    completed = condition(done, "Completed")
    assert (completed["status"], completed["reason"]) == ("False", "NonZeroExitCode")
    assert "'/no/such/migrate' could not be started" in completed["message"]
    (task,) = jobs.tasks(done["metadata"]["name"])
    assert task["status"]["retried"] == 1 and task["status"]["lastAttemptResult"]["exitCode"] == 127


def test_task_timeout_kills_the_attempt(jobs: Jobs) -> None:
    assert (
        jobs.create(job_body("slow", command=["sleep", "30"], maxRetries=0, timeoutSeconds="1")).status_code
        == 200
    )
    started = time.monotonic()
    done = jobs.execute("slow")
    assert time.monotonic() - started < 10
    completed = condition(done, "Completed")
    assert (completed["status"], completed["reason"]) == ("False", "TaskFailed")
    assert "timeout of 1 seconds" in completed["message"]


def test_parallelism_bounds_the_tasks_running_at_once(jobs: Jobs, tmp_path: Path) -> None:
    # Each task records when it ran; with parallelism 2 no three intervals overlap.
    program = "import time; s = time.time(); time.sleep(0.4); print(s, time.time())"
    script = f'{sys.executable} -c "{program}" > "$OUT/$CLOUD_RUN_TASK_INDEX"'
    body = job_body("par", command=shell(script), taskCount=4, parallelism=2, env={"OUT": str(tmp_path)})
    assert jobs.create(body).status_code == 200
    done = jobs.execute("par")
    assert done["status"]["succeededCount"] == 4
    spans = [tuple(map(float, (tmp_path / str(i)).read_text().split())) for i in range(4)]
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2


def test_cancel_kills_running_tasks_and_cancels_waiting_ones(jobs: Jobs) -> None:
    body = job_body("long", taskCount=3, parallelism=1, env={"SLEEP_MS": "30000"})
    assert jobs.create(body).status_code == 200
    name = jobs.run("long").json()["metadata"]["name"]
    end = time.monotonic() + 10
    while jobs.execution(name)["status"].get("runningCount", 0) != 1:
        assert time.monotonic() < end
        time.sleep(0.05)
    cancelled = requests.post(f"{jobs.ns}/executions/{name}:cancel", json={}, timeout=10)
    assert cancelled.status_code == 200
    done = jobs.finished(name, timeout=5)
    assert condition(done, "Completed")["reason"] == "Cancelled"
    assert done["status"]["cancelledCount"] == 3 and "succeededCount" not in done["status"]
    again = requests.post(f"{jobs.ns}/executions/{name}:cancel", json={}, timeout=10)
    assert again.status_code == 400 and error_of(again)["status"] == "FAILED_PRECONDITION"
    assert jobs.get("long")["status"]["latestCreatedExecution"]["completionStatus"] == "EXECUTION_CANCELLED"


def test_sample_job_fails_at_fail_rate_one(jobs: Jobs) -> None:
    assert jobs.create(job_body("sample", maxRetries=0, env={"FAIL_RATE": "1"})).status_code == 200
    done = jobs.execute("sample")
    assert done["status"]["failedCount"] == 1
    assert jobs.tasks(done["metadata"]["name"])[0]["status"]["lastAttemptResult"]["exitCode"] == 1


def test_bad_overrides_are_refused(jobs: Jobs) -> None:
    assert jobs.create(job_body("o")).status_code == 200
    resp = jobs.run("o", {"taskCount": 20000, "containerOverrides": [{"name": "nope", "args": ["x"]}]})
    assert resp.status_code == 400
    fields = {v["field"] for v in error_of(resp)["details"][0]["fieldViolations"]}
    assert fields == {"overrides.taskCount", "overrides.containerOverrides[0].name"}
    resp = jobs.run("o", {"containerOverrides": [{"args": ["x"], "clearArgs": True}]})
    assert resp.status_code == 400


def test_container_commands_run_only_on_a_loopback_emulator() -> None:
    store = JobStore(ImageCatalogue(), allow_commands=False)  # as Emulator(host="0.0.0.0") builds it
    try:
        store.create_job("p", job_body("cmd", command=shell("exit 0"), maxRetries=0), dry_run=False)
        name = store.run_job("p", "cmd", {})["metadata"]["name"]
        end = time.monotonic() + 10
        while condition(execution := store.get_execution("p", name), "Completed")["status"] == "Unknown":
            assert time.monotonic() < end
            time.sleep(0.05)
        assert "not run" in condition(execution, "Completed")["message"]
        assert store.list_tasks("p", "", 0, "")["items"][0]["status"]["lastAttemptResult"]["exitCode"] == 126
    finally:
        store.close()


def test_multi_container_job_runs_its_sidecars_and_the_main_container_decides(
    jobs: Jobs, tmp_path: Path
) -> None:
    # The main (first) container writes, waits for its sidecar, and exits with MAIN_EXIT; the sidecar
    # would run for ever: it is stopped when the main container ends, and its exit does not count.
    main = shell('until [ -f "$OUT/up" ]; do sleep 0.02; done; echo "$ROLE" > "$OUT/main"; exit "$MAIN_EXIT"')
    side = shell('trap \'echo stopped > "$OUT/side"; exit 1\' TERM; echo "$ROLE" > "$OUT/up"; '
                 "while :; do sleep 0.02; done")  # fmt: skip
    body = job_body("multi", maxRetries=0)
    env = [{"name": "OUT", "value": str(tmp_path)}, {"name": "MAIN_EXIT", "value": "0"}]
    body["spec"]["template"]["spec"]["template"]["spec"]["containers"] = [
        {"name": "main", "image": JOB_IMAGE, "command": main, "env": [*env, {"name": "ROLE", "value": "m"}]},
        {"name": "proxy", "image": JOB_IMAGE, "command": side, "env": [*env, {"name": "ROLE", "value": "p"}]},
    ]
    created = jobs.create(body)
    assert created.status_code == 200, created.text
    stored = created.json()["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in stored] == ["main", "proxy"]
    started = time.monotonic()
    done = jobs.execute("multi")
    assert time.monotonic() - started < 10 and condition(done, "Completed")["status"] == "True"
    assert (tmp_path / "main").read_text().strip() == "m" and (tmp_path / "up").read_text().strip() == "p"
    assert (tmp_path / "side").read_text().strip() == "stopped"  # stopped with SIGTERM, its exit 1 ignored

    for path in tmp_path.iterdir():
        path.unlink()
    failing = jobs.execute(
        "multi", {"containerOverrides": [{"name": "main", "env": [{"name": "MAIN_EXIT", "value": "3"}]}]}
    )
    assert condition(failing, "Completed")["reason"] == "NonZeroExitCode"
    assert jobs.tasks(failing["metadata"]["name"])[0]["status"]["lastAttemptResult"]["exitCode"] == 3


def test_multi_container_jobs_need_named_containers_and_at_most_ten(jobs: Jobs) -> None:
    body = job_body("bad")
    body["spec"]["template"]["spec"]["template"]["spec"]["containers"] = [{"image": JOB_IMAGE}] * 2
    resp = jobs.create(body)
    assert resp.status_code == 400
    fields = {v["field"] for v in error_of(resp)["details"][0]["fieldViolations"]}
    where = "spec.template.spec.template.spec.containers"
    assert fields == {f"{where}[0].name", f"{where}[1].name"}
    body["spec"]["template"]["spec"]["template"]["spec"]["containers"] = [
        {"name": f"c{i}", "image": JOB_IMAGE} for i in range(11)
    ]
    resp = jobs.create(body)
    assert resp.status_code == 400 and "1 to 10 containers" in error_of(resp)["message"]


def test_tasks_carry_their_running_state_label(jobs: Jobs) -> None:
    # What `gcloud run jobs executions tasks list --failed` selects on.
    script = 'case "$CLOUD_RUN_TASK_INDEX" in 1) exit 4;; esac'
    assert (
        jobs.create(job_body("states", command=shell(script), taskCount=3, maxRetries=0)).status_code == 200
    )
    name = jobs.execute("states")["metadata"]["name"]
    states = {t["status"].get("index", 0): t["metadata"]["labels"]["run.googleapis.com/runningState"]
              for t in jobs.tasks(name)}  # fmt: skip
    assert states == {0: "Succeeded", 1: "Failed", 2: "Succeeded"}
    selector = f"run.googleapis.com/execution = {name},run.googleapis.com/runningState in (Failed)"
    failed = requests.get(f"{jobs.ns}/tasks", params={"labelSelector": selector}, timeout=10).json()["items"]
    assert [t["metadata"]["name"] for t in failed] == [f"{name}-task1"]


def test_an_image_deleted_after_the_job_was_written_leaves_the_execution_without_resources(
    emu: Emulator, jobs: Jobs
) -> None:
    image = f"{JOB_IMAGE}:deleted-{jobs.project}"
    assert jobs.create(job_body("orphan", image=image)).status_code == 200
    config = requests.post(f"{emu.url}/_emulator/config", json={"deleted_images": [image]}, timeout=5).json()
    assert image in config["deleted_images"]
    name = jobs.run("orphan").json()["metadata"]["name"]
    end = time.monotonic() + 5
    while condition(execution := jobs.execution(name), "ResourcesAvailable")["status"] != "False":
        assert time.monotonic() < end
        time.sleep(0.05)
    resources = condition(execution, "ResourcesAvailable")
    assert (resources["reason"], resources["message"]) == ("ContainerMissing", f"Image '{image}' not found.")
    time.sleep(0.3)  # it waits for resources: not started, not completed
    execution = jobs.execution(name)
    assert condition(execution, "Completed")["status"] == "Unknown"
    assert condition(execution, "Started")["status"] == "Unknown"
    assert requests.post(f"{jobs.ns}/executions/{name}:cancel", json={}, timeout=10).status_code == 200
    assert condition(jobs.finished(name, timeout=5), "Completed")["reason"] == "Cancelled"
