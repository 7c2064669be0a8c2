"""Cloud Run's details held by the action and the emulator: tag-quota cleanup, service-level scaling,
freshness without observedGeneration, task running states, duplicate env names, default concurrency."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from cloudrun_emulator import Emulator
from deployer import knative, scaling, traffic
from deployer.state import STATE_ANNOTATION
from deployer.traffic import Target
from devtools import harness
from tests.cloudrun import Api, service_body
from tests.helpers import inputs
from tests.jobs_api import Jobs, job_body, shell

# --- tag quota -------------------------------------------------------------------------------------

WRITTEN = (
    Target("web-1", 90),
    Target("web-2", 10, "canary"),
    Target("web-0", 0, "pr-1"),
    Target("web-0", 0, "pr-2"),
)


def test_only_untagged_percentage_tags_we_did_not_write_count_as_cleanup() -> None:
    assert traffic.cleaned_tags(WRITTEN, WRITTEN[:3], {"canary"}) == {"pr-2"}
    assert traffic.only_tag_cleanup(WRITTEN, WRITTEN[:2], {"canary"})
    assert not traffic.only_tag_cleanup(WRITTEN, WRITTEN, {"canary"})  # nothing gone
    assert not traffic.only_tag_cleanup(WRITTEN, (WRITTEN[0], *WRITTEN[2:]), {"canary"})  # ours gone
    moved = (Target("web-1", 80), Target("web-2", 20, "canary"), WRITTEN[2])
    assert not traffic.only_tag_cleanup(WRITTEN, moved, {"canary"})  # a person moved traffic too
    with_share = (Target("web-1", 90), Target("web-2", 5, "canary"), Target("web-0", 5, "pr-1"))
    assert not traffic.only_tag_cleanup(with_share, with_share[:2], {"canary"})  # a tag with a share
    assert traffic.without_tags(WRITTEN, {"pr-1"}) == (WRITTEN[0], WRITTEN[1], WRITTEN[3])


def _tagged(api: Api, name: str, tags: list[str]) -> None:
    body = service_body(name, "sample/hello", f"{name}-v1")
    body["spec"]["traffic"] = [{"revisionName": f"{name}-v1", "percent": 100}] + [
        {"revisionName": f"{name}-v1", "tag": t} for t in tags
    ]
    api.deploy(body)


def test_emulator_cleans_the_oldest_unshared_tags_of_the_service_that_adds_one(
    own_emulator: Emulator, project: str
) -> None:
    requests.post(f"{own_emulator.url}/_emulator/config", json={"tag_limit": 4}, timeout=5).raise_for_status()
    api = Api(own_emulator.url, project)
    _tagged(api, "other", ["o-1", "o-2"])
    _tagged(api, "web", ["old", "new"])  # 4 tags: at the limit, nothing cleaned
    svc = api.service("web")
    svc["spec"]["traffic"].append({"revisionName": "web-v1", "tag": "newest"})
    svc.pop("status")
    written = api.put(svc).json()
    assert [t.get("tag") for t in written["spec"]["traffic"]] == [None, "new", "newest"]  # "old" went first
    assert len(api.service("other")["spec"]["traffic"]) == 3  # only the service that creates a tag


def test_rollout_carries_on_through_tag_cleanup_and_says_so(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """PR previews fill the quota; the canary's own tag makes Cloud Run delete the oldest preview tag."""
    api = Api(own_emulator.url, project)
    _tagged(api, "shop", ["pr-1", "pr-2"])
    requests.post(f"{own_emulator.url}/_emulator/config", json={"tag_limit": 2}, timeout=5).raise_for_status()
    result = harness.run(
        inputs(own_emulator, project, service="shop", image="sample/hello:v2", steps="50,100"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"
    assert "Cloud Run's tag cleanup removed the tag(s) pr-1 of shop" in result.log
    tags = {t.get("tag") for t in api.service("shop")["spec"]["traffic"]}
    assert "pr-1" not in tags and "pr-2" in tags  # not written back by the run


def test_a_cleanup_of_the_runs_own_baseline_tag_stops_the_run_naming_the_quota(
    own_emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """The baseline's tag is written first at 0 %: the candidate's tag can make Cloud Run's cleanup
    delete it. That is the quota, not a person: the run says so, and is undone exactly."""
    api = Api(own_emulator.url, project)
    _tagged(api, "other", ["o-1", "o-2"])
    api.create_service("shop", "sample/hello", "shop-v1")
    before = api.service("shop")["spec"]["traffic"]
    requests.post(f"{own_emulator.url}/_emulator/config", json={"tag_limit": 2}, timeout=5).raise_for_status()
    result = harness.run(
        inputs(
            own_emulator,
            project,
            service="shop",
            image="sample/hello:v2",
            steps="50,100",
            baseline="revision",
            max_error_rate_increase="50",
        ),
        tmp_path=tmp_path,
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert "Cloud Run's tag cleanup removed this run's own tag(s) baseline of shop" in result.log
    assert "changed by" not in result.log, result.log
    svc = api.wait_ready("shop")
    assert svc["spec"]["traffic"] == before
    assert knative.annotation(svc, STATE_ANNOTATION) is None


# --- scaling ---------------------------------------------------------------------------------------


def _manual(count: int, block: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    annotations = {scaling.SCALING_MODE: "manual", scaling.MANUAL_COUNT: str(count)}
    spec = {"traffic": block or [{"revisionName": "web-1", "percent": 100}]}
    return {"metadata": {"annotations": annotations}, "spec": spec}


def test_instances_follow_traffic_share() -> None:
    assert scaling.split(4, (Target("a", 95), Target("b", 5))) == {"a": 4, "b": 0}
    assert scaling.split(4, (Target("a", 50), Target("b", 50, "t"), Target("c", 0, "x"))) == {"a": 2, "b": 2}
    plan = scaling.per_step(_manual(4), "web-2", "canary", (0, 5, 50, 100))
    assert [(s.percent, s.candidate, s.others) for s in plan] == [(5, 0, 4), (50, 2, 2), (100, 4, 0)]
    assert scaling.per_step({"metadata": {}}, "web-2", "canary", (5,)) == []


def test_a_step_without_an_instance_is_refused_under_manual_scaling_only() -> None:
    detail, refused = scaling.check(_manual(4), "web-2", "canary", (5, 50, 100))
    assert (
        detail == "manual scaling, 4 instances: 5%: candidate 0, others 4; 50%: candidate 2, others 2; "
        "100%: candidate 4, others 0"
    )
    assert refused is not None
    assert "the step(s) 5% would give the candidate no instance" in refused
    assert "Start the steps at 13% or more, or raise run.googleapis.com/manualInstanceCount" in refused
    warm = {"metadata": {"annotations": {scaling.SERVICE_MIN: "4"}}, "spec": _manual(4)["spec"]}
    detail, refused = scaling.check(warm, "web-2", "canary", (5, 100))
    assert refused is None and detail.startswith("service minimum 4: 5%: candidate 0")


def test_the_baseline_revision_counts_in_the_split_and_is_never_starved() -> None:
    """``baseline: revision`` puts a third revision in the split: with 3 instances a 20 % step leaves
    the candidate none once the baseline takes its 20 %, which the candidate alone would not."""
    alone = scaling.per_step(_manual(3), "web-2", "canary", (20, 100))
    assert [(s.percent, s.candidate, s.baseline, s.others) for s in alone] == [
        (20, 1, None, 2),
        (100, 3, None, 0),
    ]
    paired = scaling.per_step(_manual(3), "web-2", "canary", (20, 100), "web-2-baseline")
    ours = [(s.percent, s.candidate + (s.baseline or 0), s.others) for s in paired]
    assert ours == [(20, 1, 2), (100, 3, 0)]
    assert paired[1].baseline is None  # gone at 100 %
    detail, refused = scaling.check(_manual(3), "web-2", "canary", (20, 100), "web-2-baseline")
    assert detail.startswith("manual scaling, 3 instances: 20%: candidate 0, baseline 1, others 2;"), detail
    assert refused is not None
    assert "the step(s) 20% would give the candidate or its baseline no instance" in refused
    assert "gcloud beta run services update SERVICE --scaling N" in refused
    detail, refused = scaling.check(_manual(6), "web-2", "canary", (20, 100), "web-2-baseline")
    assert refused is None and "20%: candidate 1, baseline 1, others 4" in detail


def _manual_service(api: Api, name: str, count: int) -> None:
    body = service_body(name, "sample/hello", f"{name}-v1")
    body["metadata"]["annotations"] = {scaling.SCALING_MODE: "manual", scaling.MANUAL_COUNT: str(count)}
    api.deploy(body)


def test_action_refuses_a_starved_canary_before_any_write(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    _manual_service(api, "few", 4)
    before = api.service("few")
    result = harness.run(
        inputs(emulator, project, service="few", image="sample/hello:v2", steps="5,100"), tmp_path=tmp_path
    )
    assert result.returncode == 1, result.log
    assert "the step(s) 5% would give the candidate no instance" in result.log
    assert api.service("few")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert api.revisions("few") == ["few-v1"]


def test_action_refuses_a_step_that_starves_the_baseline_before_any_write(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    _manual_service(api, "trio", 3)
    before = api.service("trio")
    result = harness.run(
        inputs(
            emulator,
            project,
            service="trio",
            image="sample/hello:v2",
            steps="20,100",
            baseline="revision",
            max_latency_increase="20",
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.log
    assert "20%: candidate 0, baseline 1, others 2" in result.log
    assert "would give the candidate or its baseline no instance" in result.log
    assert api.service("trio")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert api.revisions("trio") == ["trio-v1"]


def test_action_says_what_each_step_gives_the_candidate(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    _manual_service(api, "even", 4)
    result = harness.run(
        inputs(emulator, project, service="even", image="sample/hello:v2", steps="50,100"), tmp_path=tmp_path
    )
    assert result.returncode == 0, result.log
    text = "manual scaling, 4 instances: 50%: candidate 2, others 2; 100%: candidate 4, others 0"
    assert text in result.log and text in result.summary


# --- freshness -------------------------------------------------------------------------------------


def test_an_absent_observed_generation_is_fresh_as_gcloud_reads_it() -> None:
    assert knative.is_fresh({"status": {}}, 3)
    assert knative.is_fresh({"status": {"observedGeneration": 3}}, 3)
    assert not knative.is_fresh({"status": {"observedGeneration": 2}}, 3)


def test_rollout_completes_against_responses_without_observed_generation(
    emulator: Emulator, project: str
) -> None:
    """The emulator's answers with observedGeneration removed: before, every wait ran to its timeout."""
    from deployer.client import CloudRun
    from deployer.rollout import Hooks, run
    from deployer.settings import Config, RunContext
    from deployer.smoke import SmokeResult

    Api(emulator.url, project).create_service("bare", "sample/hello", "bare-v1")

    def strip(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body.get("status"), dict):
                body["status"].pop("observedGeneration", None)
                response._content = json.dumps(body).encode()
        return response

    session = requests.Session()
    session.hooks["response"].append(strip)
    api = CloudRun(session, region="us-central1", project=project, api_endpoint=emulator.url)
    config = Config(
        service="bare", image="sample/hello:v2", steps=(50, 100), step_interval=0.2, wait_timeout=20
    )

    class Quiet:
        def phase_started(self, phase: Any) -> None: ...
        def phase_finished(self, phase: Any) -> None: ...
        def info(self, text: str) -> None: ...
        def warning(self, text: str) -> None: ...

    started = time.monotonic()
    result = run(
        config,
        RunContext(),
        api,
        project,
        Quiet(),
        Hooks(smoke=lambda url: SmokeResult(True, 200, 1, "ok", 0.0)),
    )
    assert result.outcome.value == "promoted", result.reason
    assert time.monotonic() - started < 20


# --- emulator details ------------------------------------------------------------------------------


def test_tasks_carry_their_running_state_for_tasks_list_failed(emulator: Emulator, project: str) -> None:
    jobs = Jobs(emulator.url, project)
    script = 'test "$CLOUD_RUN_TASK_INDEX" = 1 && exit 3; exit 0'
    assert jobs.create(job_body("half", command=shell(script), taskCount=2, maxRetries=0)).status_code == 200
    name = jobs.execute("half")["metadata"]["name"]
    states = {
        t["status"].get("index", 0): t["metadata"]["labels"]["run.googleapis.com/runningState"]
        for t in jobs.tasks(name)
    }
    assert states == {0: "Succeeded", 1: "Failed"}
    selector = (
        f"run.googleapis.com/execution = {name},run.googleapis.com/runningState in (Failed)"  # gcloud's
    )
    failed = requests.get(f"{jobs.ns}/tasks", params={"labelSelector": selector}, timeout=10).json()["items"]
    assert [t["status"].get("index", 0) for t in failed] == [1]


def test_duplicate_env_names_as_run_v1_allows_them(emulator: Emulator, project: str) -> None:
    api = Api(emulator.url, project)
    body = service_body("twice", "sample/hello")
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MODE", "value": "first"},
        {"name": "MODE", "value": "last"},
    ]
    svc = api.deploy(body)
    assert requests.get(svc["status"]["url"], timeout=10).json()["env"]["MODE"] == "last"  # the last one wins
    secret = {"name": "MODE", "valueFrom": {"secretKeyRef": {"name": "mode", "key": "1"}}}
    body = service_body("twice-secret", "sample/hello")
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "x"}, secret]
    refused = api.create(body)
    assert refused.status_code == 400 and "a variable from a secret must be unique" in refused.text


def test_container_concurrency_defaults_by_cpu(emulator: Emulator, project: str) -> None:
    api = Api(emulator.url, project)
    small = service_body("small", "sample/hello")
    small["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m"}}
    assert api.deploy(small)["spec"]["template"]["spec"]["containerConcurrency"] == 1
    assert (
        api.deploy(service_body("whole", "sample/hello"))["spec"]["template"]["spec"]["containerConcurrency"]
        == 80
    )
