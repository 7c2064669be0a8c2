"""Cancellation, sudden death and concurrent runs, with entrypoint.py and post.py run like the runner.

- SIGTERM (or the runner's SIGINT, SIGTERM, kill sequence) in each phase puts the traffic back to
  exactly where it was before the run within 5 seconds, and the step fails saying it was cancelled.
- SIGKILL mid-step leaves the rollout recorded on the service: the post step restores the traffic
  from it, and a re-run of the same workflow run first undoes it, then completes.
- A second run on a service with another run's unfinished rollout refuses without writing, naming
  that run; with ``takeover: true`` it undoes that rollout and proceeds.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from deployer.state import STATE_ANNOTATION
from devtools import harness
from tests.cloudrun import Api, api_path, routing
from tests.e2e.cancellation import (
    BEFORE,
    CANDIDATE,
    GRACE,
    PHASES,
    RESTORED,
    SERVICE,
    assert_cancelled,
    assert_restored,
    candidate_share,
    inputs,
    reach_bake,
    split_service,
    wait_until,
    writes,
)
from tests.helpers import split_two_revisions


@pytest.fixture
def emu(own_emulator: Emulator, project: str) -> Emulator:
    """A split service on an emulator of the test's own (tests/e2e/cancellation.py)."""
    return split_service(own_emulator, project)


@pytest.mark.parametrize("phase", list(PHASES))
def test_sigterm_in_each_phase_restores_the_traffic(
    phase: str, emu: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emu.url, project)
    assert routing(api.service(SERVICE)) == BEFORE
    reach, extra = PHASES[phase]
    if phase == "wait":
        emu.set_ready_delay(30.0)
    with harness.start(inputs(emu, project, **extra), tmp_path=tmp_path) as running:
        reach(running, emu, api)
        signalled = time.time()
        running.send_signal(signal.SIGTERM)
        emu.set_ready_delay(0.2)  # let the restored routes settle quickly
        result = running.wait(timeout=GRACE + 5)
        exited = time.time() - signalled
    assert_cancelled(result)
    assert "SIGTERM" in result.log
    assert exited < GRACE + 1, f"exited {exited:.1f}s after SIGTERM"
    # While waiting, the candidate is Ready only if the lowered ready_delay took effect first.
    assert_restored(emu, api, project, signalled, ready=None if phase == "wait" else True)
    if phase.startswith("bake"):  # the step it was in had really moved traffic
        shares = [candidate_share(w["body"]) for w in writes(emu, project)[-3:]]
        assert int(phase.split()[1].rstrip("%")) in shares


def test_cancel_like_the_runner_mid_bake(emu: Emulator, project: str, tmp_path: Path) -> None:
    """The runner's sequence (SIGINT, SIGTERM 7.5 s later, kill 2.5 s after): done on the SIGINT."""
    api = Api(emu.url, project)
    with harness.start(inputs(emu, project), tmp_path=tmp_path, post=False) as running:
        reach_bake(10)(running, emu, api)
        signalled = time.time()
        result = running.cancel_like_runner()
        exited = time.time() - signalled
    assert_cancelled(result)
    assert "SIGINT" in result.log
    assert exited < GRACE, f"needed {exited:.1f}s: the runner would have sent SIGTERM"
    assert_restored(emu, api, project, signalled)
    assert result.state.get("finished") == "true"
    post = harness.run_post(result, inputs(emu, project), tmp_path=tmp_path)
    assert post.returncode == 0 and "nothing to clean up" in post.stdout, post.log


def test_sigterm_while_an_api_call_hangs(own_emulator: Emulator, project: str, tmp_path: Path) -> None:
    """A cancel arriving while a read hangs (30 s read timeout) is not held up by it."""
    emu = own_emulator
    api = Api(emu.url, project)
    split_two_revisions(api, SERVICE)
    rule = emu.faults.add(
        method="GET", path=api_path(project, rf"revisions/{CANDIDATE}$"), action="hang", delay=20
    )
    with harness.start(inputs(emu, project), tmp_path=tmp_path) as running:
        wait_until(lambda: rule not in emu.faults.rules(), what="the hanging call")
        time.sleep(0.3)
        signalled = time.time()
        running.send_signal(signal.SIGTERM)
        result = running.wait(timeout=GRACE + 5)
        exited = time.time() - signalled
    assert_cancelled(result)
    assert exited < GRACE, f"exited {exited:.1f}s after SIGTERM"
    assert_restored(emu, api, project, signalled)


# --------------------------------------------------------------------------------------------------
# (b) SIGKILL: the post step, and a re-run of the same workflow run


def _killed_mid_step(emu: Emulator, project: str, tmp_path: Path, **extra: str) -> harness.RunResult:
    api = Api(emu.url, project)
    with harness.start(inputs(emu, project, **extra), tmp_path=tmp_path) as running:
        reach_bake(10)(running, emu, api)
        running.kill()
        result = running.wait()
    assert result.returncode == -signal.SIGKILL
    svc = api.service(SERVICE)
    assert STATE_ANNOTATION in svc["metadata"]["annotations"]  # the rollout it could not finish
    assert candidate_share(svc) == 10
    return result


def test_sigkill_mid_step_then_the_post_step_restores(emu: Emulator, project: str, tmp_path: Path) -> None:
    main = _killed_mid_step(emu, project, tmp_path / "main")
    assert "finished" not in main.state
    signalled = time.time()
    post = harness.run_post(main, inputs(emu, project), tmp_path=tmp_path / "post", timeout=30)
    assert post.returncode == 0, post.log
    assert "restoring the traffic" in post.stdout, post.log
    assert_restored(emu, Api(emu.url, project), project, signalled)
    again = harness.run_post(main, inputs(emu, project), tmp_path=tmp_path / "post2", timeout=30)
    assert again.returncode == 0 and "nothing to clean up" in again.stdout, again.log


def test_sigkill_mid_step_then_a_rerun_undoes_and_completes(
    emu: Emulator, project: str, tmp_path: Path
) -> None:
    fast = {"steps": "10,100", "step_interval": "3s"}
    _killed_mid_step(emu, project, tmp_path / "1", **fast)
    start = time.time()
    rerun = harness.run(
        inputs(emu, project, **fast), tmp_path=tmp_path / "2", github={"GITHUB_RUN_ATTEMPT": "2"}, timeout=60
    )
    assert rerun.returncode == 0, rerun.log
    assert rerun.outputs["result"] == "promoted", rerun.log
    assert "Undoing the unfinished rollout" in rerun.stdout, rerun.log
    shares = [candidate_share(w["body"]) for w in writes(emu, project, since=start)]
    assert shares[0] == 0  # first the undo (traffic as before the interrupted run)...
    assert shares[-1] == 100  # ...then its own rollout to the end
    assert routing(writes(emu, project, since=start)[0]["body"]["spec"]["traffic"]) == RESTORED
    svc = Api(emu.url, project).service(SERVICE)
    assert routing(svc) == [
        (f"{SERVICE}-v1", 0, "blue"),
        (f"{SERVICE}-v1", 0, "old"),
        (f"{SERVICE}-v2", 0, "green"),
        (CANDIDATE, 100, "canary"),
    ]
    assert STATE_ANNOTATION not in svc["metadata"]["annotations"]


# --------------------------------------------------------------------------------------------------
# (c) two runs on one service

OTHER_RUN = {"GITHUB_RUN_ID": "1111111111", "GITHUB_RUN_ATTEMPT": "1"}


def test_second_run_refuses_while_another_is_paused(emu: Emulator, project: str, tmp_path: Path) -> None:
    first = harness.run(inputs(emu, project, steps="10", step_interval="0s"), tmp_path=tmp_path / "1")
    assert first.outputs["result"] == "paused", first.log
    paused = Api(emu.url, project).wait_routes(SERVICE)  # the pause's write reconciled: nothing moves now
    start, before = time.time(), len(emu.requests())
    second = harness.run(
        inputs(emu, project, image="sample/hello:v4", suffix="v4", step_interval="0s"),
        tmp_path=tmp_path / "2",
        github=OTHER_RUN,
    )
    assert second.returncode != 0, second.log
    assert second.outputs["result"] == "failed", second.log
    errors = " ".join(a.data for a in second.annotations("error"))
    assert "unfinished rollout" in errors and "/runs/9876543210/" in errors, errors
    assert "takeover" in errors, errors
    assert writes(emu, project, since=start) == []
    assert all(r["method"] == "GET" for r in emu.requests()[before:])
    after = Api(emu.url, project).service(SERVICE)
    assert after["metadata"]["resourceVersion"] == paused["metadata"]["resourceVersion"]


def test_second_run_refuses_while_another_is_running(emu: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emu.url, project)
    with harness.start(inputs(emu, project), tmp_path=tmp_path / "1") as first:
        reach_bake(10)(first, emu, api)
        start = time.time()
        second = harness.run(
            inputs(emu, project, image="sample/hello:v4", suffix="v4"),
            tmp_path=tmp_path / "2",
            github=OTHER_RUN,
        )
        assert second.returncode != 0, second.log
        assert re.search(r"unfinished rollout of shop-v3 at 10%.*runs/9876543210", second.stdout), second.log
        assert writes(emu, project, since=start) == []
        assert first.poll() is None  # the first run carries on undisturbed
        result = first.cancel_like_runner()
    assert_cancelled(result)
    assert_restored(emu, api, project, None)


def test_takeover_undoes_the_other_run_and_proceeds(emu: Emulator, project: str, tmp_path: Path) -> None:
    first = harness.run(inputs(emu, project, steps="50", step_interval="0s"), tmp_path=tmp_path / "1")
    assert first.outputs["result"] == "paused", first.log
    start = time.time()
    second = harness.run(
        inputs(
            emu,
            project,
            image="sample/hello:v4",
            suffix="v4",
            steps="50,100",
            step_interval="0s",
            takeover="true",
        ),
        tmp_path=tmp_path / "2",
        github=OTHER_RUN,
    )
    assert second.returncode == 0, second.log
    assert second.outputs["result"] == "promoted", second.log
    assert "Undoing the unfinished rollout of shop-v3 at 50%" in second.stdout, second.log
    first_write = writes(emu, project, since=start)[0]["body"]
    assert routing(first_write["spec"]["traffic"]) == RESTORED  # the other run's rollout, undone
    svc = Api(emu.url, project).wait_routes(SERVICE)
    assert routing(svc) == [
        (f"{SERVICE}-v1", 0, "blue"),
        (f"{SERVICE}-v1", 0, "old"),
        (f"{SERVICE}-v2", 0, "green"),
        (f"{SERVICE}-v4", 100, "canary"),  # the tag moved to this run's revision
    ]
    assert STATE_ANNOTATION not in svc["metadata"]["annotations"]
