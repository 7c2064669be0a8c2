"""What the rollout needs from its surroundings (the smoke check, the canary checks, the clock, the
jobs, cancellation...): one ``Hooks`` value, built complete by ``deployer.main``; tests and the
benchmark build their own."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deployer.client import CloudRun
from deployer.result import RolloutResult, StepInfo, Verdict
from deployer.smoke import SmokeResult
from deployer.state import RolloutState


@dataclass
class Hooks:
    """What the rollout needs from its surroundings; tests and the benchmark swap these."""

    smoke: Callable[[str], SmokeResult]
    checks: Callable[[StepInfo], list[Verdict]] = lambda step: []  # canary analysis, user checks
    wall: Callable[[], float] = time.time  # epoch seconds, for metric windows
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    cancelled: Callable[[], bool] = lambda: False
    rollback_api: CloudRun | None = None  # short timeouts for the way back
    shield: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext  # no cancel inside
    token: str = field(default_factory=lambda: secrets.token_hex(8))  # this process's claim on a rollout
    # Metric thresholds: whether Cloud Monitoring holds the candidate's data up to an epoch time, and
    # how long to wait for it after a bake (sampling + ingestion lag). None: no metric analysis.
    ingested: Callable[[str, float], bool] | None = None
    metric_wait: float = 240.0  # Cloud Run's 60 s sampling + up to 180 s until a sample is visible
    job: Callable[[str, RolloutResult], str] = lambda when, result: ""  # pre/post job (deployer.jobs)
    # Cancel the job executions of a rollout we undo (re-run, takeover, mode rollback): deployer.jobs.
    stop_jobs: Callable[[RolloutState], object] = lambda recorded: None
    # Mode promote: wait for the running executions of the rollout it finishes (a lost runner's
    # migration) with the rollout's sleep; why it must not promote, or "" (deployer.jobs.adopt).
    await_jobs: Callable[[RolloutState, Callable[[float], None]], str] = lambda recorded, sleep: ""
    # load_rps: requests sent to these URLs while a bake's window lasts; what it yields reports them.
    load: Callable[[tuple[str, ...]], contextlib.AbstractContextManager[Callable[[], str]]] = lambda urls: (
        contextlib.nullcontext(lambda: "")
    )
