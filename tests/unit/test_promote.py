"""How a rollout ends and what the promote writes (deployer.promote): pure, no server."""

from __future__ import annotations

import pytest

from deployer.promote import Ending, ending, pause_message, promote_annotations, steps_to_go
from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, STATE_ANNOTATION


@pytest.mark.parametrize(
    ("steps", "step", "expected"),
    [
        ((10, 50, 100), 100, Ending.PROMOTE),
        ((100,), 30, Ending.PROMOTE),  # mode promote finishes a paused rollout
        ((10, 50), 100, Ending.PROMOTE),  # already at 100 % (a re-run after the last step)
        ((0,), 0, Ending.FINISH),
        ((10, 0), 0, Ending.FINISH),
        ((10, 50), 50, Ending.PAUSE),
        ((25,), 25, Ending.PAUSE),
    ],
)
def test_how_the_rollout_ends(steps: tuple[int, ...], step: int, expected: Ending) -> None:
    assert ending(steps, step) is expected


def test_the_pause_message_says_how_to_go_on() -> None:
    assert pause_message(50) == (
        "Paused at 50 %: run this action with mode 'promote' to finish, or 'rollback' to undo."
    )


def test_promote_forgets_the_rollout_and_keeps_the_previous_stable() -> None:
    assert promote_annotations("web-v2", "web-v1") == {
        STATE_ANNOTATION: None,
        STABLE_ANNOTATION: "web-v2",
        PREVIOUS_STABLE_ANNOTATION: "web-v1",
    }


@pytest.mark.parametrize("previous", [None, "", "web-v2"])
def test_no_previous_stable_when_none_or_the_same_revision(previous: str | None) -> None:
    annotations = promote_annotations("web-v2", previous)
    assert annotations == {STATE_ANNOTATION: None, STABLE_ANNOTATION: "web-v2"}


def test_the_steps_still_to_take_start_above_the_candidates_share() -> None:
    assert steps_to_go((10, 50, 100), 0) == [10, 50, 100]
    assert steps_to_go((10, 50, 100), 50) == [100]  # a re-run after 50 %
    assert steps_to_go((100,), 30) == [100]  # mode promote
    assert steps_to_go((0,), 0) == []  # deploy with no traffic: no step moves any
