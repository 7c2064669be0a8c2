"""Wiring: inputs -> config -> rollout -> outputs and summary. Also signals and exit codes.

The runner cancels a step with SIGINT, then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that. The
first signal interrupts whatever the rollout is doing and sends it down its rollback path, which runs
shielded (later signals are noted, not raised) with short timeouts so that it finishes in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from types import FrameType
from typing import TextIO

from deployer import auth, github, inputs, load, rollout, sessions, settings, smoke
from deployer.analysis import METRIC_LAG_SECONDS, METRIC_SAMPLING_SECONDS, Analysis
from deployer.client import ApiError, CloudRun, RetryPolicy
from deployer.compare import OwnRequests
from deployer.console import Console, PhaseReporter
from deployer.errors import DeployerError
from deployer.hooks import Hooks
from deployer.jobs.adopt import rollout_awaiter
from deployer.jobs.runner import (
    JobRunner,
    cancel_leftover,
    plan_jobs,
    post_step_executions,
    rollout_hook,
    rollout_stopper,
    run_mode,
)
from deployer.outputs import outputs_for
from deployer.result import Outcome, RolloutResult, StepInfo, Verdict
from deployer.state import RolloutState
from deployer.terminal import TerminalConsole

# The way back must fit in the runner's grace period: a few short attempts.
FAST_POLICY = RetryPolicy(
    attempts=3, base_delay=0.2, max_delay=1.0, total=6.0, connect_timeout=2.0, read_timeout=4.0
)


class Cancellation:
    """Turns the first SIGINT/SIGTERM into a KeyboardInterrupt, except inside ``shield()``."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._shielded = False
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = not self._event.is_set()
        self._event.set()
        self.signal_name = self.signal_name or signal.Signals(signum).name
        if first and not self._shielded:
            raise KeyboardInterrupt(f"cancelled by {self.signal_name}")

    def is_set(self) -> bool:
        return self._event.is_set()

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        self._shielded = True
        try:
            yield
        finally:
            self._shielded = False


def on_github(env: Mapping[str, str]) -> bool:
    """Whether a GitHub Actions runner reads our log (it sets GITHUB_ACTIONS=true for every step)."""
    return env.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def make_console(env: Mapping[str, str], stream: TextIO | None = None, *, debug: bool = False) -> Console:
    """Workflow commands for the runner; headings and plain marked lines for anyone else."""
    if on_github(env):
        return github.Console(stream)
    return TerminalConsole(stream, env=env, debug=debug)


def main(env: Mapping[str, str] | None = None, *, output: str = "text", debug: bool = False) -> int:
    """Run the action's main step; the return value is the process exit code.

    ``output="json"`` (the command line's ``--output json``) prints the outputs as one JSON object on
    stdout and the log on stderr, so that a script can read the outputs without a runner's files.
    """
    env = os.environ if env is None else env
    console = make_console(env, sys.stderr if output == "json" else None, debug=debug)
    try:
        config, ctx = inputs.load(env)
    except inputs.ConfigError as exc:
        for problem in exc.problems:
            console.error(str(problem), title="Invalid input")
        console.error(f"{len(exc.problems)} invalid input(s): nothing was changed.", title="Invalid input")
        _refused(env, output)
        return 1
    if config.github_token:
        console.mask(config.github_token)
    cancel = Cancellation()
    cancel.install()
    try:
        api, project, credentials = _connect(config, console, cancel.is_set)
    except DeployerError as exc:
        console.error(str(exc), title="Cloud Run credentials")
        _refused(env, output)
        return 1
    tracker = _tracker(config, ctx, console)
    target = f"job {config.job}" if config.mode is settings.Mode.JOB else config.service
    if tracker is not None:
        tracker.start(ctx.ref, ctx.sha, f"{config.mode} {target} in {config.region}")
    token = secrets.token_hex(8)
    # Saved before any write: whatever happens next, the post step can find this process's rollout.
    github.save_state("token", token, env.get("GITHUB_STATE"))
    reporter = PhaseReporter(console)
    runner: rollout.Rollout | None = None  # the rollout, once built: its jobs check it is still ours

    def still_ours(when: str) -> str:
        """Checked while a job runs: a rolled-back release's job stops."""
        return runner.ownership(when) if runner is not None else ""

    job_runner = JobRunner(
        config,
        ctx,
        api,
        reporter,
        cancel_api=_fast(api),
        shield=cancel.shield,
        on_started=lambda name: github.save_state("job_execution", name, env.get("GITHUB_STATE")),
        on_launch=lambda launch: github.save_state("job_launch", launch, env.get("GITHUB_STATE")),
        token=token,
        guard=None if config.mode is settings.Mode.JOB else still_ours,
    )
    if config.mode is settings.Mode.JOB:
        result, unfinished = run_mode(config, job_runner, project), False
    else:
        own = OwnRequests()  # the smoke check's requests, left out of the metrics
        tokens = _id_tokens(config, credentials, console)
        smoke_check = _smoke_check(config, tokens, console, cancel.is_set, own)
        checks, ingested = _analysis(config, api, console, cancel.is_set, own)
        hooks = Hooks(
            token=token,
            smoke=smoke_check,
            checks=checks,
            ingested=ingested,
            metric_wait=METRIC_SAMPLING_SECONDS + METRIC_LAG_SECONDS,
            load=_load(config, tokens, cancel.is_set),
            cancelled=cancel.is_set,
            rollback_api=_fast(api),
            shield=cancel.shield,
            job=rollout_hook(job_runner, config),
            stop_jobs=rollout_stopper(_fast(api), reporter),
            await_jobs=rollout_awaiter(api, reporter, config.jobs.wait_timeout),
        )
        runner = rollout.Rollout(config, ctx, api, project, reporter, hooks)
        result = runner.run()
        if config.dry_run and result.outcome is Outcome.PLANNED:
            plan_jobs(config, job_runner, result)
        # A rollback that failed leaves our rollout recorded on the service: the post step must finish it.
        unfinished = result.outcome is Outcome.FAILED and runner.state is not None
    if cancel.is_set():
        result.reason = cancel_reason(result.reason, cancel.signal_name)
    _report(result, config, ctx, env, console, tracker)
    _print_json(output, outputs_for(result))
    github.save_state("finished", "false" if unfinished else "true", env.get("GITHUB_STATE"))
    return 1 if cancel.is_set() else result.exit_code


def cancel_reason(reason: str | None, signal_name: str) -> str:
    """One reason for a cancelled run: what cancelled it, and what else went wrong if anything did.

    The rollout says only "cancelled" (it sees a KeyboardInterrupt, not the signal), possibly
    followed by a failed rollback; a failure it had already hit before the signal comes first.
    """
    what = f"cancelled by {signal_name or 'a signal'}"
    if not reason or reason == "cancelled":
        return what
    if reason.startswith("cancelled"):
        return what + reason.removeprefix("cancelled")
    return f"{reason}; then {what}"


def _refused(env: Mapping[str, str], output: str) -> None:
    """A run refused before it started still says ``result: failed`` (``if: steps.x.outputs.result ==
    'failed'`` must hold for it); every other output is empty."""
    outputs = {name: "" for name in outputs_for(_NOTHING)} | {"result": Outcome.FAILED.value}
    github.write_output_values(outputs, env.get("GITHUB_OUTPUT"))
    _print_json(output, outputs)


_NOTHING = RolloutResult(outcome=Outcome.FAILED, mode="", service="", region="", project="")


def _print_json(output: str, outputs: Mapping[str, str]) -> None:
    """``--output json``: the outputs as one JSON object on stdout (the log went to stderr)."""
    if output == "json":
        sys.stdout.write(json.dumps(dict(outputs), indent=2) + "\n")
        sys.stdout.flush()


def post(env: Mapping[str, str] | None = None) -> int:
    """The post step: if a rollout of this process is still on the service (the main step died, or a
    cancelled write landed after all), put the service back from the recorded state."""
    # As PID 1 of its container, a signal without a handler is ignored: the runner's SIGINT and
    # SIGTERM would go unheard until its SIGKILL. The first one stops the step unless it is restoring.
    cancel = Cancellation()
    cancel.install()
    env = os.environ if env is None else env
    console = make_console(env)
    try:
        return _post(env, console, cancel)
    except KeyboardInterrupt:
        console.error(f"The post step was cancelled ({cancel.signal_name}) before it restored the traffic.")
        return 1
    except ApiError as exc:  # it could not even look: say so, and how to finish by hand
        console.error(
            f"The post step could not check the service for an unfinished rollout: {exc}. If the main "
            "step did not finish, run this action with mode 'rollback' (or re-run the job) to restore it.",
            title="Post step",
        )
        return 1


def _post(env: Mapping[str, str], console: Console, cancel: Cancellation) -> int:
    token = env.get("STATE_token", "")
    if not token and env.get("STATE_finished") == "true":
        console.info("The main step finished: nothing to clean up.")
        return 0
    try:
        config, ctx = inputs.load(env)
        api, project, _ = _connect(config, console, lambda: False)
    except (DeployerError, ValueError):
        console.info("The main step never got as far as a valid configuration: nothing to clean up.")
        return 0
    if token:  # a job execution the main step started (or whose :run was in flight) may still run
        post_step_executions(
            _fast(api), config, token, env.get("STATE_job_launch", ""), PhaseReporter(console)
        )
    elif env.get("STATE_job_execution"):
        cancel_leftover(_fast(api), env["STATE_job_execution"], PhaseReporter(console))
    if config.mode is settings.Mode.JOB:
        console.info("Mode job changes no traffic: nothing else to clean up.")
        return 0
    if config.dry_run:
        console.info("Dry run: nothing was written, nothing to clean up.")
        return 0
    recorded = RolloutState.from_service(api.get_service(config.service))
    ours = recorded is not None and (
        recorded.token == token
        if token
        else (recorded.run_id, recorded.run_attempt) == (ctx.run_id, ctx.run_attempt)
    )
    if recorded is None or not ours:
        console.info(f"No unfinished rollout of this run on {config.service}: nothing to clean up.")
        return 0
    if recorded.paused:
        console.info(
            f"The rollout of {recorded.candidate} is paused at {recorded.step}% on purpose: it stays for "
            "mode 'promote' (or 'rollback')."
        )
        return 0
    console.warning(
        f"The main step did not finish its rollout of {recorded.candidate}: "
        "restoring the traffic and template."
    )
    hooks = Hooks(
        smoke=lambda url: smoke.SmokeResult(True, None, 0, "skipped", 0.0),
        cancelled=cancel.is_set,  # the restoring write is shielded; waiting for its routes is not
        shield=cancel.shield,
        token=token,
        # Its job executions too, found by the record's token: under act there is no step state.
        stop_jobs=rollout_stopper(_fast(api), PhaseReporter(console)),
    )
    rollback = replace(config, mode=settings.Mode.ROLLBACK)
    result = rollout.run(rollback, ctx, _fast(api), project, PhaseReporter(console), hooks)
    # Say what happened: nobody asked for a rollback; the main step ended mid-rollout.
    result.mode = "post step"
    what = (
        f"the main step ended (killed, or timed out) during its rollout of {recorded.candidate} at "
        f"{recorded.step}% without cleaning up"
    )
    if result.outcome is Outcome.ROLLED_BACK:
        result.reason = f"{what}; the post step restored the traffic from before the run"
    else:
        result.reason = f"{what}; the post step could not restore the traffic: {result.reason}"
    github.append_summary(github.render_summary(result, rollback), env.get("GITHUB_STEP_SUMMARY"))
    return 0 if result.outcome is Outcome.ROLLED_BACK else 1


def _connect(
    config: settings.Config, console: Console, should_stop: Callable[[], bool]
) -> tuple[CloudRun, str, auth.Credentials | None]:
    session, project, credentials = auth.authorized_session(config.api_endpoint, config.project_id)
    if not project:
        raise auth.AuthError(
            "input 'project_id': no project given and none found in the credentials; set project_id"
        )
    api = CloudRun(
        session,
        region=config.region,
        project=project,
        api_endpoint=config.api_endpoint,
        log=console.info,
        should_stop=should_stop,
    )
    return api, project, credentials


def _analysis(
    config: settings.Config,
    api: CloudRun,
    console: Console,
    stop: Callable[[], bool],
    own: OwnRequests | None = None,
) -> tuple[Callable[[StepInfo], list[Verdict]], Callable[[str, float], bool] | None]:
    """The canary checks run at each bake round (metrics, command, webhook), if any is configured,
    and, with metric thresholds, how the rollout learns that a step's requests are in Cloud Monitoring."""
    endpoint = config.monitoring_endpoint
    if endpoint is None and auth.is_loopback(config.api_endpoint):
        endpoint = config.api_endpoint  # the emulator serves Cloud Monitoring too
    found = Analysis(
        config.analysis,
        session=api.session,
        project=api.project,
        region=config.region,
        service=config.service,
        monitoring_endpoint=endpoint,
        log=console.debug,  # the rollout logs every verdict itself
        should_stop=stop,
        own=own,
    )
    checks = found.run if found.enabled else (lambda step: [])
    return checks, (found.ingested if found.metrics_enabled else None)


def _fast(api: CloudRun) -> CloudRun:
    """The client for the way back: short timeouts, and deaf to the cancellation that sent us there."""
    return api.with_policy(FAST_POLICY, should_stop=lambda: False)


def _id_tokens(
    config: settings.Config, credentials: auth.Credentials | None, console: Console
) -> auth.IdTokens | None:
    """The run's ID tokens (one source per audience, shared by the smoke check and ``load_rps``);
    None when none may be sent: ``smoke_auth: none``, or an anonymous (loopback) endpoint."""
    if credentials is None or config.smoke.auth is settings.SmokeAuth.NONE:
        return None
    return auth.IdTokens(credentials, mask=console.mask)


def _smoke_check(
    config: settings.Config,
    tokens: auth.IdTokens | None,
    console: Console,
    stop: Callable[[], bool],
    own: OwnRequests | None = None,
) -> Callable[[str], smoke.SmokeResult]:
    """The smoke check the rollout runs on the tag URL, with an ID token when the service is private;
    every request it sends is recorded in ``own``."""
    session = sessions.plain()  # never the authorized one: our access token must not reach the service

    def check(url: str) -> smoke.SmokeResult:
        return smoke.check(
            url,
            config.smoke,
            session=session,
            id_token=tokens.for_url(url) if tokens is not None else None,
            should_stop=stop,
            log=console.info,
            on_attempt=own.record if own is not None else None,
        )

    return check


def _load(
    config: settings.Config,
    tokens: auth.IdTokens | None,
    stop: Callable[[], bool],
) -> Callable[[tuple[str, ...]], contextlib.AbstractContextManager[Callable[[], str]]]:
    """``load_rps``: GET ``smoke_path`` on the URLs while a bake's window lasts, each URL with the
    smoke check's ID-token rule (``smoke.TokenRule``; with ``auto``, a token only after a 401/403),
    kept for the whole run so a URL learns once that it needs one."""
    session = sessions.plain()  # never the authorized one: our access token must not reach the service
    rules: dict[str, smoke.TokenRule] = {}

    def rule(url: str) -> smoke.TokenRule:
        if url not in rules:
            id_token = tokens.for_url(url) if tokens is not None else None
            rules[url] = smoke.TokenRule(config.smoke.auth, id_token)
        return rules[url]

    def hook(urls: tuple[str, ...]) -> contextlib.AbstractContextManager[Callable[[], str]]:
        return load.running(
            urls,
            config.analysis.load_rps,
            config.smoke.path,
            session=session,
            auth=rule,
            should_stop=stop,
        )

    return hook


def _tracker(
    config: settings.Config, ctx: settings.RunContext, console: Console
) -> github.DeploymentTracker | None:
    if not (config.github_token and config.environment and ctx.repository):
        return None
    return github.DeploymentTracker(
        config.github_token,
        ctx,
        config.environment,
        config.service,
        config.region,
        console=console,
        production=config.production_environment,
    )


def _report(
    result: RolloutResult,
    config: settings.Config,
    ctx: settings.RunContext,
    env: Mapping[str, str],
    console: Console,
    tracker: github.DeploymentTracker | None,
) -> None:
    github.write_outputs(result, env.get("GITHUB_OUTPUT"))
    github.append_summary(github.render_summary(result, config), env.get("GITHUB_STEP_SUMMARY"))
    if isinstance(console, TerminalConsole):
        console.show_result(result)
    github.report_failure(console, result)
    if tracker is not None:
        tracker.finish(result)
    if config.github_token and ctx.pr_number and result.tag_url:
        body = github.render_pr_comment(result, ctx.run_url)
        github.upsert_pr_comment(
            config.github_token, ctx, body, service=config.service, region=config.region, console=console
        )
