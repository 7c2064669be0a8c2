"""Sequences, not steps: the whole job (main step, post step, re-runs, operators, racing runs, jobs)
played against the emulator, judged on the data plane and IAM once everything has ended.

Hypothesis draws a scenario: a pre-run service (pinned splits, ``latestRevision``, foreign tags, a
latest-created revision that failed, public or private), a rollout (steps, a pause, pre/post job,
``allow_unauthenticated``), up to three events at points of its phases (an operator's change through
the API as gcloud writes it, a cancel, a kill, a failing check, a second run racing it or run whole
beside it, a manual rollback or promote) and what follows (a re-run, a takeover, mode rollback, mode
promote). ``tests.properties.world`` plays it in-process and judges it (see ``World.judge``).

CI runs a fixed seed and a few examples; ``RUN_CANARY_SEQUENCE_EXAMPLES`` asks for more (and
``RUN_CANARY_SEQUENCE_SEED`` another seed). Every failure found becomes a named test in
``test_sequence_findings.py``.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from cloudrun_emulator import Emulator
from deployer import main
from tests import cloudrun
from tests.properties.world import (
    ACTIONS,
    FOLLOW_UPS,
    FOREIGN_TAGS,
    SERVICE,
    STATE_SAVED,
    Event,
    RunSpec,
    Scenario,
    play,
    points,
)

EXAMPLES = int(os.environ.get("RUN_CANARY_SEQUENCE_EXAMPLES", "15"))  # about 0.8 CPU s each
SEED = int(os.environ.get("RUN_CANARY_SEQUENCE_SEED", "23"))
# Shrinking replays an example (2-5 s each) hundreds of times: only when asked. The failing scenario
# is printed whole (JSON) and replays with ``python -m tests.properties.hunt --replay``.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("RUN_CANARY_SEQUENCE_SHRINK"):
    PHASES.append(Phase.shrink)
STEPS = ("10,50,100", "10,100", "100", "50,100", "10,50", "50")
_projects = itertools.count(1)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, ready_delay=0.05, images=cloudrun.TEST_IMAGES) as emulator:
        yield emulator


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    """A pre-run service: 1-3 revisions, a split over them and/or "latest", foreign tags on some."""
    revisions = draw(st.integers(1, 3))
    targets: list[int | None] = draw(
        st.lists(st.one_of(st.integers(0, revisions - 1), st.none()), min_size=1, max_size=3)
    )
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(targets) - 1, max_size=len(targets) - 1)))
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    traffic: list[dict[str, Any]] = []
    for target, percent in zip(targets, percents, strict=True):
        entry: dict[str, Any] = (
            {"latestRevision": True} if target is None else {"revisionName": f"{SERVICE}-r{target}"}
        )
        traffic.append({**entry, "percent": percent})
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


@pytest.mark.long
@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenarios())
def test_every_sequence_keeps_the_promise(emu: Emulator, scenario: Scenario) -> None:
    play(emu, f"sequence-{next(_projects)}", scenario)


def test_the_driver_gives_the_post_step_every_state_the_main_step_saves() -> None:
    """The sequences play the main step in-process and hand its post step the state ``main`` would have
    saved: when ``main`` saves something new, ``World.post`` must pass it too."""
    saved = set(re.findall(r"save_state\(\s*\"(\w+)\"", inspect.getsource(main)))
    assert saved == STATE_SAVED
