"""The rules of the jobs package one by one: which container the inputs apply to, the marker every
execution carries and how a rollout's executions are found by it, when an unfinished execution cannot
succeed, and cancelling as gcloud does (reported in its words). Against the emulator:
tests/e2e/test_jobs_stop.py."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.jobs import runner, spec
from deployer.settings import JobSettings
from tests.config import problems
from tests.unit.scripted import ScriptedServer, make

# ---- pure rules -----------------------------------------------------------------------------


def test_the_job_container_is_the_only_one_or_the_named_one() -> None:
    assert spec.job_container([{"image": "a"}], None) == 0
    assert spec.job_container([], None) == 0
    two = [{"name": "proxy", "image": "p"}, {"name": "app", "image": "a"}]
    assert spec.job_container(two, "app") == 1
    with pytest.raises(spec.ContainerError, match=r"2 containers \('proxy', 'app'\).*job_container"):
        spec.job_container(two, None)  # gcloud: "a container name must be specified via --container"
    with pytest.raises(spec.ContainerError, match="no container named 'web'"):
        spec.job_container(two, "web")


def test_job_body_writes_the_named_container_and_a_new_job_names_its_namespace() -> None:
    current = {
        "metadata": {"name": "m", "namespace": "p"},
        "spec": {"template": {"spec": {"template": {"spec": {"containers": [
            {"name": "proxy", "image": "p:1"}, {"name": "app", "image": "a:1"},
        ]}}}}},
    }  # fmt: skip
    body = spec.job_body(
        current, "m", JobSettings(container="app", args=("x",)), "a:2", labels={}, annotations={}
    )
    containers = body["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "proxy", "image": "p:1"}, {"name": "app", "image": "a:2", "args": ["x"]}]
    new = spec.job_body(None, "m", JobSettings(), "a:1", labels={}, annotations={}, namespace="my-project")
    assert new["metadata"]["namespace"] == "my-project"


def test_overrides_name_the_container_and_carry_the_marker() -> None:
    marker = spec.execution_marker("0123abcd", "pre")
    assert marker == "0123abcd/pre"
    assert spec.overrides(JobSettings(), "app", marker) == {
        "containerOverrides": [{"name": "app", "env": [{"name": spec.MARKER_ENV, "value": marker}]}]
    }
    assert spec.overrides(JobSettings(), "app") is None  # a name alone overrides nothing
    settings = JobSettings(env_override={"E": "1"})
    assert spec.overrides(settings, "", marker) == {
        "containerOverrides": [
            {"env": [{"name": "E", "value": "1"}, {"name": spec.MARKER_ENV, "value": marker}]}
        ]
    }


def test_an_execution_is_found_by_its_rollouts_token_or_its_launch() -> None:
    def execution(value: str | None) -> dict[str, Any]:
        env = [{"name": "X", "value": "1"}] + ([{"name": spec.MARKER_ENV, "value": value}] if value else [])
        return {"spec": {"template": {"spec": {"containers": [{"name": "s"}, {"env": env}]}}}}

    ours = execution("abc/pre")
    assert spec.marker_of(ours) == "abc/pre"
    assert spec.is_marked(ours, "abc") and spec.is_marked(ours, "abc/pre")
    assert not spec.is_marked(ours, "abc/post") and not spec.is_marked(ours, "ab")
    assert not spec.is_marked(execution(None), "abc")  # an operator's own execution
    assert not spec.is_marked(ours, "")


def test_a_false_resources_or_started_condition_blocks_an_execution() -> None:
    def execution(*conditions: dict[str, str]) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": "Completed", "status": "Unknown"}, *conditions]}}

    assert spec.blocked(execution({"type": "ResourcesAvailable", "status": "Unknown"})) == ""
    quota = {"type": "ResourcesAvailable", "status": "False", "reason": "Quota", "message": "no CPU left"}
    assert spec.blocked(execution(quota)) == "ResourcesAvailable: Quota: no CPU left"
    started = {"type": "Started", "status": "False", "reason": "ContainerMissing"}
    assert spec.blocked(execution(started)) == "Started: ContainerMissing"
    assert spec.blocked(execution({**quota, "severity": "Error"})) != ""
    assert spec.blocked(execution({**quota, "severity": "Warning"})) == ""  # not terminal for gcloud
    assert spec.blocked(execution({**quota, "severity": "Info"})) == ""


def test_cancel_reports_speak_gclouds_words() -> None:
    assert runner.cancel_report("m-1", "cancelled", "x") == "Cancelled execution [m-1]."
    assert runner.cancel_report("m-1", "succeeded", "") == (
        "[m-1] has completed successfully before it could be cancelled."
    )
    assert runner.cancel_report("m-1", "failed", "NonZeroExitCode: boom") == (
        "Failed to cancel [m-1]: NonZeroExitCode: boom"
    )
    assert runner.cancel_report("m-1", "failed", "") == "Failed to cancel [m-1]."
    assert runner.cancel_report("m-1", "running", "still running 5 s after the cancel") == (
        "Failed to cancel [m-1]: still running 5 s after the cancel"
    )


def test_the_marker_variable_is_reserved_in_job_inputs() -> None:
    found = problems(
        pre_job="m", job_env_override=f"{spec.MARKER_ENV}=x", job_env_vars=f"{spec.MARKER_ENV}=y"
    )
    assert any(p.startswith("input 'job_env_override'") and "reserved" in p for p in found), found
    assert any(p.startswith("input 'job_env_vars'") and "reserved" in p for p in found), found
    bad = problems(pre_job="m", job_container="Not_A_Name")
    assert any(p.startswith("input 'job_container'") for p in bad), bad


def test_a_cancel_not_confirmed_in_time_is_reported_as_failed_to_cancel() -> None:
    class StillRunning:  # an execution that ignores the cancel, as a slow shutdown would look
        def cancel_execution(self, name: str) -> dict[str, Any]:
            return {}

        def get_execution(self, name: str) -> dict[str, Any]:
            return {"status": {"conditions": [{"type": "Completed", "status": "Unknown"}]}}

    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    stopped = runner.cancel_execution(
        StillRunning(),  # type: ignore[arg-type]
        "m-1",
        timeout=2,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    assert stopped.escaped and stopped.message == "Failed to cancel [m-1]: still running 2 s after the cancel"
    assert 2 <= clock[0] < 3


def test_a_lost_run_answer_is_not_mistaken_for_someone_elses_execution(server: ScriptedServer) -> None:
    # The answer to our :run is lost; meanwhile an operator ran the job: the latest execution is theirs
    # (it lacks our marker), so ours never landed and :run is sent again.
    marker = [{"name": spec.MARKER_ENV, "value": "tok/pre"}]
    overrides = {"containerOverrides": [{"env": marker}]}
    theirs = {"metadata": {"name": "m-op"}, "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}}
    ours = {"metadata": {"name": "m-ours"}, "spec": {"template": {"spec": {"containers": [{"env": marker}]}}}}
    job = {"metadata": {"name": "m"}, "status": {"latestCreatedExecution": {"name": "m-op"}}}
    server.queue = [(200, {"metadata": {"name": "m"}}), "reset", (200, job), (200, theirs), (200, ours)]
    api, _, _ = make(server)
    assert api.run_job("m", overrides) == ours
    assert [r.method for r in server.requests].count("POST") == 2
