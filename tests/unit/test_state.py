"""The action's bookkeeping on a service: the rollout state annotation and the revision naming rule."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from deployer.settings import RunContext
from deployer.state import STATE_ANNOTATION, RolloutState, derive_suffix
from deployer.traffic import Target


def test_rollout_state_round_trips_through_the_annotation() -> None:
    recorded = RolloutState(
        candidate="svc-2",
        tag="canary",
        base=[{"revisionName": "svc-1", "percent": 100}],
        steps=[10, 100],
        step=10,
    )
    svc = {"metadata": {"annotations": {STATE_ANNOTATION: recorded.to_annotation()}}}
    assert RolloutState.from_service(svc) == recorded
    assert RolloutState.from_service({"metadata": {"annotations": {STATE_ANNOTATION: "{oops"}}}) is None
    assert recorded.base_traffic == (Target("svc-1", 100),)


def test_derive_suffix() -> None:
    assert derive_suffix(RunContext(sha="ABCDEF0123456789", run_attempt="3")) == "abcdef0-3"
    now = datetime(2026, 11, 23, 11, 44, 55, tzinfo=timezone(timedelta(hours=1)))
    assert derive_suffix(RunContext(), now) == "20261123-104455"
    assert derive_suffix(RunContext(), datetime(2026, 1, 2, 3, 4, 5)) == "20260102-030405"
    assert re.fullmatch(r"\d{8}-\d{6}", derive_suffix(RunContext(sha="not-a-sha")))
