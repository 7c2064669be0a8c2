"""What modes promote and rollback act on (deployer.modes): pure, no server."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from deployer import modes
from deployer.errors import RolloutFailed
from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, RolloutState
from deployer.traffic import Target


def service(previous_stable: str = "", traffic: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    notes = {PREVIOUS_STABLE_ANNOTATION: previous_stable} if previous_stable else {}
    return {"metadata": {"name": "web", "annotations": notes}, "spec": {"traffic": traffic or []}}


def revision(status: str, message: str = "") -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": status, "message": message}]}}


READY = {"web-v1": revision("True"), "web-v0": revision("True"), "web-bad": revision("False", "crashed")}


def target(svc: dict[str, Any], rollback_to: str | None = None) -> str:
    return modes.rollback_target(svc, rollback_to, READY.get, "web")


def test_rollback_goes_to_the_previous_stable_revision() -> None:
    assert target(service("web-v1")) == "web-v1"


def test_rollback_to_wins_over_the_previous_stable() -> None:
    assert target(service("web-v1"), "web-v0") == "web-v0"


def test_no_revision_to_roll_back_to_is_refused_saying_what_to_set() -> None:
    with pytest.raises(RolloutFailed, match=r"no revision to roll back to: set 'rollback_to'.* on web\)"):
        target(service())


def test_a_missing_revision_is_refused() -> None:
    with pytest.raises(RolloutFailed, match="revision web-gone does not exist in service web"):
        target(service(), "web-gone")


def test_a_revision_that_cannot_serve_is_refused_with_why() -> None:
    with pytest.raises(RolloutFailed, match=r"revision web-bad cannot serve: .*crashed"):
        target(service("web-bad"))


def test_rollback_sends_everything_to_the_target_and_keeps_tags_at_zero() -> None:
    svc = service(
        "web-v1",
        [
            {"revisionName": "web-v2", "percent": 90, "tag": "canary"},
            {"revisionName": "web-v1", "percent": 10},
            {"revisionName": "web-v0", "percent": 0, "tag": "old"},
        ],
    )
    new, annotations = modes.rollback_write(svc, "web-v1")
    assert new == (
        Target(revision="web-v1", percent=100),
        Target(revision="web-v2", percent=0, tag="canary"),
        Target(revision="web-v0", percent=0, tag="old"),
    )
    assert annotations == {STABLE_ANNOTATION: "web-v1"}


def test_promote_messages() -> None:
    assert modes.nothing_to_promote("web") == (
        "nothing to promote: no unfinished rollout is recorded on service web"
    )
    paused = RolloutState(candidate="web-v2", tag="canary", base=[], steps=[10], step=10)
    assert modes.resumed(paused) == "web-v2 at 10% (from an earlier run)"
    assert modes.resumed(replace(paused, run_url="u")) == "web-v2 at 10% (from u)"
