"""What ``mode: promote`` does with the job executions of the rollout it finishes.

A runner lost while the rollout's ``pre_job`` migration ran (a killed job, a dead machine: no post
step) leaves the execution running, marked with the rollout's token. Promoting then would send
everyone to a release whose migration may still fail, and leave the execution running after every
run has ended. So the promote first waits for every running execution the rollout started (up to
``job_wait_timeout``), and goes on only if the rollout's latest ``pre`` execution, if any, succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from deployer import readiness
from deployer.client import CloudRun
from deployer.errors import ApiError, JobFailed, NotFound
from deployer.jobs import spec
from deployer.result import Reporter
from deployer.state import RolloutState

PROGRESS_EVERY = 15.0


@dataclass(frozen=True)
class Found:
    """One execution a recorded rollout started, as it ended (or still runs)."""

    execution: str
    job: str
    when: str  # pre | post (the phase of the rollout that started it)
    created: str  # metadata.creationTimestamp: the latest one of a phase is the one that counts
    result: str  # succeeded | failed | cancelled | running
    message: str = ""


def promote_blocker(found: Sequence[Found]) -> str:
    """Why the promote must not move traffic ("" when it may): an execution still running, or the
    rollout's latest pre-deploy execution that did not succeed (its migration is not done)."""
    running = [f for f in found if f.result == "running"]
    if running:
        names = ", ".join(f"{f.execution} of job {f.job}" for f in running)
        return f"the rollout's job execution(s) {names} still run: not promoting before they end"
    pre = sorted((f for f in found if f.when == "pre"), key=lambda f: f.created)
    if pre and pre[-1].result != "succeeded":
        last = pre[-1]
        why = f": {last.message}" if last.message else ""
        return (
            f"the rollout's pre_job execution {last.execution} of job {last.job} {last.result}{why}; "
            "its release is not promoted without it"
        )
    return ""


def _found(execution: spec.Obj, job: str, token: str) -> Found:
    meta = execution.get("metadata") or {}
    result, message = spec.outcome(execution)
    when = spec.marker_of(execution).removeprefix(f"{token}/")
    return Found(
        str(meta.get("name") or ""), job, when, str(meta.get("creationTimestamp") or ""), result, message
    )


def rollout_executions(api: CloudRun, jobs: Iterable[str], token: str) -> list[Found]:
    """Every execution of ``jobs`` that carries the rollout's ``token`` (a job that is gone has none)."""
    found: list[Found] = []
    for job in dict.fromkeys(jobs):
        try:
            executions = api.list_executions(job)
        except NotFound:
            continue
        found += [_found(e, job, token) for e in executions if spec.is_marked(e, token)]
    return found


def await_rollout_executions(
    api: CloudRun,
    recorded: RolloutState,
    reporter: Reporter,
    *,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait for the running executions of the ``recorded`` rollout to end; then why the promote must
    not go on (promote_blocker), or "". An execution still running at ``timeout`` is left running
    (it is the rollout's, not ours to cancel) and blocks the promote."""
    jobs, token = recorded.jobs, recorded.token
    if not token or not jobs:
        return ""
    found: list[Found] = []

    def look() -> tuple[list[Found] | None, str]:
        nonlocal found
        first = not found
        found = rollout_executions(api, jobs, token)
        running = [f for f in found if f.result == "running"]
        if not running:
            return found, ""
        if first:
            names = ", ".join(f"{f.execution} of job {f.job}" for f in running)
            reporter.info(f"The rollout's job execution(s) {names} still run (its runner was lost): waiting.")
        return None, f"waiting for {', '.join(f.execution for f in running)}"

    try:
        readiness.wait(
            look,
            timeout=timeout,
            clock=clock,
            sleep=sleep,
            progress=readiness.Progress(
                lambda elapsed, text: reporter.info(f"{text} ({elapsed:.0f}s)"), every=PROGRESS_EVERY
            ),
            expired=lambda text: JobFailed(text),
        )
    except JobFailed:
        pass  # still running at the timeout: ``found`` says which, and blocks the promote
    except ApiError as exc:
        return f"could not read the rollout's job executions: {exc}"
    return promote_blocker(found)


def rollout_awaiter(
    api: CloudRun, reporter: Reporter, timeout: float
) -> Callable[[RolloutState, Callable[[float], None]], str]:
    """For ``hooks.Hooks.await_jobs``: mode promote's wait for the recorded rollout's executions."""

    def await_jobs(recorded: RolloutState, sleep: Callable[[float], None]) -> str:
        return await_rollout_executions(api, recorded, reporter, timeout=timeout, sleep=sleep)

    return await_jobs
