"""When a service, revision or job is ready or has failed for good, and the one wait loop: pure, no server."""

from __future__ import annotations

from typing import Any

import pytest

from deployer import readiness
from deployer.errors import JobFailed, RevisionFailed, RolloutFailed


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def service(*conditions: dict[str, str], latest_ready: str = "", generation: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": generation,
            "latestReadyRevisionName": latest_ready,
            "conditions": list(conditions),
        },
    }


class Revisions:
    def __init__(self, **revisions: dict[str, Any]) -> None:
        self.revisions = revisions
        self.asked: list[str] = []

    def get_revision(self, name: str) -> dict[str, Any] | None:
        self.asked.append(name)
        return self.revisions.get(name.replace("-", "_"))


def revision(status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"status": {"conditions": [cond("Ready", status, reason, message)]}}


ALL_READY = (cond("Ready", "True"), cond("ConfigurationsReady", "True"), cond("RoutesReady", "True"))


def test_a_ready_candidate_and_ready_routes_are_done() -> None:
    svc = service(*ALL_READY, latest_ready="svc-2")
    assert readiness.service_readiness(svc, "svc-2", Revisions(svc_2=revision("True")), "svc") == (
        True,
        "RoutesReady=True",
    )


def test_a_candidate_still_being_configured_is_waited_for_without_reading_it() -> None:
    svc = service(cond("ConfigurationsReady", "Unknown", "Deploying"), latest_ready="svc-1")
    revisions = Revisions()
    done, status = readiness.service_readiness(svc, "svc-2", revisions, "svc")
    assert not done and status.startswith("revision svc-2: ConfigurationsReady=Unknown")
    assert revisions.asked == []


def test_a_failed_candidate_fails_at_once_with_its_own_reason() -> None:
    svc = service(cond("ConfigurationsReady", "False", "RevisionFailed"), latest_ready="svc-1")
    failed = revision("False", "ContainerMissing", "Image not found")
    with pytest.raises(
        RevisionFailed, match="revision svc-2 is not ready: ContainerMissing: Image not found"
    ):
        readiness.service_readiness(svc, "svc-2", Revisions(svc_2=failed), "svc")


def test_a_candidate_never_created_fails_naming_the_configuration() -> None:
    svc = service(cond("ConfigurationsReady", "False", "ContainerMissing"), latest_ready="svc-1")
    with pytest.raises(RevisionFailed, match="svc-2 was never created: ConfigurationsReady=False"):
        readiness.candidate_readiness(svc, "svc-2", Revisions())


def test_a_traffic_change_counts_only_the_routes_when_the_latest_revision_failed() -> None:
    svc = service(cond("Ready", "False"), cond("ConfigurationsReady", "False"), cond("RoutesReady", "True"))
    assert readiness.service_readiness(svc, "", Revisions(), "svc") == (True, "RoutesReady=True")
    svc["status"]["conditions"][2] = cond("RoutesReady", "False", "RevisionMissing")
    with pytest.raises(RolloutFailed, match=r"service svc failed: RoutesReady=False \(RevisionMissing\)"):
        readiness.service_readiness(svc, "", Revisions(), "svc")


def test_a_job_is_ready_only_for_the_generation_written() -> None:
    conditions = [cond("Ready", "False")]
    job: dict[str, Any] = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "conditions": conditions},
    }
    assert readiness.job_readiness(job, 3, "migrate")[0] is False  # an older generation's failure: stale
    job["status"]["observedGeneration"] = 3
    with pytest.raises(JobFailed, match="job migrate is not ready"):
        readiness.job_readiness(job, 3, "migrate")
    job["status"]["conditions"] = [cond("Ready", "True")]
    assert readiness.job_readiness(job, 3, "migrate") == (True, "Ready=True")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_returns_what_was_waited_for_and_never_sleeps_past_the_deadline() -> None:
    clock = Clock()
    looks = iter([(None, "a"), (None, "b"), ("done", "c")])
    assert (
        readiness.wait(lambda: next(looks), timeout=10, clock=clock, sleep=clock.sleep, expired=RuntimeError)
        == "done"
    )
    assert clock.sleeps == [0.25, 0.25]

    clock = Clock()
    with pytest.raises(RuntimeError, match="still b"):
        readiness.wait(
            lambda: (None, "b"),
            timeout=1.1,
            clock=clock,
            sleep=clock.sleep,
            expired=lambda status: RuntimeError(f"still {status}"),
        )
    assert sum(clock.sleeps) == pytest.approx(1.1)  # the last sleep is cut to the deadline


def test_progress_every_so_often_and_on_a_change() -> None:
    said: list[tuple[float, str]] = []
    progress = readiness.Progress(
        lambda elapsed, status: said.append((elapsed, status)), every=15, on_change=2
    )
    for elapsed, status in [(1, "a"), (2.5, "a"), (3, "b"), (4, "c"), (10, "c"), (19, "c")]:
        progress(elapsed, status)
    # "a" after 2 s; "b" and "c" came too soon after it; "c" differs from what was said: at 10 s.
    assert said == [(2.5, "a"), (10, "c")]
    plain = readiness.Progress(lambda elapsed, status: said.append((elapsed, status)), every=5)
    said.clear()
    for elapsed in (1, 4, 5, 7, 10):
        plain(elapsed, "x")
    assert said == [(5, "x"), (10, "x")]


def test_the_expected_wait_is_the_shortest_slow_one_so_far() -> None:
    assert readiness.learned(None, 0.5) is None  # quick changes teach nothing
    assert readiness.learned(None, 3.0) == 3.0
    assert readiness.learned(3.0, 5.0) == 3.0
    assert readiness.learned(3.0, 2.0) == 2.0
    assert readiness.learned(3.0, readiness.POLL_LEARN_FROM - 0.01) == 3.0
