"""A canary step's bake: its rounds of checks, the wait for Cloud Monitoring's lag, when a step is
inconclusive, and when failed rounds stop it (``failure_threshold``).

The rules are pure functions (``round_every``, ``judge``, ``after_final_round``...); ``bake_rounds``
runs them against the ``Hooks`` (clock, smoke check, canary checks), without a ``Rollout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from deployer.errors import RolloutFailed
from deployer.hooks import Hooks
from deployer.result import Reporter, RolloutResult, StepInfo, Verdict
from deployer.settings import AnalysisSettings

MAX_EXTENSIONS = 3  # on_inconclusive: extend


@dataclass(frozen=True)
class Bake:
    """One step's bake: how long, how it is judged, and what its checks are told (``info``'s round,
    start and end are filled in per round)."""

    info: StepInfo
    interval: float  # step_interval
    analysis: AnalysisSettings
    load: tuple[str, ...] = ()  # the URLs load_rps sends to while the bake's window lasts


def bakes_at(percent: int) -> bool:
    """Whether a step bakes: only below 100 %. At 100 % every request already goes to the new release
    and nothing is left to compare it with; the promote (or the post job) follows at once."""
    return percent < 100


def round_every(interval: float) -> float:
    """Seconds between rounds during a bake: three a bake, one a second at most, one every 15 s at least."""
    return min(max(interval / 3, 1.0), 15.0)


def metric_poll_every(metric_wait: float) -> float:
    """Seconds between looks for the step's metrics, at most: about 48 looks over the whole lag."""
    return min(max(metric_wait / 48, 0.25), 5.0)


def judge(percent: int, verdicts: list[Verdict], failures: int, threshold: int) -> tuple[int, str]:
    """Count a failed round: (failed rounds so far, the warning to log, "" when none failed);
    RolloutFailed once ``threshold`` rounds failed."""
    failed = [v for v in verdicts if v.ok is False]
    if not failed:
        return failures, ""
    failures += 1
    summary = "; ".join(f"{v.name}: {v.detail}" for v in failed)
    if failures >= threshold:
        raise RolloutFailed(f"check failed at {percent}%: {summary}")
    return failures, f"Check failed at {percent}% ({failures}/{threshold}): {summary}"


def after_final_round(percent: int, verdicts: list[Verdict], action: str, extensions: int) -> bool:
    """After the final round of a bake: True when the step is over, False to bake it once more
    (``on_inconclusive: extend``, at most MAX_EXTENSIONS times); RolloutFailed when an inconclusive
    verdict fails it."""
    unsure = [v for v in verdicts if v.ok is None]
    if not unsure or action == "pass":
        return True
    if action == "fail" or extensions >= MAX_EXTENSIONS:
        raise RolloutFailed(f"inconclusive at {percent}%: " + "; ".join(v.detail for v in unsure))
    return False


def bake_detail(interval: float, extensions: int, waited: float, rounds: int, verdicts: list[Verdict]) -> str:
    """The step's line in the summary: how long it baked, its rounds, and the last verdicts."""
    figures = "; ".join(f"{v.name} {'ok' if v.ok else 'inconclusive'}: {v.detail}" for v in verdicts)
    lag = f" + {waited:.0f}s for metrics" if waited >= 1 else ""
    detail = f"baked {interval * (1 + extensions):g}s{lag}, {rounds} rounds"
    return detail + (f"; {figures}" if figures else "")


def bake_rounds(
    bake: Bake, hooks: Hooks, reporter: Reporter, result: RolloutResult, sleep: Callable[[float], None]
) -> str:
    """Hold the step for ``step_interval`` while re-running the smoke check and the canary checks (and
    sending ``load_rps`` to ``bake.load``), then give the step its final verdict once its own
    requests are in Cloud Monitoring.

    A failed check counts towards ``failure_threshold`` (rounds during the bake judge the data that
    has arrived, so errors stop a step early). The final check covers exactly the bake; when it is
    inconclusive, ``on_inconclusive`` decides (default: fail when metric thresholds are set).
    """
    interval, percent = bake.interval, bake.info.percent
    threshold = bake.analysis.failure_threshold
    started = hooks.wall()
    rounds, failures, extensions, waited = 0, 0, 0, 0.0
    loads: list[str] = []  # what load_rps sent in each window

    def count(verdicts: list[Verdict]) -> None:
        nonlocal failures
        failures, warning = judge(percent, verdicts, failures, threshold)
        if warning:
            reporter.warning(warning)

    while True:
        end = hooks.clock() + interval
        every = round_every(interval)
        # load_rps only inside the window: a request after it is in no window's metrics.
        with hooks.load(bake.load) as report:
            while (left := end - hooks.clock()) > 0:
                sleep(min(every, left))
                if hooks.ingested is not None and end - hooks.clock() <= 0:
                    break  # over: the final round judges the whole bake once it is in Cloud Monitoring
                rounds += 1
                count(check_round(bake, hooks, reporter, result, started, rounds))
        if sent := report():  # the load has stopped: nothing it sent is after ``ended``
            reporter.info(f"{percent}%: {sent}")
            loads.append(sent)
        ended = hooks.wall()
        waited += await_metrics(bake, hooks, reporter, sleep, ended)
        rounds += 1
        verdicts = check_round(bake, hooks, reporter, result, started, rounds, ended=ended)
        count(verdicts)
        if after_final_round(percent, verdicts, bake.analysis.inconclusive_action, extensions):
            break
        extensions += 1
        reporter.info(
            f"Inconclusive at {percent}%: baking {interval:g}s more ({extensions}/{MAX_EXTENSIONS})."
        )
    return "; ".join([bake_detail(interval, extensions, waited, rounds, verdicts), *loads])


def await_metrics(
    bake: Bake, hooks: Hooks, reporter: Reporter, sleep: Callable[[float], None], ended: float
) -> float:
    """Wait (smoke-checking meanwhile) until Cloud Monitoring holds the candidate's requests up to
    ``ended``, at most sampling + ingestion lag; seconds waited. The traffic stays at the step."""
    ingested = hooks.ingested
    if ingested is None:
        return 0.0
    percent = bake.info.percent
    start = hooks.clock()
    deadline = start + hooks.metric_wait
    reporter.info(
        f"{percent}%: waiting up to {hooks.metric_wait:g}s for Cloud Monitoring to ingest the "
        "step's requests (sampled every 60 s, visible up to 180 s later)."
    )
    every = metric_poll_every(hooks.metric_wait)
    delay = min(0.1, every)  # a short ingestion (a test's, the emulator's) is seen at once
    while not ingested(bake.info.candidate, ended):
        left = deadline - hooks.clock()
        if left <= 0:
            reporter.info(f"{percent}%: no metric point after the bake arrived in time.")
            break
        sleep(min(delay, left))
        delay = min(delay * 1.5, every)
        smoke = hooks.smoke(bake.info.tag_url)
        if not smoke.ok:
            raise RolloutFailed(f"smoke check failed at {percent}%: {smoke.detail}")
    return hooks.clock() - start


def check_round(
    bake: Bake,
    hooks: Hooks,
    reporter: Reporter,
    result: RolloutResult,
    started: float,
    round_no: int,
    ended: float | None = None,
) -> list[Verdict]:
    """One round of checks during a bake: the smoke check must pass; the others give verdicts (kept in
    ``result.analyses``: the summary shows the last round of each step)."""
    percent = bake.info.percent
    smoke = hooks.smoke(bake.info.tag_url)
    if not smoke.ok:
        raise RolloutFailed(f"smoke check failed at {percent}%: {smoke.detail}")
    verdicts = hooks.checks(replace(bake.info, started=started, round=round_no, ended=ended))
    kept = [(p, v) for p, v in result.analyses if p != percent]
    result.analyses = kept + [(percent, v) for v in verdicts]
    for v in verdicts:
        state = {True: "ok", False: "FAILED", None: "inconclusive"}[v.ok]
        reporter.info(f"{percent}% round {round_no}: {v.name} {state}: {v.detail}")
    return verdicts
