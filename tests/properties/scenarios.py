"""What Hypothesis draws for the property suites: a service's traffic split (``traffic_split``, for the
sequences and the rollback property), and the whole job the sequences play (``scenarios``: a pre-run
service, a rollout, events at points of its phases and what follows), also hunted with
``python -m tests.properties.hunt``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.properties.world import (
    ACTIONS,
    FOLLOW_UPS,
    FOREIGN_TAGS,
    SERVICE,
    Event,
    RunSpec,
    Scenario,
    points,
)

STEPS = ("10,50,100", "10,100", "100", "50,100", "10,50", "50")


def traffic_split(draw: st.DrawFn, service: str, revisions: int, max_entries: int) -> list[dict[str, Any]]:
    """1 to ``max_entries`` entries over revisions ``<service>-r<i>`` and/or "latest", 100 % in all."""
    targets: list[int | None] = draw(
        st.lists(st.one_of(st.integers(0, revisions - 1), st.none()), min_size=1, max_size=max_entries)
    )
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(targets) - 1, max_size=len(targets) - 1)))
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    traffic: list[dict[str, Any]] = []
    for target, percent in zip(targets, percents, strict=True):
        entry: dict[str, Any] = (
            {"latestRevision": True} if target is None else {"revisionName": f"{service}-r{target}"}
        )
        traffic.append({**entry, "percent": percent})
    return traffic


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    """A pre-run service: 1-3 revisions, a split over them and/or "latest", foreign tags on some."""
    revisions = draw(st.integers(1, 3))
    traffic = traffic_split(draw, SERVICE, revisions, max_entries=3)
    for tag in draw(st.lists(st.sampled_from(FOREIGN_TAGS), unique=True, max_size=2)):
        traffic.append({"revisionName": f"{SERVICE}-r{draw(st.integers(0, revisions - 1))}", "tag": tag})
    return {
        "revisions": revisions,
        "traffic": traffic,
        "server_named": draw(st.booleans()),
        "failed_latest": draw(st.booleans()),
        "public": draw(st.booleans()),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    steps = draw(st.sampled_from(STEPS))
    run = RunSpec(
        steps=steps,
        pre_job=draw(st.booleans()),
        post_job=steps.endswith("100") and draw(st.booleans()),
        public=draw(st.sampled_from([None, True, False])),
    )
    where = points(run)
    events = draw(
        st.lists(
            st.builds(Event, st.sampled_from(where), st.sampled_from(ACTIONS), st.integers(0, 5)),
            max_size=3,
        )
    )
    events = [e for e in events if e.action != "race" or e.at.startswith("write:")]
    follow_up = draw(st.sampled_from(FOLLOW_UPS))
    if follow_up == "none":  # a runner lost for good leaves its rollout to whoever comes next
        events = [e for e in events if e.action != "lost"]
    return Scenario(draw(services()), run, tuple(events), follow_up)
