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

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from cloudrun_emulator import Emulator
from deployer import main
from tests.properties.scenarios import scenarios
from tests.properties.world import (
    STATE_SAVED,
    Scenario,
    play,
)

EXAMPLES = int(os.environ.get("RUN_CANARY_SEQUENCE_EXAMPLES", "15"))  # about 0.25 CPU s each
SEED = int(os.environ.get("RUN_CANARY_SEQUENCE_SEED", "23"))
# Shrinking replays an example (2-5 s each) hundreds of times: only when asked. The failing scenario
# is printed whole (JSON) and replays with ``python -m tests.properties.hunt --replay``.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("RUN_CANARY_SEQUENCE_SHRINK"):
    PHASES.append(Phase.shrink)
_projects = itertools.count(1)


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
