"""What a rollback writes, decided from explicit inputs (deployer.restore): pure, no server."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from deployer import knative, restore, traffic
from deployer.errors import ForeignChange, RolloutTakenOver
from deployer.state import STABLE_ANNOTATION, STATE_ANNOTATION, RolloutState

OLD_TEMPLATE = {"metadata": {"name": "web-v1"}, "spec": {"containers": [{"image": "old"}]}}
NEW_TEMPLATE = {"metadata": {"name": "web-v2"}, "spec": {"containers": [{"image": "new"}]}}
BEFORE = [{"revisionName": "web-v1", "percent": 100}]


def recorded(**changes: Any) -> RolloutState:
    state = RolloutState(
        candidate="web-v2",
        tag="canary",
        base=BEFORE,
        steps=[10, 100],
        step=10,
        before=BEFORE,
        template=OLD_TEMPLATE,
        token="ours",
    )
    return replace(state, **changes)


def service(
    state: RolloutState | None, spec_traffic: traffic.Traffic | None = None, **annotations: str
) -> dict[str, Any]:
    notes = dict(annotations)
    if state is not None:
        notes[STATE_ANNOTATION] = state.to_annotation()
    written = state.written() if state is not None else ()
    return {
        "metadata": {"name": "web", "annotations": notes, "generation": 2},
        "spec": {
            "template": copy.deepcopy(NEW_TEMPLATE),
            "traffic": traffic.to_spec(written if spec_traffic is None else spec_traffic),
        },
        "status": {"observedGeneration": 2},
    }


UNDOING = restore.Undoing(service="web", revision="web-v2")
BOTH_READY = {"web-v1": True, "web-v2": True}


def plan(
    svc: dict[str, Any], state: RolloutState, undoing: restore.Undoing = UNDOING, **kw: Any
) -> restore.Restore:
    revisions = kw.pop("revisions", BOTH_READY)
    return restore.restore_plan(svc, state, undoing, lambda: revisions, named=kw.pop("named", True))


def test_our_rollout_as_we_left_it_goes_back_exactly_with_our_tag_on_the_healthy_candidate() -> None:
    state = recorded()
    out = plan(service(state), state)
    assert out.kind == "restored"
    assert out.message == "traffic and template restored to where they were before the run"
    assert [t.describe() for t in out.traffic] == ["web-v1 100%", "web-v2 0% (tag canary)"]
    assert out.body is not None and out.body["spec"]["template"] == OLD_TEMPLATE
    assert knative.annotation(out.body, STATE_ANNOTATION) is None


def test_a_failed_candidate_loses_its_tag_and_a_deleted_revision_its_share() -> None:
    state = replace(
        recorded(),
        before=[{"revisionName": "web-v1", "percent": 50}, {"revisionName": "web-v0", "percent": 50}],
    )
    out = plan(
        service(state), state, replace(UNDOING, keep_tag=False), revisions={"web-v1": True, "web-v2": False}
    )
    assert [t.describe() for t in out.traffic] == ["web-v1 100%"]
    assert any("web-v0 no longer exist" in n for n in out.notes)


def test_without_the_revision_name_the_template_goes_back_unnamed() -> None:
    state = recorded()
    out = plan(service(state), state, named=False)
    assert out.body is not None and "name" not in out.body["spec"]["template"]["metadata"]


def test_someone_elses_traffic_is_kept_and_only_our_record_and_template_removed() -> None:
    state = recorded()
    theirs = traffic.from_spec([{"revisionName": "web-v2", "percent": 100}])
    out = plan(service(state, theirs, **{"serving.knative.dev/lastModifier": "ops@example.com"}), state)
    assert out.kind == "theirs"
    assert out.traffic == theirs
    assert "changed by ops@example.com" in out.message and "record and template were removed" in out.message
    assert out.body is not None and out.body["spec"]["template"] == OLD_TEMPLATE


def test_another_runs_record_is_left_alone_and_an_unconfirmed_first_write_needs_nothing() -> None:
    other = recorded(token="theirs", run_url="https://github.com/o/r/actions/runs/9")
    out = plan(service(other), recorded())
    assert out.kind == "taken over" and out.body is None
    assert "another run (https://github.com/o/r/actions/runs/9) took over service web" in out.message
    nothing = plan(service(None), recorded(), replace(UNDOING, pending=True))
    assert nothing.kind == "nothing"
    assert plan(service(None), recorded()).kind == "taken over"


def test_the_record_of_a_run_we_adopted_is_ours_to_undo() -> None:
    other = recorded(token="theirs")
    assert (
        plan(service(other), replace(other, token="ours"), replace(UNDOING, adopted=other)).kind == "restored"
    )


def test_a_promote_that_landed_is_undone_too_with_the_stable_annotations() -> None:
    state = recorded(stable="web-v1")
    promoted = traffic.promoted(state.base_traffic, state.candidate, state.tag)
    svc = service(None, promoted, **{STABLE_ANNOTATION: "web-v2"})
    out = plan(svc, state, replace(UNDOING, promoting=True))
    assert out.kind == "restored"
    assert out.body is not None and knative.annotation(out.body, STABLE_ANNOTATION) == "web-v1"


def test_revisions_are_listed_only_when_the_traffic_goes_back() -> None:
    asked: list[bool] = []

    def revisions() -> dict[str, bool]:
        asked.append(True)
        return {}

    state = recorded()
    theirs = traffic.from_spec([{"revisionName": "web-v2", "percent": 100}])
    restore.restore_plan(service(state, theirs), state, UNDOING, revisions, named=True)
    assert asked == []


def test_still_ours_refuses_a_takeover_and_a_foreign_change_and_forgets_cleaned_tags() -> None:
    state = recorded()
    assert restore.still_ours(service(state), state, None, "web", "web-v2") == (state, set())
    with pytest.raises(RolloutTakenOver):
        restore.still_ours(service(recorded(token="theirs")), state, None, "web", "web-v2")
    with pytest.raises(ForeignChange, match="changed by someone else while this run was rolling out web-v2"):
        restore.still_ours(service(state, traffic.from_spec(BEFORE)), state, None, "web", "web-v2")


def test_named_template_names_the_revision_the_server_chose() -> None:
    svc: dict[str, Any] = {
        "metadata": {"generation": 3},
        "spec": {"template": {"spec": {}}},
        "status": {"observedGeneration": 3, "latestCreatedRevisionName": "web-00003-abc"},
    }
    assert restore.named_template(svc) == {"spec": {}, "metadata": {"name": "web-00003-abc"}}
    svc["status"]["observedGeneration"] = 2  # not settled: the latest created is not this template's
    assert restore.named_template(svc) == {"spec": {}}


def test_public_access_is_added_and_removed_without_touching_other_members() -> None:
    policy = {"bindings": [{"role": "roles/run.invoker", "members": ["user:a@example.com"]}], "etag": "x"}
    opened = restore.with_public(policy, True)
    assert opened is not None and restore.is_public(opened) and not restore.is_public(policy)
    assert restore.with_public(opened, True) is None
    closed = restore.with_public(opened, False)
    assert closed == policy
    only = restore.with_public({"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}]}, False)
    assert only == {"bindings": []}


PUBLIC = {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers", "user:a@example.com"]}]}
PRIVATE = {"bindings": [{"role": "roles/run.invoker", "members": ["user:a@example.com"]}]}


def test_the_rollout_opens_access_and_the_way_back_closes_it_only_if_still_as_we_left_it() -> None:
    opened = restore.access_to_write(PRIVATE, True, forward=True)
    assert opened is not None and restore.is_public(opened)
    assert restore.access_to_write(PUBLIC, True, forward=True) is None  # already so: nothing to write
    closed = restore.access_to_write(PUBLIC, False, forward=False)  # we opened it: close it again
    assert closed is not None and not restore.is_public(closed)
    assert restore.access_to_write(PRIVATE, False, forward=False) is None  # someone closed it already
    # The run had closed it: the way back reopens it while it is still closed, not once someone opened it.
    assert restore.access_to_write(PRIVATE, True, forward=False) is not None
    assert restore.access_to_write(PUBLIC, True, forward=False) is None


def test_an_undo_lands_only_when_it_wrote_our_rollout_back() -> None:
    assert restore.undo_landed("ours", wrote=True)
    assert not restore.undo_landed("ours", wrote=False)
    assert not restore.undo_landed("theirs", wrote=True)
    assert not restore.undo_landed("taken over", wrote=True)


def test_after_a_refused_undo_write() -> None:
    # The recorded name is taken by other settings: decide again, writing the template unnamed.
    assert restore.after_refused_undo(True, 409, "ALREADY_EXISTS", named=True) == (True, False)
    # Someone wrote meanwhile: decide again on the new service, the name as it was.
    assert restore.after_refused_undo(True, 409, "ABORTED", named=True) == (True, True)
    assert restore.after_refused_undo(True, 409, "ABORTED", named=False) == (True, False)
    # A 400 may be a revision deleted since they were listed: decide again; anything else is final.
    assert restore.after_refused_undo(False, 400, "INVALID_ARGUMENT", named=True) == (True, True)
    assert restore.after_refused_undo(False, 403, "PERMISSION_DENIED", named=True) == (False, True)
