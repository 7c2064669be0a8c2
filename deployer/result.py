"""What a run did, as data: the rollout produces it, the GitHub side renders it."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from deployer.traffic import Traffic


class Outcome(enum.StrEnum):
    PROMOTED = "promoted"
    PAUSED = "paused"
    DEPLOYED = "deployed"  # tagged revision with no traffic (steps: 0)
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    PLANNED = "planned"  # dry run
    EXECUTED = "executed"  # mode job: the job's execution succeeded


@dataclass
class Phase:
    """One phase of the run (deploy, wait, smoke, step 10 %, promote, rollback...)."""

    name: str
    started: float  # seconds since the run started
    ended: float | None = None
    ok: bool | None = None
    detail: str = ""

    @property
    def duration(self) -> float:
        return (self.ended or self.started) - self.started


@dataclass(frozen=True)
class TrafficChange:
    """Traffic as it stood after a write; the summary charts these."""

    at: float  # seconds since the run started
    label: str  # e.g. "before", "deployed", "10%", "rolled back"
    traffic: Traffic


@dataclass
class JobRun:
    """One execution of a Cloud Run job (``pre``, ``post``, or mode ``job``), as the summary shows it."""

    when: str  # pre | post | job
    job: str
    execution: str = ""
    result: str = "pending"  # succeeded | failed | cancelled | timed_out | error | planned
    console_url: str = ""
    log_url: str = ""
    tasks: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    exit_codes: dict[int, int] = field(default_factory=dict)  # task index -> exit code, failed tasks
    duration: float = 0.0
    message: str = ""
    fails_step: bool = False  # a failure that fails the step without a rollback (post_job_failure: fail)

    @property
    def ok(self) -> bool:
        return self.result in ("succeeded", "planned")


@dataclass
class RolloutResult:
    outcome: Outcome
    mode: str
    service: str
    region: str
    project: str
    image: str | None = None
    revision: str | None = None
    previous_revision: str | None = None
    url: str | None = None
    tag_url: str | None = None
    traffic_before: Traffic = ()
    traffic_after: Traffic = ()
    phases: list[Phase] = field(default_factory=list)
    history: list[TrafficChange] = field(default_factory=list)
    reason: str | None = None  # why it failed or was rolled back
    plan: list[Traffic] = field(default_factory=list)  # dry run: the traffic at each step
    template_diff: list[str] = field(default_factory=list)  # dry run: unified diff lines
    jobs: list[JobRun] = field(default_factory=list)  # Cloud Run job executions of this run
    # The canary checks' verdicts that decided each step (its last round), with the step's percent.
    analyses: list[tuple[int, Verdict]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if any(job.fails_step for job in self.jobs):
            return 1
        ok = {Outcome.PROMOTED, Outcome.PAUSED, Outcome.DEPLOYED, Outcome.PLANNED, Outcome.EXECUTED}
        if self.outcome in ok or (self.outcome is Outcome.ROLLED_BACK and self.mode == "rollback"):
            return 0
        return 1


@dataclass(frozen=True)
class StepInfo:
    """What checks at a canary step need to know."""

    percent: int
    candidate: str
    previous: str | None  # the revision that served most before the run (the stable one)
    tag_url: str
    url: str  # the service URL
    started: float  # epoch seconds when this step's traffic became ready
    round: int  # 1 for the first check of the step
    ended: float | None = None  # epoch seconds the bake ended: set for the final check of a step
    baseline: tuple[str, ...] = ()  # what the candidate is compared with (baseline: revision or stable)
    baseline_tag_url: str = ""  # the baseline revision's tag URL (baseline: revision)


@dataclass(frozen=True)
class Verdict:
    """One check's answer: ok True/False, or None when there was too little data to say."""

    name: str
    ok: bool | None
    detail: str
    figures: dict[str, float] = field(default_factory=dict)


class Reporter(Protocol):
    """How the rollout tells the outside world what it is doing (the GitHub side implements it)."""

    def phase_started(self, phase: Phase) -> None: ...

    def phase_finished(self, phase: Phase) -> None: ...

    def info(self, text: str) -> None: ...

    def warning(self, text: str) -> None: ...


def is_failure(result: RolloutResult) -> bool:
    """Failed, rolled back by a deploy (a rollback in mode rollback is what was asked for), or a job
    failure that fails the step."""
    return (
        result.outcome is Outcome.FAILED
        or (result.outcome is Outcome.ROLLED_BACK and result.mode != "rollback")
        or any(job.fails_step for job in result.jobs)
    )


@contextlib.contextmanager
def recorded_phase(
    result: RolloutResult,
    reporter: Reporter,
    name: str,
    now: Callable[[], float],
    describe: Callable[[BaseException], str],
) -> Iterator[Phase]:
    """A phase of a run: appended to ``result`` and reported when it starts and ends, failed (with
    ``describe(exc)`` as its detail) by any exception, which goes on up."""
    phase = Phase(name=name, started=now())
    result.phases.append(phase)
    reporter.phase_started(phase)
    try:
        yield phase
        phase.ok = True
    except BaseException as exc:
        phase.ok = False
        phase.detail = describe(exc)
        raise
    finally:
        phase.ended = now()
        reporter.phase_finished(phase)
