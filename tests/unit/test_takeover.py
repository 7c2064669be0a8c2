"""Who may take over a service with an unfinished rollout on it (deployer.takeover): pure, no server."""

from __future__ import annotations

from dataclasses import replace

from deployer.settings import RunContext
from deployer.state import RolloutState
from deployer.takeover import attempt_number, rival_refusal, takeover_refusal, takeover_warning

RECORDED = RolloutState(
    candidate="web-v2",
    tag="canary",
    base=[],
    steps=[10, 100],
    step=10,
    run_id="77",
    run_attempt="1",
    run_url="https://github.com/o/r/actions/runs/77",
    token="theirs",
)


def refusal(
    recorded: RolloutState = RECORDED, *, run_id: str = "77", attempt: str = "1", takeover: bool = False
) -> str:
    ctx = RunContext(run_id=run_id, run_attempt=attempt)
    return takeover_refusal(recorded, ctx, takeover=takeover, service="web")


def test_a_rerun_of_the_same_run_undoes_its_earlier_attempt() -> None:
    assert refusal(attempt="2") == ""


def test_another_run_is_refused_naming_who_started_it_and_what_to_do() -> None:
    message = refusal(run_id="78")
    assert message.startswith("service web has an unfinished rollout of web-v2 at 10% started by ")
    assert "https://github.com/o/r/actions/runs/77" in message
    assert "mode 'promote' or 'rollback'" in message and "'takeover: true'" in message
    assert "another job of this workflow run" not in message


def test_takeover_lets_another_run_undo_it() -> None:
    assert refusal(run_id="78", takeover=True) == ""


def test_a_sibling_job_of_the_same_attempt_is_refused_as_such() -> None:
    message = refusal()  # same run, same attempt: another job (matrix) of this workflow run
    assert "another job of this workflow run (https://github.com/o/r/actions/runs/77)" in message


def test_a_later_attempt_recorded_is_not_taken_over_by_an_earlier_one() -> None:
    later = replace(RECORDED, run_attempt="3")
    assert "started by https://github.com/o/r/actions/runs/77" in refusal(later, attempt="2")


def test_a_record_without_run_id_is_never_the_same_run() -> None:
    anonymous = replace(RECORDED, run_id="")
    assert refusal(anonymous, run_id="", attempt="2") != ""


def test_attempt_numbers_unreadable_count_as_zero() -> None:
    assert attempt_number("3") == 3
    assert attempt_number("") == 0
    assert attempt_number("x") == 0


def test_the_takeover_warning_says_what_is_undone() -> None:
    assert takeover_warning(RECORDED) == (
        "Undoing the unfinished rollout of web-v2 at 10% "
        "(started by https://github.com/o/r/actions/runs/77) before deploying."
    )


def test_a_rival_rollout_started_meanwhile_refuses_our_first_write() -> None:
    message = rival_refusal(RECORDED, "ours", "web", dry_run=False)
    assert message.startswith("another rollout of service web (web-v2, started by https://github.com/")
    assert "this run wrote nothing" in message


def test_our_own_record_no_record_or_a_dry_run_is_no_rival() -> None:
    assert rival_refusal(None, "ours", "web", dry_run=False) == ""
    assert rival_refusal(RECORDED, "theirs", "web", dry_run=False) == ""
    assert rival_refusal(RECORDED, "ours", "web", dry_run=True) == ""
