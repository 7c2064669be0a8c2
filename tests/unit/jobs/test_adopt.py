"""deployer.jobs.adopt: when mode promote may move traffic, given the executions of the rollout it
finishes."""

from __future__ import annotations

from deployer.jobs.adopt import Found, promote_blocker


def found(
    name: str, when: str, result: str, created: str = "2026-01-01T00:00:00Z", message: str = ""
) -> Found:
    return Found(name, "migrate", when, created, result, message)


def test_nothing_started_or_everything_succeeded_lets_the_promote_go_on() -> None:
    assert promote_blocker([]) == ""
    assert promote_blocker([found("m-1", "pre", "succeeded"), found("p-1", "post", "failed")]) == ""


def test_a_running_execution_blocks_it() -> None:
    why = promote_blocker([found("m-1", "pre", "running")])
    assert why == "the rollout's job execution(s) m-1 of job migrate still run: not promoting before they end"


def test_the_latest_pre_execution_decides() -> None:
    failed_then_fixed = [
        found("m-1", "pre", "failed", "2026-01-01T00:00:00Z"),
        found("m-2", "pre", "succeeded", "2026-01-01T00:05:00Z"),
    ]
    assert promote_blocker(failed_then_fixed) == ""
    cancelled_last = [
        found("m-1", "pre", "succeeded", "2026-01-01T00:00:00Z"),
        found("m-2", "pre", "cancelled", "2026-01-01T00:05:00Z", "Cancelled: by user"),
    ]
    assert promote_blocker(cancelled_last) == (
        "the rollout's pre_job execution m-2 of job migrate cancelled: Cancelled: by user; "
        "its release is not promoted without it"
    )
