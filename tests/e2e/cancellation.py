"""What the cancellation suites share (tests/e2e/test_cancel.py, tests/container/test_image.py): a
service split 70/30 by another tool, a rollout of three 30 s steps so every signal lands mid-step,
how to reach each phase of it, and what "the traffic is back" means."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from cloudrun_emulator import Emulator
from deployer.state import STATE_ANNOTATION
from devtools import harness
from tests.cloudrun import Api, api_path, routing
from tests.helpers import split_two_revisions, target

SERVICE = "shop"
CANDIDATE = f"{SERVICE}-v3"
BEFORE = [(f"{SERVICE}-v1", 0, "old"), (f"{SERVICE}-v1", 70, "blue"), (f"{SERVICE}-v2", 30, "green")]
RESTORED = sorted([*BEFORE, (CANDIDATE, 0, "canary")])  # our tag stays on the (healthy) candidate
RESTORED_UNTAGGED = sorted(BEFORE)  # a candidate not Ready (yet) gets no tag: it could keep routes unready
GRACE = 5.0  # the promise: traffic is back within this many seconds of the signal


# Three steps of 30 s: every signal lands mid-step.
ROLLOUT = {
    "service": SERVICE,
    "image": "sample/hello:v3",
    "suffix": "v3",
    "steps": "10,50,100",
    "step_interval": "30s",
    "wait_timeout": "60s",
    "smoke_timeout": "4s",
}


def inputs(emu: Emulator, project: str, **extra: str) -> dict[str, str]:
    return target(emu, project, **{**ROLLOUT, **extra})


def writes(emu: Emulator, project: str, since: float = 0.0) -> list[dict[str, Any]]:
    """Successful writes to the service (PUT/POST), with the time the emulator received them."""
    return [
        r
        for r in emu.requests()
        if r["method"] in ("PUT", "POST")
        and re.search(api_path(project, "services"), r["path"])
        and r["status"] == 200
        and r["time"] >= since
    ]


def candidate_share(body: dict[str, Any]) -> int:
    return sum(t.get("percent", 0) for t in body["spec"]["traffic"] if t.get("revisionName") == CANDIDATE)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def serving(api: Api, percent: int) -> Callable[[], bool]:
    """The candidate serves ``percent`` (the step's write is observed and routed)."""

    def check() -> bool:
        svc = api.service(SERVICE)
        status = svc.get("status") or {}
        share = sum(
            t.get("percent", 0) for t in status.get("traffic", []) if t.get("revisionName") == CANDIDATE
        )
        return status.get("observedGeneration") == svc["metadata"]["generation"] and share == percent

    return check


def assert_restored(
    emu: Emulator, api: Api, project: str, signalled: float | None, *, ready: bool | None = True
) -> None:
    """The last write restored the pre-run traffic (within GRACE seconds of the signal, if one was
    sent at ``signalled``); the service serves it. Our tag stays on the candidate if it was
    ``ready`` (None: it may or may not have been Ready when the rollback looked)."""
    last = writes(emu, project)[-1]
    restored = routing(last["body"]["spec"]["traffic"])
    allowed = {True: [RESTORED], False: [RESTORED_UNTAGGED], None: [RESTORED, RESTORED_UNTAGGED]}[ready]
    assert restored in allowed
    assert signalled is None or last["time"] - signalled < GRACE, (
        f"traffic restored {last['time'] - signalled:.1f}s after the signal"
    )
    svc = api.wait_routes(SERVICE)
    assert routing(svc["spec"]["traffic"]) == restored
    assert routing(svc) == restored
    assert STATE_ANNOTATION not in svc["metadata"].get("annotations", {})


def assert_cancelled(result: harness.RunResult) -> None:
    assert result.returncode != 0, result.log
    assert result.outputs["result"] == "rolled_back", result.log
    errors = " ".join(a.data for a in result.annotations("error"))
    assert "cancelled" in errors, result.log
    # One clear reason: which signal cancelled the run, said once.
    assert re.search(r"\bcancelled by SIG(INT|TERM)\b", errors), result.log
    assert errors.count("cancelled") == 1, result.log
    assert "Traceback" not in result.stderr, result.log


def split_service(emulator: Emulator, project: str) -> Emulator:
    """The emulator with the pre-run service: 70/30 over two revisions, with foreign tags."""
    split_two_revisions(Api(emulator.url, project), SERVICE)
    return emulator


# --------------------------------------------------------------------------------------------------
# (a) SIGTERM / the runner's cancel in each phase


def reach_wait(running: harness.RunningAction, emu: Emulator, api: Api) -> None:
    running.wait_for_output(r"::group::wait", timeout=20)
    time.sleep(0.5)  # polling for a revision that takes 30 s to become ready


def reach_smoke(running: harness.RunningAction, emu: Emulator, api: Api) -> None:
    running.wait_for_output(r"body did not match", timeout=20)  # retrying a smoke check that never passes


def reach_bake(percent: int) -> Callable[[harness.RunningAction, Emulator, Api], None]:
    def reach(running: harness.RunningAction, emu: Emulator, api: Api) -> None:
        running.wait_for_output(rf"::group::{percent}%25", timeout=20)
        wait_until(serving(api, percent), what=f"{percent}% to be served")
        time.sleep(0.3)  # inside the 30 s bake

    return reach


PHASES: dict[str, tuple[Callable[[harness.RunningAction, Emulator, Api], None], dict[str, str]]] = {
    "wait": (reach_wait, {}),
    "smoke": (reach_smoke, {"smoke_body": "never-there", "smoke_timeout": "60s"}),
    "bake 10%": (reach_bake(10), {}),
    "bake 50%": (reach_bake(50), {"step_interval": "3s"}),  # the second step: a short first bake
}
