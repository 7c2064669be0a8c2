"""Create or update a Cloud Run job, execute it, and wait for its execution; the ``pre``/``post`` hook the
rollout calls, and mode ``job``.

A cancel (the runner's SIGINT, or the client's ``should_stop``) while an execution runs cancels that
execution (``:cancel``, with the short-timeout client, shielded) before the rollout restores the traffic.

No execution escapes: each one the action starts is marked (``spec.MARKER_ENV``, valued
``<rollout token>/<when>``), so whoever ends or takes over the rollout -- the cancel handler, the post
step, a re-run, a takeover, a manual rollback -- finds it by its job and the rollout's token, even when
the ``:run`` answer never arrived, and cancels it (``stop_rollout_executions``), confirming each cancel
by the execution's terminal condition and reporting it as gcloud does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from deployer import __version__, knative, readiness
from deployer.client import CloudRun
from deployer.errors import ApiError, Cancelled, DeployerError, JobFailed
from deployer.jobs import spec
from deployer.jobs.stop import CANCEL_CONFIRM, Stopped, cancel_execution, stop_rollout_executions
from deployer.jobs.stop import cancel_leftover as cancel_leftover
from deployer.jobs.stop import cancel_report as cancel_report
from deployer.jobs.stop import post_step_executions as post_step_executions
from deployer.jobs.stop import rollout_stopper as rollout_stopper
from deployer.jobs.stop import stop_jobs_of_rollout as stop_jobs_of_rollout
from deployer.knative import Obj
from deployer.result import JobRun, Outcome, Phase, Reporter, RolloutResult, recorded_phase
from deployer.settings import Config, JobFailurePolicy, RunContext

# A progress line when the task counts change (at most every 2 s), else one every 15 s.
PROGRESS_MIN, PROGRESS_MAX = 2.0, 15.0
READY_TIMEOUT = 60.0
# Within the runner's grace after a cancel (SIGINT, then SIGTERM 7.5 s later) the rollback comes first:
# a cancel not confirmed by then is confirmed by the post step.
GRACE_CONFIRM = 2.0
# How long the cancel handler looks for an execution whose ``:run`` was in flight (it may land after
# the answer was abandoned); within the runner's 7.5 s between SIGINT and SIGTERM, with the rollback.
LATE_RUN_SETTLE = 3.0
GUARD_INTERVAL = 5.0  # how often a running execution re-checks that its rollout is still ours


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
        on_launch: Callable[[str], None] = lambda launch: None,
        token: str = "",
        guard: Callable[[str], str] | None = None,
    ) -> None:
        self.config, self.ctx, self.api, self.reporter = config, ctx, api, reporter
        self.on_started = on_started  # main records it for the post step (a killed main step)
        # "when/job" before ``:run`` is sent (its answer may never come), "" once the answer is known
        self.on_launch = on_launch
        self.token = token  # the rollout's (main's) token: the marker of every execution we start
        # (when) -> "" while the rollout is still ours, else why not: checked before ``:run`` and every
        # GUARD_INTERVAL while the execution runs (an operator's rollback stops the migration).
        self.guard = guard
        self.settings = config.jobs
        self.cancel_api = cancel_api or api
        self.shield, self.clock, self.sleep = shield, clock, sleep

    # ---- the job ---------------------------------------------------------------------------

    def deploy(self, name: str, image: str, *, dry_run: bool = False) -> Obj:
        """Create the job or update it to our settings, then wait until it is Ready."""
        current = self.api.get_job(name)
        try:
            body = spec.job_body(
                current,
                name,
                self.settings,
                image,
                labels=knative.labels_for(self.config, self.ctx),
                annotations=self._annotations(),
                namespace="" if current is not None else self.api.project,
            )
        except spec.ContainerError as exc:
            raise JobFailed(f"job {name}: {exc}") from exc
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
        first = [job]

        def look() -> tuple[Obj | None, str]:
            nonlocal job
            job = first.pop() if first else (self.api.get_job(name) or job)
            ready, status = readiness.job_readiness(job, generation, name)
            return (job if ready else None), status

        return readiness.wait(
            look,
            timeout=min(self.config.wait_timeout, READY_TIMEOUT),
            clock=self.clock,
            sleep=self._sleep,
            expired=lambda status: JobFailed(f"job {name} did not become ready: {status}"),
        )

    # ---- executions ------------------------------------------------------------------------

    def run(self, when: str, name: str, image: str, into: list[JobRun]) -> JobRun:
        """Write the job and execute it; the record is in ``into`` from the start (a cancel keeps it)."""
        record = JobRun(when=when, job=name)
        into.append(record)
        try:
            job = self.deploy(name, image)
            self.execute(record, container=container_name(job, self.settings.container))
        except (ApiError, JobFailed) as exc:
            if record.result in ("pending", "running"):
                record.result = "error"
            record.message = str(exc)
        return record

    def execute(self, record: JobRun, container: str = "") -> None:
        """Start an execution (with this run's overrides and our marker) and wait for its terminal
        condition. A cancel, or a ``:run`` whose answer is lost for good, looks for the execution by its
        marker and cancels it: one that lands after the answer was abandoned does not escape."""
        started = self.clock()
        marker = spec.execution_marker(self.token, record.when) if self.token else ""
        why = self.guard(record.when) if self.guard else ""
        if why:
            record.result, record.message = "cancelled", f"not executed: {why}"
            raise JobFailed(f"{record.when} job {record.job} not executed: {why}")
        try:
            self.on_launch(f"{record.when}/{record.job}")
            try:
                execution = self.api.run_job(record.job, spec.overrides(self.settings, container, marker))
            except ApiError as exc:
                if exc.status == 0 or exc.status >= 500:  # no answer, or no telling whether it landed
                    self._stop_unanswered(record, marker)
                else:
                    self.on_launch("")  # refused: nothing to look for
                raise
            self.on_launch("")
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
                self._cancel(record, GRACE_CONFIRM)
            else:
                self._stop_unanswered(record, marker)
            raise
        finally:
            record.duration = self.clock() - started
        self._fill(record, final)
        if record.result == "failed":
            with contextlib.suppress(ApiError):
                record.exit_codes = spec.exit_codes(self.api.list_tasks(record.execution))

    def _wait(self, record: JobRun) -> Obj:
        guarded = self.clock()

        def look() -> tuple[Obj | None, str]:
            nonlocal guarded
            if self.guard and self.clock() - guarded >= GUARD_INTERVAL:
                guarded = self.clock()
                why = self.guard(record.when)
                if why:  # the rollout is no longer ours: its migration must not go on
                    self._cancel(record)
                    record.message = why
                    raise JobFailed(f"{why}; cancelled execution {record.execution} of job {record.job}")
            execution = self.api.get_execution(record.execution)
            if spec.outcome(execution)[0] != "running":
                return execution, ""
            why = spec.blocked(execution)
            if why:  # as gcloud's poller: a False ResourcesAvailable or Started fails it at once
                self._fill(record, execution)
                self._cancel(record)  # so that it cannot start after all, once we have moved on
                record.result, record.message = "failed", why
                raise JobFailed(why)
            return None, spec.progress(execution).describe()

        def timed_out(text: str) -> JobFailed:
            self._cancel(record)
            record.result = "timed_out"
            return JobFailed(
                f"execution {record.execution} of job {record.job} did not finish within "
                f"job_wait_timeout ({self.settings.wait_timeout:g}s): cancelled it ({text})"
            )

        return readiness.wait(
            look,
            timeout=self.settings.wait_timeout,
            clock=self.clock,
            sleep=self._sleep,
            progress=readiness.Progress(
                lambda elapsed, text: self.reporter.info(
                    f"{record.job} {record.execution}: {text} ({elapsed:.0f}s)"
                ),
                every=PROGRESS_MAX,
                on_change=PROGRESS_MIN,
            ),
            expired=timed_out,
        )

    def _cancel(self, record: JobRun, confirm: float = CANCEL_CONFIRM) -> None:
        """``:cancel`` the execution with the short-timeout client and confirm it by the terminal
        condition (for up to ``confirm`` seconds); what became of it is in the record and the log."""
        with self.shield():
            stopped = cancel_execution(
                self.cancel_api, record.execution, timeout=confirm, clock=self.clock, sleep=self.sleep
            )
        self._stopped(record, stopped)

    def _stop_unanswered(self, record: JobRun, marker: str) -> None:
        """``:run`` was sent but gave no answer: find the execution it may have started (now or a moment
        later) by its marker and cancel it."""
        if not marker:
            return
        with self.shield():
            found = stop_rollout_executions(
                self.cancel_api,
                record.job,
                marker,
                self.reporter,
                settle=LATE_RUN_SETTLE,
                expect=1,
                confirm_timeout=GRACE_CONFIRM,
                clock=self.clock,
                sleep=self.sleep,
            )
        for stopped in found:
            record.execution = stopped.execution
            self._stopped(record, stopped, quiet=True)

    def _stopped(self, record: JobRun, stopped: Stopped, *, quiet: bool = False) -> None:
        if stopped.result == "cancelled":
            record.result = "cancelled"
            if not quiet:
                self.reporter.warning(f"Cancelled execution {record.execution} of job {record.job}.")
            return
        if stopped.result in ("succeeded", "failed"):
            record.result = stopped.result
        record.message = stopped.message
        if not quiet:
            self.reporter.warning(stopped.message)

    def _fill(self, record: JobRun, execution: Obj) -> None:
        progress = spec.progress(execution)
        record.tasks, record.succeeded, record.failed = progress.total, progress.succeeded, progress.failed
        record.cancelled, record.retried = progress.cancelled, progress.retried
        record.result, record.message = spec.outcome(execution)
        record.log_url = str((execution.get("status") or {}).get("logUri") or record.log_url)

    # ---- plumbing --------------------------------------------------------------------------

    def revision_image(self, revision: str | None) -> str | None:
        """The image a deployed revision runs (its container the ``container`` input names, else the
        ingress one): the default image of a job in mode promote."""
        found = self.api.get_revision(revision) if revision else None
        containers = ((found or {}).get("spec") or {}).get("containers") or [{}]
        try:
            return knative.target_container(containers, self.config.container).get("image")
        except knative.TemplateError as exc:
            raise JobFailed(f"no image for the job: revision {revision}: {exc}; set job_image") from exc

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
    parts = [f"{what} {record.result.replace('_', ' ')}: execution {record.execution}"]
    if record.failed:
        parts.append(f"{record.failed} of {record.tasks} task(s) failed")
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
    """The ``pre``/``post`` job for ``hooks.Hooks.job``: returns the phase detail, raises JobFailed
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


def container_name(job: Obj, wanted: str | None) -> str:
    """The name of the job's container our settings went to ("" when it has none): overrides name it."""
    task = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("template") or {}).get(
        "spec"
    ) or {}
    containers = task.get("containers") or [{}]
    try:
        return str(containers[spec.job_container(containers, wanted)].get("name") or "")
    except spec.ContainerError:
        return wanted or ""


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
        except (ApiError, JobFailed) as exc:
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
    except DeployerError as exc:
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
