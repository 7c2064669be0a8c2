"""Create or update a Cloud Run job, execute it, and wait for its execution; the ``pre``/``post`` hook the
rollout calls, and mode ``job``.

A cancel (the runner's SIGINT, or the client's ``should_stop``) while an execution runs cancels that
execution (``:cancel``, with the short-timeout client, shielded) before the rollout restores the traffic.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from deployer import __version__, knative
from deployer.client import ApiError, Cancelled, CloudRun
from deployer.jobs import spec
from deployer.knative import Obj
from deployer.result import JobRun, Outcome, Phase, Reporter, RolloutResult, recorded_phase
from deployer.rollout import RolloutFailed
from deployer.settings import Config, JobFailurePolicy, RunContext

POLL_FIRST, POLL_FACTOR, POLL_MAX = 0.25, 1.5, 1.0
# A progress line when the task counts change (at most every 2 s), else one every 15 s.
PROGRESS_MIN, PROGRESS_MAX = 2.0, 15.0
READY_TIMEOUT = 60.0


class JobFailed(RolloutFailed):
    """A job could not be written, or its execution did not succeed; the message says why."""


class JobRunner:
    """Writes and executes the jobs of one run."""

    def __init__(
        self,
        config: Config,
        ctx: RunContext,
        api: CloudRun,
        reporter: Reporter,
        *,
        cancel_api: CloudRun | None = None,
        shield: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_started: Callable[[str], None] = lambda execution: None,
    ) -> None:
        self.config, self.ctx, self.api, self.reporter = config, ctx, api, reporter
        self.on_started = on_started  # main records it for the post step (a killed main step)
        self.settings = config.jobs
        self.cancel_api = cancel_api or api
        self.shield, self.clock, self.sleep = shield, clock, sleep

    # ---- the job ---------------------------------------------------------------------------

    def deploy(self, name: str, image: str, *, dry_run: bool = False) -> Obj:
        """Create the job or update it to our settings, then wait until it is Ready."""
        current = self.api.get_job(name)
        body = spec.job_body(
            current,
            name,
            self.settings,
            image,
            labels=knative.labels_for(self.config, self.ctx),
            annotations=self._annotations(),
        )
        if dry_run:
            if current is None:
                self.api.create_job(body, dry_run=True)
            else:
                self.api.replace_job(name, body, dry_run=True)
            self.reporter.info(
                f"Job {name} would be {'created' if current is None else 'updated'} (dry run)."
            )
            return body
        if current is not None and spec.same_spec(body, current):
            self.reporter.info(f"Job {name} already has these settings.")
            written = current
        elif current is None:
            written = self.api.create_job(body)
            self.reporter.info(f"Created job {name} (image {image}).")
        else:
            written = self.api.replace_job(name, body)
            self.reporter.info(f"Updated job {name} (image {image}).")
        return self._wait_ready(name, written)

    def _wait_ready(self, name: str, job: Obj) -> Obj:
        generation = knative.generation(job)
        end = self.clock() + min(self.config.wait_timeout, READY_TIMEOUT)
        delay = POLL_FIRST
        while True:
            ready = knative.condition(job, "Ready")
            if knative.is_fresh(job, generation) and ready.status == "True":
                return job
            if knative.is_fresh(job, generation) and ready.status == "False":
                raise JobFailed(f"job {name} is not ready: {ready.reason}: {ready.message}".rstrip(": "))
            if self.clock() >= end:
                raise JobFailed(f"job {name} did not become ready: {ready.describe()}")
            self._sleep(delay)
            delay = min(delay * POLL_FACTOR, POLL_MAX)
            job = self.api.get_job(name) or job

    # ---- executions ------------------------------------------------------------------------

    def run(self, when: str, name: str, image: str, into: list[JobRun]) -> JobRun:
        """Write the job and execute it; the record is in ``into`` from the start (a cancel keeps it)."""
        record = JobRun(when=when, job=name)
        into.append(record)
        try:
            self.deploy(name, image)
            self.execute(record)
        except (ApiError, JobFailed) as exc:
            if record.result in ("pending", "running"):
                record.result = "error"
            record.message = str(exc)
        return record

    def execute(self, record: JobRun) -> None:
        """Start an execution (with this run's overrides) and wait for its terminal condition."""
        started = self.clock()
        try:
            execution = self.api.run_job(record.job, spec.overrides(self.settings))
            record.execution = str((execution.get("metadata") or {}).get("name") or "")
            record.console_url = spec.console_url(self.api.project, self.config.region, record.execution)
            record.log_url = str((execution.get("status") or {}).get("logUri") or "")
            self._fill(record, execution)
            self.on_started(record.execution)
            self.reporter.info(
                f"Execution {record.execution} of job {record.job} started: {record.console_url}"
            )
            final = self._wait(record)
        except (KeyboardInterrupt, Cancelled):
            if record.execution:
                self._cancel(record)
            raise
        finally:
            record.duration = self.clock() - started
        self._fill(record, final)
        if record.result == "failed":
            with contextlib.suppress(ApiError):
                record.exit_codes = spec.exit_codes(self.api.list_tasks(record.execution))

    def _wait(self, record: JobRun) -> Obj:
        start = self.clock()
        delay, last_line, last_text = POLL_FIRST, start, ""
        while True:
            execution = self.api.get_execution(record.execution)
            if spec.outcome(execution)[0] != "running":
                return execution
            now = self.clock()
            text = spec.progress(execution).describe()
            due = now - last_line >= PROGRESS_MAX or (text != last_text and now - last_line >= PROGRESS_MIN)
            if due:
                self.reporter.info(f"{record.job} {record.execution}: {text} ({now - start:.0f}s)")
                last_line, last_text = now, text
            if now - start >= self.settings.wait_timeout:
                self._cancel(record)
                record.result = "timed_out"
                raise JobFailed(
                    f"execution {record.execution} of job {record.job} did not finish within "
                    f"job_wait_timeout ({self.settings.wait_timeout:g}s): cancelled it ({text})"
                )
            self._sleep(delay)
            delay = min(delay * POLL_FACTOR, POLL_MAX)

    def _cancel(self, record: JobRun) -> None:
        """``:cancel`` the execution with the short-timeout client; a failure is reported, not raised."""
        with self.shield():
            try:
                self.cancel_api.cancel_execution(record.execution)
                record.result = "cancelled"
                self.reporter.warning(f"Cancelled execution {record.execution} of job {record.job}.")
            except (ApiError, Cancelled) as exc:
                record.message = f"could not cancel execution {record.execution}: {exc}"
                self.reporter.warning(record.message)

    def _fill(self, record: JobRun, execution: Obj) -> None:
        progress = spec.progress(execution)
        record.tasks, record.succeeded, record.failed = progress.total, progress.succeeded, progress.failed
        record.cancelled, record.retried = progress.cancelled, progress.retried
        record.result, record.message = spec.outcome(execution)
        record.log_url = str((execution.get("status") or {}).get("logUri") or record.log_url)

    # ---- plumbing --------------------------------------------------------------------------

    def revision_image(self, revision: str | None) -> str | None:
        """The image a deployed revision runs: the default image of a job in mode promote."""
        found = self.api.get_revision(revision) if revision else None
        containers = ((found or {}).get("spec") or {}).get("containers") or [{}]
        return containers[0].get("image")

    def _annotations(self) -> dict[str, str]:
        return {
            "run.googleapis.com/client-name": knative.CLIENT_NAME,
            "run.googleapis.com/client-version": __version__,
        }

    def _sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def failure_text(record: JobRun) -> str:
    """One line for the log, the step's error and the deployment status: what failed and its exit codes."""
    what = f"{record.when} job {record.job}" if record.when != "job" else f"job {record.job}"
    if record.result == "error":
        return f"{what} failed: {record.message}"
    codes = ", ".join(f"task {i} exited with code {c}" for i, c in record.exit_codes.items())
    counts = f"{record.failed} of {record.tasks} task(s) failed" if record.failed else record.result
    parts = [f"{what} {record.result.replace('_', ' ')}: execution {record.execution}", counts]
    if codes:
        parts.append(codes)
    if record.message:
        parts.append(record.message)
    if record.log_url:
        parts.append(f"logs: {record.log_url}")
    return "; ".join(parts)


def success_text(record: JobRun) -> str:
    return (
        f"execution {record.execution} of {record.job}: {record.succeeded}/{record.tasks} task(s) succeeded "
        f"in {record.duration:.1f} s"
    )


def rollout_hook(runner: JobRunner, config: Config) -> Callable[[str, RolloutResult], str]:
    """The ``pre``/``post`` job for ``rollout.Hooks.job``: returns the phase detail, raises JobFailed
    to stop (pre) or roll back (post, with ``post_job_failure: rollback``)."""

    def hook(when: str, result: RolloutResult) -> str:
        name = (config.pre_job if when == "pre" else config.post_job) or ""
        image = config.jobs.image or config.image or runner.revision_image(result.revision)
        if not image:
            raise JobFailed(f"{when} job {name}: no image; set job_image")
        record = runner.run(when, name, image, result.jobs)
        if record.ok:
            return success_text(record)
        text = failure_text(record)
        if when == "pre" or config.post_job_failure is JobFailurePolicy.ROLLBACK:
            raise JobFailed(text)
        if config.post_job_failure is JobFailurePolicy.FAIL:
            record.fails_step = True
            result.reason = text
        runner.reporter.warning(f"{text} (post_job_failure: {config.post_job_failure}: traffic stays)")
        return f"{record.result} ({config.post_job_failure}): {text}"

    return hook


def cancel_leftover(api: CloudRun, execution: str, reporter: Reporter) -> None:
    """The post step: cancel the execution a killed main step left running (a finished one is left be)."""
    try:
        found = api.get_execution(execution)
        if spec.outcome(found)[0] != "running":
            return
        api.cancel_execution(execution)
        reporter.warning(f"The main step did not finish: cancelled execution {execution}.")
    except ApiError as exc:
        reporter.warning(f"Could not cancel execution {execution}: {exc}")


def plan_jobs(config: Config, runner: JobRunner, result: RolloutResult) -> None:
    """Dry run of a deploy: each job's body is validated by the server (``dryRun=all``); nothing is
    written or executed."""
    for when, name in (("pre", config.pre_job), ("post", config.post_job)):
        if not name:
            continue
        record = JobRun(when=when, job=name, result="planned")
        result.jobs.append(record)
        try:
            runner.deploy(name, config.jobs.image or config.image or "", dry_run=True)
        except ApiError as exc:
            record.result, record.message = "error", str(exc)
            result.outcome, result.reason = Outcome.FAILED, failure_text(record)


def run_mode(config: Config, runner: JobRunner, project: str) -> RolloutResult:
    """Mode ``job``: write the job and execute it; no service is touched."""
    name = config.job or ""
    image = config.jobs.image or config.image or ""
    result = RolloutResult(
        outcome=Outcome.FAILED,
        mode=str(config.mode),
        service=config.service,
        region=config.region,
        project=project,
        image=image,
    )
    start = runner.clock()
    try:
        with _phase(result, runner, "job", start) as phase:
            if config.dry_run:
                runner.deploy(name, image, dry_run=True)
                result.jobs.append(JobRun(when="job", job=name, result="planned"))
                result.outcome = Outcome.PLANNED
                phase.detail = f"job {name} validated (dry run): nothing was executed"
                return result
            record = runner.run("job", name, image, result.jobs)
            if not record.ok:
                raise JobFailed(failure_text(record))
            result.outcome = Outcome.EXECUTED
            phase.detail = success_text(record)
    except (ApiError, RolloutFailed, Cancelled) as exc:
        result.reason = str(exc)
    except KeyboardInterrupt:
        result.reason = "cancelled"
    return result


def _phase(
    result: RolloutResult, runner: JobRunner, name: str, start: float
) -> contextlib.AbstractContextManager[Phase]:
    return recorded_phase(
        result,
        runner.reporter,
        name,
        lambda: runner.clock() - start,
        lambda exc: "cancelled" if isinstance(exc, KeyboardInterrupt) else str(exc),
    )
