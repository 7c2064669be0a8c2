"""The promise across the whole job (issue 23): each test plays a sequence users meet every week --
the runner's post step after the main step, re-runs, operators acting between phases, racing runs --
and asserts where requests go afterwards, not only what the spec says.

``harness.run`` runs the post step after every main step, as the runner does (``post-if: always()``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import requests

from cloudrun_emulator import Emulator
from deployer import rollout
from deployer.client import CloudRun
from deployer.inputs import load as load_inputs
from deployer.result import Outcome, Reporter
from deployer.smoke import SmokeResult
from deployer.state import RolloutState
from devtools import harness
from tests.cloudrun import Api, hit, routing, service_body
from tests.helpers import Quiet, as_operator, inputs, writes


def test_a_pause_survives_the_post_step_and_is_promoted_later(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Finding 1: the post step used to find its own token on the paused record and roll it back."""
    api = Api(emulator.url, project)
    api.create_service("pause", "sample/hello:v1", "pause-v1")
    paused = harness.run(
        inputs(emulator, project, service="pause", image="sample/hello:v2", suffix="v2", steps="10,50"),
        tmp_path=tmp_path / "1",
    )
    assert paused.outputs["result"] == "paused", paused.log
    assert paused.post is not None and paused.post.returncode == 0, paused.post and paused.post.log
    assert "paused at 50% on purpose" in paused.post.log
    svc = api.wait_routes("pause")
    assert routing(svc) == [("pause-v1", 50, ""), ("pause-v2", 50, "canary")]
    assert set(hit(svc["status"]["url"], 40)) == {"pause-v1", "pause-v2"}
    promoted = harness.run(
        inputs(emulator, project, service="pause", mode="promote"), tmp_path=tmp_path / "2"
    )
    assert promoted.outputs["result"] == "promoted", promoted.log
    assert promoted.post is not None and promoted.post.returncode == 0
    svc = api.wait_routes("pause")
    assert routing(svc) == [("pause-v2", 100, "canary")]
    assert hit(svc["status"]["url"], 10) == {"pause-v2": 10}


# --------------------------------------------------------------------------------------------------
# Helpers: what the emulator received, an operator's read-modify-write, an in-process run


def share_of(body: dict[str, Any], revision: str) -> int:
    return sum(e.get("percent", 0) for e in body["spec"]["traffic"] if e.get("revisionName") == revision)


def at_step(api: Api, service: str, step: int, timeout: float = 30.0) -> None:
    """Wait until the run's record on the service says it wrote ``step`` (the step's group opens
    before its write: acting on the group alone races the write)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recorded = RolloutState.from_service(api.service(service))
        if recorded is not None and recorded.step == step:
            return
        time.sleep(0.05)
    raise AssertionError(f"{service} never reached {step}%")


def latest_service(api: Api, service: str) -> dict[str, Any]:
    """A service that follows its latest revision (no traffic block: gcloud's default)."""
    api.deploy(service_body(service, "sample/hello:v1", f"{service}-v1"))
    return api.service(service)


def in_process(
    emu: Emulator, project: str, env: dict[str, str], *, api_class: type[CloudRun] = CloudRun, **hooks: Any
) -> tuple[rollout.Rollout, Quiet]:
    """A Rollout built as ``main`` builds it (inputs from the environment), against the emulator."""
    config, ctx = load_inputs(
        {
            "INPUT_API_ENDPOINT": emu.url,
            "INPUT_PROJECT_ID": project,
            "INPUT_REGION": "us-central1",
            "INPUT_STEP_INTERVAL": "1s",
            "INPUT_WAIT_TIMEOUT": "30s",
            "GITHUB_RUN_ID": "1",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
            **{k if k.startswith("GITHUB_") else f"INPUT_{k.upper()}": v for k, v in env.items()},
        }
    )
    api = api_class(requests.Session(), region="us-central1", project=project, api_endpoint=emu.url)
    reporter = Quiet()
    smoke = hooks.pop("smoke", lambda url: SmokeResult(True, 200, 1, "ok", 0.0))
    built = rollout.Hooks(smoke=smoke, **hooks)
    return rollout.Rollout(config, ctx, api, project, cast(Reporter, reporter), built), reporter


# --------------------------------------------------------------------------------------------------
# Finding 2: a re-run after an interrupted rollout deploys from a settled read


def test_rerun_after_a_killed_rollout_on_a_latest_service_keeps_the_old_release_serving(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """The re-run used to deploy from the undo's stale answer: "latest" pinned to the interrupted
    candidate, which then got 100 % at the first write and was named the previous revision."""
    api = Api(emulator.url, project)
    latest_service(api, "again")
    args = inputs(
        emulator, project, service="again", image="sample/hello:v2", steps="10,100", step_interval="20s"
    )
    with harness.start(args, tmp_path=tmp_path / "1") as running:
        running.wait_for_output(r"::group::10%25", timeout=30)
        at_step(api, "again", 10)
        running.kill()  # SIGKILL: no undo, no post step (the runner itself died)
    killed = RolloutState.from_service(api.service("again"))
    assert killed is not None and killed.step == 10
    start = time.time()
    rerun = harness.run(
        {**args, "step_interval": "1s"}, tmp_path=tmp_path / "2", github={"GITHUB_RUN_ATTEMPT": "2"}
    )
    assert rerun.outputs["result"] == "promoted", rerun.log
    assert rerun.outputs["previous_revision"] == "again-v1", rerun.log
    assert rerun.outputs["revision"] != killed.candidate
    for write in writes(emulator, project, "again", since=start):
        assert share_of(write["body"], killed.candidate) == 0, write["body"]["spec"]["traffic"]
    first_deploy = writes(emulator, project, "again", since=start)[1]["body"]
    assert share_of(first_deploy, "again-v1") == 100, first_deploy["spec"]["traffic"]


# --------------------------------------------------------------------------------------------------
# Finding 3: a rollback restores where requests go


def test_rollback_after_an_operator_relabelled_the_service_sends_latest_back_to_the_old_release(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """``gcloud run services update --update-labels`` writes the template too: Cloud Run makes a
    revision from it (the candidate's image). Restoring ``latestRevision: 100`` as text used to give
    that revision, the release being rolled back, every request."""
    api = Api(emulator.url, project)
    latest_service(api, "relabel")
    flag = tmp_path / "fail-now"
    args = inputs(
        emulator,
        project,
        service="relabel",
        image="sample/hello:v2",
        suffix="v2",
        steps="50,100",
        step_interval="6s",
        check_command=f"test ! -e {flag}",
    )
    with harness.start(args, tmp_path=tmp_path / "run") as running:
        running.wait_for_output(r"::group::50%25", timeout=30)
        at_step(api, "relabel", 50)

        def relabel(svc: dict[str, Any]) -> None:  # what gcloud sends for --update-labels team=x
            svc["metadata"].setdefault("labels", {})["team"] = "x"
            template = svc["spec"]["template"]
            template["metadata"].pop("name", None)
            template["metadata"].setdefault("labels", {})["team"] = "x"

        as_operator(api, "relabel", relabel)
        flag.touch()
        result = running.wait()  # and the post step, as the runner runs it
    assert result.outputs["result"] == "rolled_back", result.log
    svc = api.wait_routes("relabel")
    assert svc["metadata"]["labels"]["team"] == "x"  # their change is kept
    assert hit(svc["status"]["url"], 20) == {"relabel-v1": 20}
    assert "pinned to relabel-v1" in result.log


# --------------------------------------------------------------------------------------------------
# Finding 4: service settings of a failed release are undone


def test_rollback_restores_invoker_access_ingress_and_labels(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("open", "sample/hello:v1", "open-v1")
    public = {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}]}
    assert api.iam("open", "setIamPolicy", {"policy": public}).status_code == 200
    as_operator(api, "open", lambda svc: svc["metadata"].setdefault("labels", {}).update({"team": "web"}))
    before = api.service("open")["metadata"]
    result = harness.run(
        inputs(
            emulator,
            project,
            service="open",
            image="sample/hello:v2",
            suffix="v2",
            allow_unauthenticated="false",
            ingress="internal",
            labels="team=payments\ntier=1",
            smoke_body="never-there",
            smoke_timeout="2s",
        ),
        tmp_path=tmp_path,
    )
    assert result.outputs["result"] == "rolled_back", result.log
    policy = api.iam("open", "getIamPolicy").json()
    members = {
        m for b in policy.get("bindings", []) if b["role"] == "roles/run.invoker" for m in b["members"]
    }
    assert "allUsers" in members, policy  # a public service left private is an outage
    after = api.service("open")["metadata"]
    assert after.get("labels") == before.get("labels")
    ingress = "run.googleapis.com/ingress"
    assert after.get("annotations", {}).get(ingress) == before.get("annotations", {}).get(ingress)


# --------------------------------------------------------------------------------------------------
# Finding 5: no job of a release that an operator rolled back


def record_job(jobs: list[str], when: str) -> str:
    jobs.append(when)
    return f"{when} job ran"


def test_no_pre_job_after_a_manual_rollback_during_the_smoke_check(emulator: Emulator, project: str) -> None:
    api = Api(emulator.url, project)
    api.create_service("mig", "sample/hello:v1", "mig-v1")
    jobs: list[str] = []

    def smoke(url: str) -> SmokeResult:  # the operator rolls the release back meanwhile
        manual, _ = in_process(
            emulator, project, {"service": "mig", "mode": "rollback", "GITHUB_RUN_ID": "2"}
        )
        assert manual.run().outcome is Outcome.ROLLED_BACK
        return SmokeResult(True, 200, 1, "ok", 0.0)

    run, _ = in_process(
        emulator,
        project,
        {
            "service": "mig",
            "image": "sample/hello:v2",
            "suffix": "v2",
            "pre_job": "migrate",
            "job_image": "x",
        },
        smoke=smoke,
        job=lambda when, result: record_job(jobs, when),
    )
    result = run.run()
    assert jobs == []
    assert result.outcome is Outcome.FAILED
    assert "took over" in (result.reason or ""), result.reason
    assert [(r, p) for r, p, _ in routing(api.wait_routes("mig")) if p] == [("mig-v1", 100)]


# --------------------------------------------------------------------------------------------------
# Finding 6: racing deploys


def test_a_run_whose_first_write_meets_a_rival_rollout_writes_nothing(
    emulator: Emulator, project: str
) -> None:
    """B read the service before A's first write; B's PUT answers 409. B used to re-read and re-apply
    on top of A's rollout, silently taking it over."""
    api = Api(emulator.url, project)
    api.create_service("race", "sample/hello:v1", "race-v1")

    class RacedClient(CloudRun):
        raced = False
        after_a = 0.0

        def replace_service(
            self, name: str, body: dict[str, Any], *, dry_run: bool = False
        ) -> dict[str, Any]:
            if not RacedClient.raced and not dry_run:
                RacedClient.raced = True  # run A starts (and pauses at 10 %) between B's read and write
                a, _ = in_process(
                    emulator,
                    project,
                    {"service": "race", "image": "sample/hello:v2", "suffix": "a", "steps": "10"},
                )
                assert a.run().outcome is Outcome.PAUSED
                RacedClient.after_a = time.time()
            return super().replace_service(name, body, dry_run=dry_run)

    b, _ = in_process(
        emulator,
        project,
        {"service": "race", "image": "sample/hello:v3", "suffix": "b", "GITHUB_RUN_ID": "2"},
        api_class=RacedClient,
    )
    result = b.run()
    assert result.outcome is Outcome.FAILED
    assert "another rollout" in (result.reason or ""), result.reason
    assert writes(emulator, project, "race", since=RacedClient.after_a) == []
    recorded = RolloutState.from_service(api.service("race"))
    assert recorded is not None and recorded.candidate == "race-a" and recorded.step == 10
    assert routing(api.wait_routes("race")) == [("race-a", 10, "canary"), ("race-v1", 90, "")]


# --------------------------------------------------------------------------------------------------
# Finding 8: pre-run revisions stay referenced until the promote write


def test_pre_run_revisions_stay_referenced_until_the_promote(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("keep", "sample/hello:v1", "keep-v1")
    start = time.time()
    result = harness.run(
        inputs(emulator, project, service="keep", image="sample/hello:v2", suffix="v2", steps="50,100"),
        tmp_path=tmp_path,
    )
    assert result.outputs["result"] == "promoted", result.log
    bodies = [w["body"] for w in writes(emulator, project, "keep", since=start)]
    at_100 = next(b for b in bodies if share_of(b, "keep-v2") == 100)
    assert any(e.get("revisionName") == "keep-v1" for e in at_100["spec"]["traffic"])  # still referenced
    assert not any(e.get("revisionName") == "keep-v1" for e in bodies[-1]["spec"]["traffic"])  # promoted
    assert json.loads(result.outputs["traffic"]) == [
        {"revisionName": "keep-v2", "percent": 100, "tag": "canary", "url": ANY_URL}
    ]


class _AnyUrl(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("http")

    __hash__ = str.__hash__


ANY_URL = _AnyUrl("http")


# --------------------------------------------------------------------------------------------------
# Finding 10: small


def test_a_run_refused_for_invalid_input_still_says_failed(emulator: Emulator, tmp_path: Path) -> None:
    result = harness.run(
        inputs(emulator, "p", service="x", image="sample/hello", steps="50,10"), tmp_path=tmp_path
    )
    assert result.returncode == 1
    assert result.outputs["result"] == "failed"
    assert "input 'steps'" in result.log


def test_an_operators_change_is_reported_once(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    api.create_service("once", "sample/hello:v1", "once-v1")
    args = inputs(emulator, project, service="once", image="sample/hello:v2", suffix="v2", steps="50,100")
    with harness.start({**args, "step_interval": "5s"}, tmp_path=tmp_path) as running:
        running.wait_for_output(r"::group::50%25", timeout=30)
        at_step(api, "once", 50)
        as_operator(  # everything back to v1; the candidate keeps its tag (the smoke check still passes)
            api,
            "once",
            lambda svc: svc["spec"].update(
                traffic=[
                    {"revisionName": "once-v1", "percent": 100},
                    {"revisionName": "once-v2", "percent": 0, "tag": "canary"},
                ]
            ),
        )
        result = running.wait()
    errors = [a.data for a in result.annotations("error")]
    assert result.outputs["result"] == "failed", result.log
    assert sum(e.count("was changed by") for e in errors) == 1, errors
