"""What a new rollout records, the template it deploys, the traffic its steps scale down
(deployer.record): pure, no server."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from deployer import record
from deployer.settings import Config, RunContext
from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, RolloutState
from deployer.traffic import Target

TEMPLATE = {"metadata": {"name": "web-v1"}, "spec": {"containers": [{"image": "old:1"}]}}
CONFIG = Config(service="web", image="new:2", tag="canary", steps=(10, 50, 100), pre_job="migrate")
CTX = RunContext(
    run_id="77", run_attempt="2", job="deploy", server_url="https://github.com", repository="o/r"
)


def service(
    spec_traffic: list[dict[str, Any]], latest_ready: str | None = "web-v1", **notes: str
) -> dict[str, Any]:
    status = {"latestReadyRevisionName": latest_ready} if latest_ready else {}
    return {
        "metadata": {"name": "web", "annotations": dict(notes)},
        "spec": {"template": copy.deepcopy(TEMPLATE), "traffic": spec_traffic},
        "status": status,
    }


LATEST = [{"latestRevision": True, "percent": 100}]


def test_the_base_pins_latest_to_the_latest_ready_revision() -> None:
    base, warning = record.pinned_base(service(LATEST), "web")
    assert base == (Target(revision="web-v1", percent=100),)
    assert warning == ""


def test_no_ready_revision_leaves_latest_and_warns() -> None:
    base, warning = record.pinned_base(service(LATEST, latest_ready=None), "web")
    assert base == (Target(latest=True, percent=100),)
    assert warning.startswith("Service web has no ready revision: the traffic that follows the latest")


def new(svc: dict[str, Any], config: Config = CONFIG, **kw: Any) -> RolloutState:
    base, _ = record.pinned_base(svc, "web")
    args: dict[str, Any] = {
        "config": config,
        "ctx": CTX,
        "token": "tok",
        "previous_revision": "web-v1",
        "public_before": None,
        "baseline": "",
        "started": "2026-01-01T00:00:00Z",
    }
    return record.new_state(svc, "web-v2", base, **{**args, **kw})


def test_a_new_rollout_records_the_service_as_it_was_and_who_owns_it() -> None:
    svc = service(LATEST, **{STABLE_ANNOTATION: "web-v1", PREVIOUS_STABLE_ANNOTATION: "web-v0"})
    state = new(svc, public_before=False)
    assert state.before == LATEST  # as it was: a rollback puts latestRevision back
    assert state.base == [{"revisionName": "web-v1", "percent": 100}]  # pinned: what the steps scale down
    assert state.template == TEMPLATE  # named after the revision it created
    assert (state.stable, state.previous_stable, state.latest) == ("web-v1", "web-v0", "web-v1")
    assert (state.candidate, state.tag, state.steps, state.step) == ("web-v2", "canary", [10, 50, 100], 0)
    assert (state.run_id, state.run_attempt, state.job, state.token) == ("77", "2", "deploy", "tok")
    assert state.run_url == CTX.run_url
    assert (state.image, state.previous_revision, state.started) == (
        "new:2",
        "web-v1",
        "2026-01-01T00:00:00Z",
    )
    assert state.public_before is False
    assert state.jobs == ["migrate"]
    assert state.baseline == "" and not state.baseline_only


def test_the_step_is_the_candidates_share_already() -> None:
    svc = service([{"revisionName": "web-v1", "percent": 70}, {"revisionName": "web-v2", "percent": 30}])
    assert new(svc).step == 30


def test_the_baseline_is_recorded_except_in_a_dry_run() -> None:
    svc = service(LATEST)
    assert new(svc, baseline="web-v2-baseline").baseline == "web-v2-baseline"
    assert new(svc, replace(CONFIG, dry_run=True), baseline="web-v2-baseline").baseline == ""
    assert new(svc, replace(CONFIG, pre_job=None)).jobs is None


def test_after_the_baseline_write_the_record_goes_on_with_the_candidate() -> None:
    first = replace(new(service(LATEST)), candidate="", baseline="b", baseline_only=True)
    then = record.after_baseline(first, "web-v2")
    assert (then.candidate, then.baseline, then.baseline_only) == ("web-v2", "b", False)


def test_the_record_keeps_the_service_metadata_the_write_changes() -> None:
    svc = service(LATEST, team="a")
    body = copy.deepcopy(svc)
    body["metadata"]["annotations"]["team"] = "b"
    body["metadata"]["labels"] = {"managed-by": "run-canary"}
    state = record.with_changes(new(svc), svc, body)
    assert state.metadata == {
        "annotations": {"team": ["a", "b"]},
        "labels": {"managed-by": [None, "run-canary"]},
    }
    assert record.with_changes(new(svc), svc, copy.deepcopy(svc)).metadata is None


def test_unchanged_image_and_settings_reuse_the_current_revision() -> None:
    svc = service(LATEST)
    svc["spec"]["template"] = record.candidate_template(svc, None, CONFIG, "web-v1")[0]
    template, name, reused = record.candidate_template(svc, None, CONFIG, "web-v2")
    assert (name, reused) == ("web-v1", True)
    assert template == svc["spec"]["template"]


def test_a_new_image_makes_a_new_revision_from_the_services_template() -> None:
    template, name, reused = record.candidate_template(service(LATEST), None, CONFIG, "web-v2")
    assert (name, reused) == ("web-v2", False)
    assert template["spec"]["containers"][0]["image"] == "new:2"


def test_the_metadata_inputs_template_is_the_base_when_given() -> None:
    base = {"metadata": {}, "spec": {"containers": [{"image": "x", "args": ["--from-metadata"]}]}}
    template, _, _ = record.candidate_template(service(LATEST), base, CONFIG, "web-v2")
    assert template["spec"]["containers"][0]["args"] == ["--from-metadata"]
    assert template["spec"]["containers"][0]["image"] == "new:2"


def test_public_access_is_read_and_recorded_only_when_the_run_changes_it() -> None:
    assert record.reads_policy(True, dry_run=False)
    assert not record.reads_policy(None, dry_run=False)
    assert not record.reads_policy(True, dry_run=True)
    assert record.public_before(True, public=False) is False  # made public: put back private
    assert record.public_before(False, public=True) is True
    assert record.public_before(True, public=True) is None  # already so: nothing to put back


def test_a_taken_derived_name_moves_on_to_the_next_one() -> None:
    assert record.next_revision_name("ALREADY_EXISTS", None, "web-abc1234-1", 2) == "web-abc1234-1-2"
    assert record.next_revision_name("ALREADY_EXISTS", "v7", "web-v7", 2) is None  # a name the user gave
    assert record.next_revision_name("ABORTED", None, "web-abc1234-1", 2) is None  # someone wrote: not ours
