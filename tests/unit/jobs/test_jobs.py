"""The jobs side of the action, piece by piece: the job inputs and their rules, the Job body and
overrides we send, what we read from an execution, ``:run`` never starting two executions, and how a
job shows in the outputs, the summary and the Deployment status."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.github.api import deployment_status_for
from deployer.github.files import outputs_for
from deployer.github.render import render_summary
from deployer.inputs import load
from deployer.jobs import spec
from deployer.jobs.inputs import parse_argv
from deployer.parsers import Invalid
from deployer.result import JobRun, Outcome, RolloutResult
from deployer.settings import JobFailurePolicy, JobSettings, Mode, SecretRef
from tests.config import cfg, problems
from tests.unit.scripted import ScriptedServer, make

# A lost :run answer is retried with the full backoff (the cap), as in the client's tests.
pytestmark = pytest.mark.usefixtures("no_jitter")

# ---- inputs ---------------------------------------------------------------------------------


def test_job_inputs_are_read_into_typed_settings() -> None:
    config = cfg(
        pre_job="migrate",
        post_job="e2e",
        post_job_failure="warn",
        job_command='["python", "manage.py", "migrate"]',
        job_args="--database 'main db'",
        job_env_vars="A=1\nB=x=y",
        job_secrets="DB_PASSWORD=db-pass:3",
        job_tasks="4",
        job_parallelism="2",
        job_task_timeout="15m",
        job_max_retries="0",
        job_service_account="jobs@p.iam.gserviceaccount.com",
        job_args_override="[]",
        job_env_override="STAGE=two",
        job_wait_timeout="30m",
    )
    assert (config.pre_job, config.post_job, config.post_job_failure) == (
        "migrate",
        "e2e",
        JobFailurePolicy.WARN,
    )
    assert config.jobs == JobSettings(
        image=None,
        command=("python", "manage.py", "migrate"),
        args=("--database", "main db"),
        env_vars={"A": "1", "B": "x=y"},
        secrets={"DB_PASSWORD": SecretRef("db-pass", "3")},
        tasks=4,
        parallelism=2,
        task_timeout=900,
        max_retries=0,
        service_account="jobs@p.iam.gserviceaccount.com",
        args_override=(),
        env_override={"STAGE": "two"},
        wait_timeout=1800.0,
    )


def test_mode_job_needs_no_service_and_takes_image_as_the_job_image() -> None:
    config = load({"INPUT_MODE": "job", "INPUT_JOB": "backfill", "INPUT_IMAGE": "sample/job"})[0]
    assert config.mode is Mode.JOB and config.service == "" and config.image == "sample/job"


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"pre_job": "-bad"}, "input 'pre_job': \"-bad\" is not a valid job name"),
        (
            {"pre_job": "m", "job_parallelism": "5", "job_tasks": "2"},
            "input 'job_parallelism': 5 is above job_tasks 2",
        ),
        ({"pre_job": "m", "job_task_timeout": "169h"}, "input 'job_task_timeout': \"169h\" is"),
        ({"pre_job": "m", "job_max_retries": "-1"}, "input 'job_max_retries': \"-1\" is not a whole number"),
        ({"pre_job": "m", "job_args": "'unclosed"}, "input 'job_args': cannot be split into words"),
        ({"pre_job": "m", "job_command": "[1, [2]]"}, "input 'job_command': must be a list of strings"),
        (
            {"pre_job": "m", "job_env_vars": "A=1", "job_secrets": "A=s:1"},
            "input 'job_secrets': \"A\" is also set",
        ),
        (
            {"pre_job": "m", "job_secrets": "S=s:1", "job_env_override": "S=x"},
            "input 'job_env_override': \"S\" is a secret",
        ),
        ({"job": "m"}, "input 'job': is only used in mode job"),
        ({"mode": "promote", "pre_job": "m"}, "input 'pre_job': runs before traffic moves in mode deploy"),
        ({"mode": "rollback", "post_job": "m"}, "input 'post_job': runs after a promotion"),
        ({"job_tasks": "3"}, "input 'job_tasks': is set but no job runs"),
        (
            {"mode": "job", "job": "m", "pre_job": "x", "INPUT_IMAGE": ""},
            "input 'pre_job': is for a service rollout",
        ),
        (
            {"post_job": "e2e", "post_job_failure": "retry"},
            "input 'post_job_failure': \"retry\" is not one of",
        ),
    ],
)
def test_bad_job_inputs_are_named_with_what_would_be_valid(inputs: dict[str, str], expected: str) -> None:
    found = problems(**inputs)
    assert any(p.startswith(expected) for p in found), found


def test_every_job_problem_is_reported_at_once() -> None:
    found = problems(mode="job", image="", job_tasks="0", job_max_retries="99")
    named = sorted(p.split("'")[1] for p in found)
    assert named == ["job", "job_image", "job_max_retries", "job_tasks"], found


def test_parse_argv_accepts_yaml_lists_and_shell_words() -> None:
    assert parse_argv('["a b", 1, "--x=y"]') == ("a b", "1", "--x=y")
    assert parse_argv("- python\n- app.py") == ("python", "app.py")
    assert parse_argv("sh -c 'echo hi'") == ("sh", "-c", "echo hi")
    with pytest.raises(Invalid):
        parse_argv('["unclosed')


# ---- the Job body and overrides -------------------------------------------------------------


def test_new_job_body_carries_only_what_was_set() -> None:
    settings = JobSettings(
        command=("python", "m.py"), env_vars={"A": "1"}, secrets={"S": SecretRef("sec", "2")}, tasks=3
    )
    body = spec.job_body(None, "migrate", settings, "img:v1", labels={"l": "v"}, annotations={"a": "b"})
    assert body["metadata"] == {"name": "migrate", "labels": {"l": "v"}, "annotations": {"a": "b"}}
    execution = body["spec"]["template"]["spec"]
    assert execution == {
        "taskCount": 3,
        "template": {
            "spec": {
                "containers": [
                    {
                        "image": "img:v1",
                        "command": ["python", "m.py"],
                        "env": [
                            {"name": "A", "value": "1"},
                            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "2"}}},
                        ],
                    }
                ]
            }
        },
    }


def test_update_keeps_what_the_job_has_and_merges_env() -> None:
    container = {
        "image": "old",
        "args": ["keep"],
        "env": [{"name": "A", "value": "old"}, {"name": "K", "value": "k"}],
    }
    task_spec = {"maxRetries": 1, "containers": [container]}
    current = {
        "metadata": {"name": "m", "resourceVersion": "7", "uid": "u", "labels": {"team": "x"}},
        "spec": {"template": {"spec": {"taskCount": 5, "template": {"spec": task_spec}}}},
        "status": {"executionCount": 3},
    }
    body = spec.job_body(
        current, "m", JobSettings(env_vars={"A": "new"}, task_timeout=60), "new", labels={}, annotations={}
    )
    assert body["metadata"] == {
        "name": "m",
        "resourceVersion": "7",
        "labels": {"team": "x"},
        "annotations": {},
    }
    assert "status" not in body
    task = body["spec"]["template"]["spec"]["template"]["spec"]
    assert task["timeoutSeconds"] == "60" and task["maxRetries"] == 1
    assert task["containers"][0] == {
        "image": "new",
        "args": ["keep"],
        "env": [{"name": "K", "value": "k"}, {"name": "A", "value": "new"}],
    }
    assert spec.same_spec(body, {**current, "spec": body["spec"]})
    assert not spec.same_spec(body, current)


def test_overrides_for_one_execution() -> None:
    assert spec.overrides(JobSettings()) is None
    assert spec.overrides(JobSettings(args_override=())) == {"containerOverrides": [{"clearArgs": True}]}
    assert spec.overrides(JobSettings(args_override=("a",), env_override={"E": "1"})) == {
        "containerOverrides": [{"args": ["a"], "env": [{"name": "E", "value": "1"}]}]
    }


def test_execution_reading() -> None:
    execution: dict[str, Any] = {
        "spec": {"taskCount": 3},
        "status": {
            "succeededCount": 1,
            "failedCount": 1,
            "runningCount": 1,
            "retriedCount": 2,
            "conditions": [{"type": "Completed", "status": "Unknown"}],
        },
    }
    assert spec.progress(execution).describe() == "1/3 succeeded, 1 running, 1 failed, 2 retried"
    assert spec.outcome(execution)[0] == "running"
    execution["status"]["conditions"] = [{"type": "Completed", "status": "False", "reason": "Cancelled"}]
    assert spec.outcome(execution)[0] == "cancelled"
    failed, succeeded = [{"type": "Completed", "status": "False"}], [{"type": "Completed", "status": "True"}]
    tasks: list[dict[str, Any]] = [
        {"status": {"index": 1, "lastAttemptResult": {"exitCode": 3}, "conditions": failed}},
        {"status": {"lastAttemptResult": {}, "conditions": succeeded}},
    ]
    assert spec.exit_codes(tasks) == {1: 3}


# ---- :run is never repeated blindly ---------------------------------------------------------


def _job(latest: str | None) -> dict[str, Any]:
    status = {"latestCreatedExecution": {"name": latest}} if latest else {}
    return {"metadata": {"name": "m"}, "status": status}


def test_run_whose_answer_was_lost_is_found_not_repeated(server: ScriptedServer) -> None:
    execution = {"metadata": {"name": "m-abcde"}}
    server.queue = [(200, _job("m-old")), "reset", (200, _job("m-abcde")), (200, execution)]
    api, _, _ = make(server)
    assert api.run_job("m") == execution
    assert [r.method for r in server.requests].count("POST") == 1


def test_run_that_never_landed_is_sent_again(server: ScriptedServer) -> None:
    execution = {"metadata": {"name": "m-fghij"}}
    server.queue = [(200, _job(None)), "reset", (200, _job(None)), (200, execution)]
    api, _, _ = make(server)
    assert api.run_job("m", {"containerOverrides": [{"args": ["x"]}]}) == execution
    posts = [r for r in server.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[1].path.endswith("/jobs/m:run")
    assert posts[1].body == {"overrides": {"containerOverrides": [{"args": ["x"]}]}}


# ---- outputs, summary, deployment status ----------------------------------------------------


def _result(*jobs: JobRun, outcome: Outcome = Outcome.PROMOTED) -> RolloutResult:
    return RolloutResult(outcome, "deploy", "shop", "us-central1", "p", revision="shop-v2", jobs=list(jobs))


def test_outputs_name_the_last_execution() -> None:
    pre = JobRun(
        "pre", "migrate", "migrate-a", "succeeded", log_url="https://console.cloud.google.com/logs/a"
    )
    post = JobRun("post", "e2e", "e2e-b", "failed", console_url="https://console.cloud.google.com/run/b")
    outputs = outputs_for(_result(pre, post))
    assert (outputs["job_execution"], outputs["job_result"]) == ("e2e-b", "failed")
    assert outputs["job_log_url"] == "https://console.cloud.google.com/run/b"
    assert outputs_for(_result())["job_execution"] == ""


def test_summary_and_deployment_status_mention_the_jobs() -> None:
    pre = JobRun("pre", "migrate", "migrate-a", "succeeded", tasks=2, succeeded=2, duration=3.0)
    summary = render_summary(_result(pre))
    assert "### Cloud Run jobs" in summary and "`migrate-a`" in summary and "2/2 ok" in summary
    state, description, _ = deployment_status_for(_result(pre), pull_request=False)
    assert (state, description) == ("success", "promoted: shop-v2; pre job migrate: succeeded")
    failed = JobRun("post", "e2e", "e2e-b", "failed", exit_codes={0: 4}, fails_step=True)
    result = _result(failed)
    result.reason = "post job e2e failed: task 0 exited with code 4"
    assert result.exit_code == 1
    state, description, _ = deployment_status_for(result, pull_request=False)
    assert state == "failure" and "code 4" in description
    assert "task 0: 4" in render_summary(result)
