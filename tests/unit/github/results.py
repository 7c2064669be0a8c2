"""A rollout's result as the GitHub side gets it (promoted by default; ``kw`` changes any field)."""

from __future__ import annotations

from deployer.result import Outcome, RolloutResult
from deployer.traffic import Target


def rollout_result(outcome: Outcome = Outcome.PROMOTED, **kw: object) -> RolloutResult:
    base: dict[str, object] = {
        "outcome": outcome,
        "mode": "deploy",
        "service": "svc",
        "region": "us-central1",
        "project": "proj",
        "image": "sample/hello:1",
        "revision": "svc-abc",
        "previous_revision": "svc-old",
        "url": "https://svc-xyz.a.run.app",
        "tag_url": "https://canary---svc-xyz.a.run.app",
        "traffic_before": (Target("svc-old", 100, tag="stable"),),
        "traffic_after": (
            Target("svc-abc", 100, tag="canary", url="https://canary---svc-xyz.a.run.app"),
            Target("svc-old", 0, tag="stable"),
        ),
    }
    base.update(kw)
    return RolloutResult(**base)  # type: ignore[arg-type]
