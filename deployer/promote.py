"""Which steps a rollout still takes, how it ends once they are done, and what the promote writes:
pure rules, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from deployer.state import PREVIOUS_STABLE_ANNOTATION, STABLE_ANNOTATION, STATE_ANNOTATION


class Ending(StrEnum):
    PROMOTE = "promote"  # the candidate serves 100 %: mark it stable, forget the rollout
    FINISH = "finish"  # steps end at 0: deployed with no traffic, the rollout forgotten
    PAUSE = "pause"  # steps end between: hand the rollout on to a later promote or rollback


def steps_to_go(steps: Sequence[int], step: int) -> list[int]:
    """The steps still to take, the candidate now at ``step`` %: a re-run or mode promote resumes
    where the rollout is, never moving traffic back."""
    return [p for p in steps if p > step]


def ending(steps: Sequence[int], step: int) -> Ending:
    """How the rollout ends after ``steps``, the candidate now at ``step`` %."""
    if steps[-1] == 100 or step == 100:
        return Ending.PROMOTE
    if steps[-1] == 0:
        return Ending.FINISH
    return Ending.PAUSE


def pause_message(last: int) -> str:
    return f"Paused at {last} %: run this action with mode 'promote' to finish, or 'rollback' to undo."


def promote_annotations(candidate: str, previous: str | None) -> dict[str, str | None]:
    """The promote's annotations: the rollout record gone, the candidate stable, and the revision that
    served most before the run kept as previous stable (what mode rollback goes back to)."""
    annotations: dict[str, str | None] = {STATE_ANNOTATION: None, STABLE_ANNOTATION: candidate}
    if previous and previous != candidate:
        annotations[PREVIOUS_STABLE_ANNOTATION] = previous
    return annotations
