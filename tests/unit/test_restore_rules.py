"""The rules of the way back, as pure functions: what a rollback puts back at the service level,
where a ``latestRevision`` share goes, when a write needs no wait, and how reasons are joined."""

from __future__ import annotations

from typing import Any

from deployer import knative, traffic
from deployer.restore import join_reasons, restored_latest
from deployer.state import RolloutState
from deployer.traffic import Target


def svc(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta}


def test_metadata_changes_name_each_key_with_its_value_before_and_ours() -> None:
    before = svc({"team": "web", "keep": "1"}, {"run.googleapis.com/ingress": "all"})
    after = svc(
        {"team": "payments", "keep": "1", "managed-by": "github-actions"},
        {"run.googleapis.com/ingress": "internal", "run-canary.dev/rollout": "{}"},
    )
    assert knative.metadata_changes(before, after) == {
        "labels": {"managed-by": [None, "github-actions"], "team": ["web", "payments"]},
        "annotations": {"run.googleapis.com/ingress": ["all", "internal"]},  # our own record: not here
    }
    assert knative.metadata_changes(after, after) == {}


def test_undo_metadata_puts_back_what_nobody_changed_since_and_keeps_the_rest() -> None:
    changes: knative.MetadataChanges = {
        "labels": {"managed-by": [None, "github-actions"], "team": ["web", "payments"], "tier": [None, "1"]},
        "annotations": {"run.googleapis.com/ingress": ["all", "internal"]},
    }
    now = svc(
        {"managed-by": "github-actions", "team": "sre", "tier": "1", "theirs": "x"},
        {"run.googleapis.com/ingress": "internal"},
    )
    kept = knative.undo_metadata(now, changes)
    assert now["metadata"]["labels"] == {"team": "sre", "theirs": "x"}  # their team=sre wins
    assert now["metadata"]["annotations"] == {"run.googleapis.com/ingress": "all"}
    assert kept == ["team"]


def test_undo_metadata_drops_an_emptied_map() -> None:
    body = svc({"managed-by": "github-actions"})
    knative.undo_metadata(body, {"labels": {"managed-by": [None, "github-actions"]}})
    assert "labels" not in body["metadata"]


def state(before: list[dict[str, Any]], latest: str = "web-v1") -> RolloutState:
    return RolloutState(candidate="web-v2", tag="canary", base=[], steps=[100], before=before, latest=latest)


LATEST_100 = [{"latestRevision": True, "percent": 100}]


def test_latest_is_restored_as_latest_when_the_named_template_goes_back() -> None:
    block, notes = restored_latest(state(LATEST_100), latest_again="web-v1")
    assert block == (Target(latest=True, percent=100),)
    assert notes == []


def test_latest_is_pinned_to_where_it_went_when_the_template_changed_since() -> None:
    block, notes = restored_latest(state(LATEST_100), latest_again=None)
    assert block == (Target(revision="web-v1", percent=100),)
    assert "pinned to web-v1" in notes[0]


def test_latest_is_pinned_when_the_template_written_back_names_a_revision_that_had_failed() -> None:
    """The latest created revision had failed before the run: writing its template back leaves the
    newest ready revision (the rolled-back candidate) the latest ready one; pin to where it went."""
    block, _ = restored_latest(state(LATEST_100), latest_again="web-broken")
    assert block == (Target(revision="web-v1", percent=100),)


def test_nothing_to_pin_without_a_latest_entry_or_a_known_latest_revision() -> None:
    pinned = [{"revisionName": "web-v1", "percent": 100}]
    assert restored_latest(state(pinned), latest_again=None) == (traffic.from_spec(pinned), [])
    assert restored_latest(state(LATEST_100, latest=""), latest_again=None)[0] == (
        Target(latest=True, percent=100),
    )


def test_a_write_that_only_drops_zero_percent_untagged_entries_moves_no_request() -> None:
    base = (Target(revision="web-v1", percent=100, tag="blue"), Target(revision="web-v0", percent=0))
    at_100 = traffic.at_step(base, "web-v2", "canary", 100)
    assert any(t.revision == "web-v0" for t in at_100)  # still referenced at the 100 % step
    promoted = traffic.promoted(base, "web-v2", "canary")
    assert not any(t.revision == "web-v0" for t in promoted)
    assert traffic.same_routes(at_100, promoted)
    assert not traffic.same_routes(at_100, traffic.at_step(base, "web-v2", "canary", 50))


def test_join_reasons_says_each_sentence_once() -> None:
    change = "the traffic of service web was changed by ops@example.com"
    assert join_reasons(change, change + " Their traffic is kept.") == change + " Their traffic is kept."
    assert join_reasons("took over", "took over") == "took over"
    assert join_reasons(None, "restored") == "restored"
    assert join_reasons("smoke check failed", "restored") == "smoke check failed; restored"


def test_two_writes_changes_keep_the_value_before_the_first() -> None:
    first: knative.MetadataChanges = {"labels": {"team": ["web", "payments"], "tier": [None, "1"]}}
    then: knative.MetadataChanges = {"labels": {"team": ["payments", "web"], "x": [None, "y"]}}
    assert knative.chain_changes(first, then) == {"labels": {"tier": [None, "1"], "x": [None, "y"]}}
    assert knative.chain_changes(None, then) == then
