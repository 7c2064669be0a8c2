"""Each failure the sequence test found, as a named test with its minimal scenario (issue 23).

They are played by the same driver as the property (``tests.properties.world.play``), which raises
``Problem`` naming what broke on the data plane, IAM or the jobs. Those marked ``xfail(strict=True)``
fail on today's code for the finding in their reason; the fix for it makes them pass, and then the
marker must go.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from cloudrun_emulator import Emulator
from tests import cloudrun
from tests.properties.world import SERVICE, Event, RunSpec, Scenario, play

_projects = itertools.count(1)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, ready_delay=0.05, images=cloudrun.TEST_IMAGES) as emulator:
        yield emulator


def service(
    traffic: list[dict[str, Any]] | None = None, *, revisions: int = 2, public: bool = False, failed_latest: bool = False
) -> dict[str, Any]:
    return {
        "revisions": revisions,
        "traffic": traffic or [{"latestRevision": True, "percent": 100}],
        "server_named": False,
        "failed_latest": failed_latest,
        "public": public,
    }


PINNED = [
    {"revisionName": f"{SERVICE}-r0", "percent": 70},
    {"revisionName": f"{SERVICE}-r1", "percent": 30},
    {"revisionName": f"{SERVICE}-r0", "tag": "blue"},
]


def check(emu: Emulator, scenario: Scenario) -> None:
    play(emu, f"finding-{next(_projects)}", scenario)


def finding(number: int, what: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"issue 23, finding {number}: {what}")


# --------------------------------------------------------------------------------------------------


def test_a_rollout_with_operators_between_phases_and_a_rerun_keeps_the_promise(emu: Emulator) -> None:
    """A sequence that holds today (the driver itself is sound): an operator's tag, a cancel, a re-run."""
    check(
        emu,
        Scenario(
            service(PINNED),
            RunSpec(steps="10,50,100"),
            (Event("bake10", "op:tag", 1), Event("bake50", "cancel")),
            "rerun",
        ),
    )


@finding(1, "the post step rolls a paused rollout back; mode promote then has nothing to promote")
def test_a_paused_rollout_survives_the_post_step_and_promotes(emu: Emulator) -> None:
    check(emu, Scenario(service(PINNED), RunSpec(steps="10,50"), (), "promote"))


@finding(3, "a labels update during a bake, then a rollback: latestRevision resolves to the rolled-back release")
def test_rollback_after_an_operators_labels_update_keeps_the_release_off_latest(emu: Emulator) -> None:
    check(
        emu,
        Scenario(service(), RunSpec(steps="10,50,100"), (Event("bake10", "op:labels"), Event("bake50", "fail")), "none"),
    )


@finding(4, "allow_unauthenticated is applied before the smoke check and survives the rollback")
def test_a_failed_release_leaves_invoker_access_as_it_was(emu: Emulator) -> None:
    check(
        emu,
        Scenario(service(PINNED, public=True), RunSpec(steps="10,100", public=False), (Event("bake10", "fail"),), "none"),
    )
