"""Each failure the sequence test found, as a named test with its minimal scenario (issue 23).

They are played by the same driver as the property (``tests.properties.world.play``), which raises
``Problem`` naming what broke on the data plane, IAM or the jobs. Those marked ``xfail(strict=True)``
fail on today's code for the finding in their reason; the fix for it makes them pass, and then the
marker must go.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cloudrun_emulator import Emulator
from tests.properties.world import SERVICE, Event, Problem, RunSpec, Scenario, play

_projects = itertools.count(1)


def service(
    traffic: list[dict[str, Any]] | None = None,
    *,
    revisions: int = 2,
    public: bool = False,
    failed_latest: bool = False,
) -> dict[str, Any]:
    return {
        "revisions": revisions,
        "traffic": traffic or [{"latestRevision": True, "percent": 100}],
        "server_named": False,
        "failed_latest": failed_latest,
        "public": public,
    }


PINNED: list[dict[str, Any]] = [
    {"revisionName": f"{SERVICE}-r0", "percent": 70},
    {"revisionName": f"{SERVICE}-r1", "percent": 30},
    {"revisionName": f"{SERVICE}-r0", "tag": "blue"},
]


def check(emu: Emulator, scenario: Scenario, expect: str | None = None) -> None:
    """Play ``scenario``; a Problem must be the one ``expect`` names (another is a plain failure).
    Every event of the scenario must have happened: one that never fired tests nothing."""
    try:
        world = play(emu, f"finding-{next(_projects)}", scenario)
    except Problem as exc:
        if expect is not None and expect not in str(exc):
            raise AssertionError(f"expected a problem saying {expect!r}, got:\n{exc}") from None
        raise
    fired = [f for run in world.runs for f in run.fired]
    unfired = [e for e in scenario.events if f"{e.action}@{e.at}" not in fired]
    assert not unfired, f"events that never happened: {unfired} (fired: {fired})"


def finding(number: int | str, what: str) -> pytest.MarkDecorator:
    """The issue-23 finding a test reproduces (fixed: the test must pass)."""
    return pytest.mark.finding(number=number, what=what)


# --------------------------------------------------------------------------------------------------


def test_a_rollout_with_operators_between_phases_and_a_rerun_keeps_the_promise(emu: Emulator) -> None:
    """A sequence that holds today (the driver itself is sound): an operator's tag, a cancel, a re-run."""
    check(
        emu,
        Scenario(
            service(PINNED),
            RunSpec(steps="10,50,100"),
            (Event("bake10", "op:tag", 1),),  # (the run stops there: a cancel at bake50 never came)
            "rerun",
        ),
    )


@finding(1, "the post step rolls a paused rollout back; mode promote then has nothing to promote")
def test_a_paused_rollout_survives_the_post_step_and_promotes(emu: Emulator) -> None:
    check(emu, Scenario(service(PINNED), RunSpec(steps="10,50"), (), "promote"), "[finding 1]")


@finding(
    2,
    "a re-run after a lost runner deploys from the undo's stale answer: the old candidate is the stable side",
)
def test_a_rerun_after_a_lost_runner_starts_from_the_traffic_before_the_run(emu: Emulator) -> None:
    check(
        emu,
        Scenario(service(), RunSpec(steps="10,100"), (Event("bake10", "lost"),), "rerun"),
        "during the bake at 10% of run a-rerun",
    )


@finding(
    2,
    "a takeover after a lost runner deploys from the undo's stale answer: the old candidate is the "
    "stable side",
)
def test_a_takeover_after_a_lost_runner_starts_from_the_traffic_before_the_run(emu: Emulator) -> None:
    check(
        emu,
        Scenario(service(), RunSpec(steps="10,100"), (Event("bake10", "lost"),), "takeover"),
        "during the bake at 10% of run takeover",
    )


@finding(
    3, "a labels update during a bake, then a rollback: latestRevision resolves to the rolled-back release"
)
def test_rollback_after_an_operators_labels_update_keeps_the_release_off_latest(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(),
            RunSpec(steps="10,50,100"),
            (Event("bake10", "op:labels"), Event("bake50", "fail")),
            "none",
        ),
        "which runs sample/hello:a",
    )


@finding(
    "3 (new trigger, no operator)",
    "the latest created revision had failed before the run; the rollback writes the template back, the "
    "failed revision stays not ready, and latestRevision resolves to the newest ready one: the rolled-back "
    "candidate",
)
def test_rollback_on_a_service_whose_latest_revision_had_failed_keeps_the_release_off_latest(
    emu: Emulator,
) -> None:
    check(
        emu,
        Scenario(service(failed_latest=True), RunSpec(steps="10,100"), (Event("bake10", "fail"),), "none"),
        "which runs sample/hello:a",
    )


@finding(4, "allow_unauthenticated is applied before the smoke check and survives the rollback")
def test_a_failed_release_leaves_invoker_access_as_it_was(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED, public=True),
            RunSpec(steps="10,100", public=False),
            (Event("bake10", "fail"),),
            "none",
        ),
        "[finding 4]",
    )


@finding(
    5,
    "a manual rollback (mode rollback) during the smoke check: the pre_job of the rolled-back release "
    "still runs",
)
def test_no_pre_job_after_a_manual_rollback_during_the_smoke_check(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED), RunSpec(steps="10,100", pre_job=True), (Event("smoke", "rollback"),), "none"
        ),
        "[finding 5]",
    )


@finding(5, "an operator sends the traffic elsewhere before the post job: the post_job still runs")
def test_no_post_job_after_an_operator_moved_the_traffic(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED),
            RunSpec(steps="100", post_job=True),
            (Event("post job", "op:traffic", 0),),
            "none",
        ),
        "[finding 5]",
    )


@finding(
    6,
    "a run that read the service before another's first write re-applies on top of it, silently taking over",
)
def test_a_racing_run_without_takeover_never_writes_over_another_rollout(emu: Emulator) -> None:
    check(
        emu,
        Scenario(service(PINNED), RunSpec(steps="10,100"), (Event("write:deploy", "race"),), "none"),
        "[finding 6]",
    )


@finding(7, "a cancel while jobs/NAME:run is in flight: the execution starts, nobody cancels it")
def test_a_cancel_during_the_run_call_cancels_the_execution(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED), RunSpec(steps="10,100", pre_job=True), (Event("pre job run", "cancel"),), "none"
        ),
        "[finding 7]",
    )


@finding(7, "a kill while jobs/NAME:run is in flight: the post step does not know the execution")
def test_a_kill_during_the_run_call_leaves_no_execution_running(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED), RunSpec(steps="10,100", pre_job=True), (Event("pre job run", "kill"),), "none"
        ),
        "[finding 7]",
    )


@finding(5, "an operator sends everything to the candidate, then back, right before the 10 % write")
def test_traffic_changed_and_changed_back_before_the_run_reads_again_is_no_change(emu: Emulator) -> None:
    """Found by the hunt (seed 778), a limit of the judge, not of the action: both changes land
    between two reads of the run, and the second puts back exactly the traffic the run last wrote.
    Judged on the data plane nothing of the operator's is left to keep (Cloud Run keeps no
    history), so the run carries on and its post job may run."""
    check(
        emu,
        Scenario(
            {
                **service([{"revisionName": f"{SERVICE}-r0", "percent": 100}], revisions=1),
                "server_named": True,
            },
            RunSpec(steps="10,50,100", pre_job=True, post_job=True),
            (Event("write:10%", "op:traffic", 2), Event("write:10%", "op:traffic", 1)),
            "rollback",
        ),
    )


@pytest.mark.long  # the promote waits for the lost run's 30 s migration
@finding(7, "the runner dies while the pre job runs; mode promote moved traffic while the migration ran on")
def test_a_promote_after_a_lost_runner_waits_for_the_migration_it_left_running(emu: Emulator) -> None:
    """Found by the hunt (seed 4243): the promote finished the rollout while the lost run's pre_job
    execution was still running, and it was still running after every run had ended."""
    check(
        emu,
        Scenario(
            service(PINNED), RunSpec(steps="50", pre_job=True), (Event("pre job started", "lost"),), "promote"
        ),
        "[finding 7]",
    )


@finding(8, "the 100 % step stops referencing pre-run revisions; a cleanup deletes one; the post job fails")
def test_a_cleanup_during_the_post_job_cannot_make_the_rollback_inexact(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED),
            RunSpec(steps="10,100", post_job=True),
            (Event("post job", "op:delete"), Event("post job", "fail")),
            "none",
        ),
        "the service URL reaches",
    )


@pytest.mark.parametrize("follow_up", ["rerun", "takeover"])
@finding(
    7, "the runner dies in the pre job; a re-run or a takeover undoes the rollout, the execution runs on"
)
def test_the_next_run_after_a_lost_runner_ends_the_execution_it_left_running(
    emu: Emulator, follow_up: str
) -> None:
    check(
        emu,
        Scenario(
            service(PINNED),
            RunSpec(steps="10,100", pre_job=True),
            (Event("pre job started", "lost"),),
            follow_up,
        ),
        "[finding 7]",
    )


@finding(5, "an operator's --remove-tags before a job was read as Cloud Run's tag-quota cleanup")
def test_an_operators_untag_before_the_pre_job_is_not_taken_for_cloud_runs_tag_cleanup(emu: Emulator) -> None:
    """Found by the sequence test after the fixes: a 0 % foreign tag removed by a person looked like
    Cloud Run's quota cleanup (which only ever happens in the answer of a write that creates a tag),
    so the run carried on and started its pre job over the operator's change."""
    tagged = [*PINNED, {"revisionName": f"{SERVICE}-r1", "tag": "green"}]
    check(
        emu,
        Scenario(
            service(tagged, public=True),
            RunSpec(steps="50,100", pre_job=True),
            (Event("pre job", "op:untag", pick=5),),  # (the run stops before its job: no fault there)
            "rerun",
        ),
    )


# --- the variants of its findings that only the random test played ---------------------


@pytest.mark.parametrize(
    ("ending", "follow_up"),
    [("cancel", "none"), ("kill", "none"), ("lost", "rollback")],
    ids=["cancel", "post step after a kill", "mode rollback after a lost runner"],
)
@finding(3, "the labels update, then each other way back: latestRevision stays off the release")
def test_every_way_back_after_an_operators_labels_update_keeps_the_release_off_latest(
    emu: Emulator, ending: str, follow_up: str
) -> None:
    check(
        emu,
        Scenario(
            service(),
            RunSpec(steps="10,50,100"),
            (Event("bake10", "op:labels"), Event("bake50", ending)),
            follow_up,
        ),
    )


@finding(5, "a manual rollback during the wait: the pre_job of the rolled-back release never runs")
def test_no_pre_job_after_a_manual_rollback_during_the_wait(emu: Emulator) -> None:
    check(
        emu,
        Scenario(
            service(PINNED), RunSpec(steps="10,100", pre_job=True), (Event("wait", "rollback"),), "none"
        ),
    )
