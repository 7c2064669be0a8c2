"""Stopping a rollout's executions against the emulator, as gcloud does: a cancel confirmed by the
terminal condition, with an operator's own execution beside ours, and the guard that stops an execution
once its rollout is no longer ours. The pure rules: tests/unit/jobs/test_jobs_rules.py."""

from __future__ import annotations

import pytest
import requests

from cloudrun_emulator import Emulator
from deployer.client import CloudRun
from deployer.jobs import runner, spec
from deployer.result import Phase
from deployer.settings import RunContext
from tests.cloudrun import completed, condition
from tests.config import cfg
from tests.helpers import Jobs


class Log:
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    def warning(self, text: str) -> None:
        self.lines.append(text)

    def phase_started(self, phase: Phase) -> None:
        pass

    def phase_finished(self, phase: Phase) -> None:
        pass


# ---- against the emulator -------------------------------------------------------------------


def _api(emu: Emulator, project: str) -> CloudRun:
    return CloudRun(requests.Session(), region="us-central1", project=project, api_endpoint=emu.url)


def _job(jobs: Jobs, name: str, sleep_ms: str) -> None:
    container = {"image": "sample/job", "env": [{"name": "SLEEP_MS", "value": sleep_ms}]}
    body = {
        "apiVersion": "run.googleapis.com/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"template": {"spec": {"containers": [container], "maxRetries": 0}}}}},
    }
    assert requests.post(f"{jobs.ns}/jobs", json=body, timeout=10).status_code == 200


def _run(jobs: Jobs, name: str, marker: str = "") -> str:
    env = [{"name": spec.MARKER_ENV, "value": marker}] if marker else []
    body = {"overrides": {"containerOverrides": [{"env": env}]}} if env else {}
    resp = requests.post(f"{jobs.ns}/jobs/{name}:run", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["metadata"]["name"])


def test_cancel_is_confirmed_by_the_terminal_condition(emulator: Emulator, project: str) -> None:
    jobs, api = Jobs(emulator.url, project), _api(emulator, project)
    _job(jobs, "slow", "60000")
    stopped = runner.cancel_execution(api, _run(jobs, "slow"))
    assert (stopped.result, stopped.message) == ("cancelled", f"Cancelled execution [{stopped.execution}].")
    assert condition(jobs.execution(stopped.execution), "Completed")["reason"] == "Cancelled"

    _job(jobs, "quick", "0")
    done = _run(jobs, "quick")
    completed(lambda: jobs.execution(done), 20)
    late = runner.cancel_execution(api, done)  # the server answers 400: it had finished
    assert (late.result, late.message) == (
        "succeeded", f"[{done}] has completed successfully before it could be cancelled."
    )  # fmt: skip
    gone = runner.cancel_execution(api, "quick-nopes")
    assert gone.result == "gone" and not gone.escaped


def test_stopping_a_rollout_cancels_its_executions_and_leaves_an_operators_alone(
    emulator: Emulator, project: str
) -> None:
    jobs, api, log = Jobs(emulator.url, project), _api(emulator, project), Log()
    _job(jobs, "migrate", "60000")
    ours = _run(jobs, "migrate", spec.execution_marker("tok1", "pre"))
    other_run = _run(jobs, "migrate", spec.execution_marker("tok2", "pre"))
    operator = _run(jobs, "migrate")  # `gcloud run jobs execute migrate` beside the action
    found = runner.stop_rollout_executions(api, "migrate", "tok1", log)
    assert [(s.execution, s.result) for s in found] == [(ours, "cancelled")]
    assert f"Job migrate: Cancelled execution [{ours}]." in log.lines
    assert condition(jobs.execution(ours), "Completed")["reason"] == "Cancelled"
    for untouched in (other_run, operator):
        assert condition(jobs.execution(untouched), "Completed")["status"] == "Unknown"
    again = runner.stop_rollout_executions(api, "migrate", "tok1", log)
    assert [s.result for s in again] == ["cancelled"] and again[0].message.startswith("execution ")
    assert runner.stop_rollout_executions(api, "no-such-job", "tok1", log) == []
    for name in (other_run, operator):
        requests.post(f"{jobs.ns}/executions/{name}:cancel", json={}, timeout=10)


def test_stopping_waits_for_a_launch_that_has_not_landed_yet(emulator: Emulator, project: str) -> None:
    jobs, api, log = Jobs(emulator.url, project), _api(emulator, project), Log()
    _job(jobs, "migrate", "60000")
    clock = [0.0]

    def sleep(seconds: float) -> None:  # the execution lands during the second look
        clock[0] += seconds
        if not jobs.executions("migrate"):
            _run(jobs, "migrate", spec.execution_marker("tok", "post"))

    found = runner.stop_jobs_of_rollout(
        api,
        ["migrate"],
        "tok",
        log,
        pending=("post", "migrate"),
        settle=10,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    assert [s.result for s in found] == ["cancelled"], log.lines
    nothing = runner.stop_jobs_of_rollout(
        api,
        ["migrate"],
        "tok",
        log,
        pending=("pre", "migrate"),
        settle=2,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    assert [s.result for s in nothing] == [
        "cancelled"
    ]  # only the earlier one, seen as ended; none waited for
    assert clock[0] >= 2


def test_an_execution_stops_when_its_rollout_is_no_longer_ours(
    emulator: Emulator, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator rolls the release back while its migration runs: the guard says so, the execution
    # is cancelled; asked before :run, nothing is executed at all.
    monkeypatch.setattr(runner, "GUARD_INTERVAL", 0.2)
    config = cfg(
        pre_job="migrate", job_env_vars="SLEEP_MS=60000", api_endpoint=emulator.url, project_id=project
    )
    api, log, answers = (
        _api(emulator, project),
        Log(),
        ["", "", "service shop was rolled back by an operator"],
    )
    jobs = Jobs(emulator.url, project)

    def guard(when: str) -> str:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    job_runner = runner.JobRunner(config, RunContext(), api, log, token="tok", guard=guard)
    record = job_runner.run("pre", "migrate", "sample/job", [])
    assert record.result == "cancelled", log.lines
    reason = "service shop was rolled back by an operator"
    assert record.message == f"{reason}; cancelled execution {record.execution} of job migrate"
    assert condition(jobs.execution(record.execution), "Completed")["reason"] == "Cancelled"

    refused = job_runner.run("pre", "migrate", "sample/job", [])
    assert refused.result == "cancelled" and "not executed: service shop was rolled back" in refused.message
    assert len(jobs.executions("migrate")) == 1  # no second execution
