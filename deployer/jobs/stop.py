"""Stopping the job executions of a rollout that is being ended or undone: ``:cancel`` each one, confirm
it by its terminal condition and say what became of it as gcloud does.

Every undo path uses these (the cancel handler, the post step, a re-run, a takeover, mode rollback):
an execution the action started carries the rollout's token (``spec.MARKER_ENV``), so it is found
even when the ``:run`` answer never arrived.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from deployer import readiness
from deployer.client import CloudRun
from deployer.errors import ApiError, Cancelled, NotFound
from deployer.jobs import spec
from deployer.result import Reporter
from deployer.settings import Config
from deployer.state import RolloutState

CANCEL_CONFIRM = 5.0  # how long a cancel may take to show in the execution's terminal condition
# The post step has time: it waits up to the client's read timeout of a ``:run`` for such an execution.
POST_STEP_SETTLE = 30.0
SETTLE_POLL = 0.25


@dataclass(frozen=True)
class Stopped:
    """What became of one execution a rollout had started, once someone stopped it."""

    execution: str
    result: str  # cancelled | succeeded | failed (ended on its own) | running (not confirmed) | gone
    message: str

    @property
    def escaped(self) -> bool:
        """Still running after our cancel: say so loudly, it may act on a rolled-back release."""
        return self.result == "running"


def cancel_execution(
    api: CloudRun,
    execution: str,
    *,
    timeout: float = CANCEL_CONFIRM,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Stopped:
    """``:cancel`` one execution and confirm it by its terminal condition, as ``gcloud run jobs executions
    cancel`` does (command_lib/run/cancellation.py): Cancelled; or "has completed successfully before it
    could be cancelled"; or "Failed to cancel" (with the execution's message) -- also when it is still
    running after ``timeout``. A finished execution answers the cancel 400: its ending is reported."""
    try:
        api.cancel_execution(execution)
    except NotFound:
        return Stopped(execution, "gone", f"Execution [{execution}] could not be found.")
    except (ApiError, Cancelled) as exc:
        if not isinstance(exc, ApiError) or exc.status != 400:
            return Stopped(execution, "running", f"Failed to cancel [{execution}]: {exc}")
    deadline, delays = clock() + timeout, readiness.poll_delays()
    while True:
        try:
            result, message = spec.outcome(api.get_execution(execution))
        except NotFound:
            return Stopped(execution, "gone", f"Execution [{execution}] could not be found.")
        except (ApiError, Cancelled) as exc:
            result, message = "running", str(exc)
        if result != "running" or clock() >= deadline:
            break
        sleep(next(delays))
    if result == "running":
        message = f"still running {timeout:g} s after the cancel" + (f" ({message})" if message else "")
    return Stopped(execution, result, cancel_report(execution, result, message))


def cancel_report(execution: str, result: str, message: str) -> str:
    """gcloud's words for what a cancel came to."""
    if result == "cancelled":
        return f"Cancelled execution [{execution}]."
    if result == "succeeded":
        return f"[{execution}] has completed successfully before it could be cancelled."
    return f"Failed to cancel [{execution}]: {message}" if message else f"Failed to cancel [{execution}]."


def stop_rollout_executions(
    api: CloudRun,
    job: str,
    marker: str,
    reporter: Reporter,
    *,
    settle: float = 0.0,
    expect: int = 0,
    confirm_timeout: float = CANCEL_CONFIRM,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Stopped]:
    """Cancel, and confirm, every running execution of ``job`` ("": of any job) that a rollout started:
    those carrying ``marker`` (the rollout's token: all of them; ``token/when``: one launch). One that
    already ended is reported as it ended. While fewer than ``expect`` have been found, look again
    until ``settle`` seconds have passed: a ``:run`` whose answer was lost may land later. Never raises
    for API errors (each is a warning): whoever calls this is ending a rollout and has more to undo."""
    if not marker:
        return []
    deadline = clock() + settle
    stopped: dict[str, Stopped] = {}
    while True:
        try:
            executions = [e for e in api.list_executions(job) if spec.is_marked(e, marker)]
        except NotFound:
            executions = []  # no such job (deleted, or never created): nothing of ours can run
        except (ApiError, Cancelled) as exc:
            reporter.warning(f"Could not list the executions of {f'job {job}' if job else 'the jobs'}: {exc}")
            executions = []
        for execution in executions:
            name = str((execution.get("metadata") or {}).get("name") or "")
            if not name or name in stopped:
                continue
            result = spec.outcome(execution)[0]
            if result == "running":
                stopped[name] = cancel_execution(api, name, timeout=confirm_timeout, clock=clock, sleep=sleep)
                owner = job or str(
                    ((execution.get("metadata") or {}).get("labels") or {}).get(spec.JOB_LABEL)
                )
                reporter.warning(f"Job {owner}: {stopped[name].message}")
            else:
                stopped[name] = Stopped(name, result, f"execution {name} had already ended: {result}")
        if len(stopped) >= expect or clock() >= deadline:
            return list(stopped.values())
        sleep(SETTLE_POLL)


def stop_jobs_of_rollout(
    api: CloudRun,
    jobs: Iterable[str],
    token: str,
    reporter: Reporter,
    *,
    pending: tuple[str, str] | None = None,
    settle: float = POST_STEP_SETTLE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Stopped]:
    """Every undo path (post step, re-run, takeover, mode rollback): stop what the rollout ``token``
    started on any of ``jobs``. ``pending`` (when, job) is a ``:run`` that was sent but whose answer was
    not seen: its execution is waited for up to ``settle`` seconds (it returns at once once found)."""
    found: list[Stopped] = []
    if not token:
        return found
    if pending is not None:
        when, job = pending
        marker = spec.execution_marker(token, when)
        found += stop_rollout_executions(
            api, job, marker, reporter, settle=settle, expect=1, clock=clock, sleep=sleep
        )
    seen = {s.execution for s in found}
    for job in dict.fromkeys(jobs):  # "" is every job
        for stopped in stop_rollout_executions(api, job, token, reporter, clock=clock, sleep=sleep):
            if stopped.execution not in seen:
                found.append(stopped)
    return found


def rollout_stopper(api: CloudRun, reporter: Reporter) -> Callable[[RolloutState], list[Stopped]]:
    """For ``hooks.Hooks.stop_jobs``: stop the executions of a rollout being undone by a re-run, a
    takeover or mode rollback. Its jobs may not be this run's (another workflow; mode rollback names
    none): the record names them; a record of an older version names none, and then every job's
    executions are searched for its token -- a rare event, one paged list."""

    def stop(recorded: RolloutState) -> list[Stopped]:
        return stop_jobs_of_rollout(api, recorded.jobs or ("",), recorded.token, reporter)

    return stop


def post_step_executions(api: CloudRun, config: Config, token: str, launch: str, reporter: Reporter) -> None:
    """The post step: stop what the main step (token) started on its jobs; ``launch`` ("when/job", saved
    before each ``:run``) is waited for if it has not shown up yet (its ``:run`` may still land)."""
    when, _, job = launch.partition("/")
    pending = (when, job) if when and job else None
    jobs = [name for name in (config.job, config.pre_job, config.post_job) if name]
    if not jobs and not pending:
        return  # no job in this configuration: nothing of ours can run
    found = stop_jobs_of_rollout(api, jobs, token, reporter, pending=pending)
    for stopped in found:
        if stopped.result == "cancelled":
            reporter.warning(f"The main step did not finish: cancelled execution {stopped.execution}.")


def cancel_leftover(api: CloudRun, execution: str, reporter: Reporter) -> None:
    """The post step: cancel the execution a killed main step left running (a finished one is left be)."""
    try:
        found = api.get_execution(execution)
    except ApiError as exc:
        reporter.warning(f"Could not read execution {execution}: {exc}")
        return
    if spec.outcome(found)[0] != "running":
        return
    stopped = cancel_execution(api, execution)
    if stopped.result == "cancelled":
        reporter.warning(f"The main step did not finish: cancelled execution {execution}.")
    else:
        reporter.warning(f"The main step did not finish: {stopped.message}")
