"""Typed settings of one run: what every module reads, built only by ``deployer.inputs``.

Types only (no parsing, no I/O), so the rest of the package depends on plain data.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Mode(enum.StrEnum):
    DEPLOY = "deploy"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    JOB = "job"  # create or update a Cloud Run job and execute it, no service involved


class JobFailurePolicy(enum.StrEnum):
    """What a failed ``post_job`` does to a rollout that already serves 100 %."""

    ROLLBACK = "rollback"
    FAIL = "fail"
    WARN = "warn"


class SmokeAuth(enum.StrEnum):
    AUTO = "auto"
    ID_TOKEN = "id_token"  # noqa: S105 - a mode name, not a credential
    NONE = "none"


class UpdateStrategy(enum.StrEnum):
    MERGE = "merge"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class StatusRanges:
    """Accepted HTTP status codes, e.g. ``200,204,300-399``."""

    ranges: tuple[tuple[int, int], ...]

    def accepts(self, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


@dataclass(frozen=True)
class SmokeSettings:
    path: str = "/"
    statuses: StatusRanges = StatusRanges(((200, 399),))
    body: re.Pattern[str] | None = None
    timeout: float = 60.0
    auth: SmokeAuth = SmokeAuth.AUTO


@dataclass(frozen=True)
class SecretRef:
    """``ENV=secret-name:version`` -> ``valueFrom.secretKeyRef {name: secret, key: version}``; a secret
    of another project (``projects/P/secrets/S``) names its project (None: the run's own)."""

    secret: str
    version: str = "latest"
    project: str | None = None


@dataclass(frozen=True)
class RevisionSettings:
    """Revision settings a user sets with ``gcloud run deploy`` flags; ``None`` keeps what the service has."""

    cpu: str | None = None
    memory: str | None = None
    concurrency: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    port: int | None = None
    request_timeout: int | None = None  # seconds
    service_account: str | None = None
    ingress: str | None = None  # all | internal | internal-and-cloud-load-balancing (service level)
    cpu_throttling: bool | None = None
    execution_environment: str | None = None  # gen1 | gen2
    vpc_connector: str | None = None
    vpc_egress: str | None = None  # all-traffic | private-ranges-only


MAX_LOAD_RPS = 100.0  # load_rps is a nudge for quiet services, not a load test


@dataclass(frozen=True)
class AnalysisSettings:
    """Canary analysis on real traffic at each step (Cloud Monitoring and user checks)."""

    max_error_rate: float | None = None  # percent of 5xx
    max_latency_p99: float | None = None  # ms
    max_latency_p95: float | None = None  # ms
    min_requests: int = 0
    on_inconclusive: str = ""  # pass | fail | extend; "": fail when metric thresholds are set, else pass
    check_command: str | None = None
    check_webhook: str | None = None
    failure_threshold: int = 1
    # Comparison with a baseline (deployer.compare): "none", "revision" (a baseline revision deployed
    # beside the candidate, same share) or "stable" (the revisions from before the run).
    baseline: str = "none"
    max_latency_increase: float | None = None  # percent above the baseline's median or p95
    max_error_rate_increase: float | None = None  # percentage points of 5xx above the baseline's
    confidence: float = 95.0  # percent: a difference counts when its p-value is below 1 - confidence
    load_rps: float | None = None  # requests per second the action itself sends during each bake

    @property
    def comparisons(self) -> bool:
        """Any comparative check set (it needs a baseline)."""
        return self.max_latency_increase is not None or self.max_error_rate_increase is not None

    @property
    def metric_thresholds(self) -> bool:
        absolute = (self.max_error_rate, self.max_latency_p99, self.max_latency_p95)
        return any(v is not None for v in absolute) or self.comparisons

    @property
    def inconclusive_action(self) -> str:
        """on_inconclusive, or its default: a threshold with no data to judge it must not pass."""
        return self.on_inconclusive or ("fail" if self.metric_thresholds else "pass")


@dataclass(frozen=True)
class JobSettings:
    """A Cloud Run job and how to execute it (``job_*`` inputs); ``None`` keeps what the job has."""

    image: str | None = None  # None: the deploy's image (or the deployed revision's)
    container: str | None = None  # the container the settings apply to; None: the job's only one
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    tasks: int | None = None
    parallelism: int | None = None
    task_timeout: int | None = None  # seconds
    max_retries: int | None = None
    service_account: str | None = None
    args_override: tuple[str, ...] | None = None  # this execution only
    env_override: Mapping[str, str] = field(default_factory=dict)  # this execution only
    wait_timeout: float = 3600.0  # how long one execution may take before we cancel it


@dataclass(frozen=True)
class Config:
    service: str
    region: str = "us-central1"
    project_id: str | None = None
    mode: Mode = Mode.DEPLOY
    image: str | None = None
    tag: str = "canary"
    suffix: str | None = None  # None: derived from the run context
    steps: tuple[int, ...] = (10, 50, 100)
    step_interval: float = 60.0
    wait_timeout: float = 600.0
    smoke: SmokeSettings = SmokeSettings()
    dry_run: bool = False
    env_vars: Mapping[str, str] = field(default_factory=dict)
    env_vars_update_strategy: UpdateStrategy = UpdateStrategy.MERGE
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    secrets_update_strategy: UpdateStrategy = UpdateStrategy.MERGE
    labels: Mapping[str, str] = field(default_factory=dict)
    skip_default_labels: bool = False
    revision: RevisionSettings = RevisionSettings()
    allow_unauthenticated: bool | None = None
    metadata: Mapping[str, Any] | None = None  # parsed Knative Service YAML used as the base
    rollback_to: str | None = None
    api_endpoint: str | None = None
    monitoring_endpoint: str | None = None
    github_token: str | None = field(default=None, repr=False)
    environment: str | None = None
    takeover: bool = False  # take over (undo) another run's unfinished rollout
    analysis: AnalysisSettings = AnalysisSettings()
    container: str | None = None  # the container the inputs apply to; None: the ingress container
    production_environment: bool | None = None  # GitHub Deployment flag; None: from the environment name
    job: str | None = None  # mode job: the job to create/update and execute
    pre_job: str | None = None  # executed before any traffic moves
    post_job: str | None = None  # executed once the new revision serves 100 %
    post_job_failure: JobFailurePolicy = JobFailurePolicy.ROLLBACK
    jobs: JobSettings = JobSettings()


@dataclass(frozen=True)
class RunContext:
    """What the runner tells us about the workflow run (all optional outside GitHub Actions)."""

    sha: str = ""
    ref: str = ""
    repository: str = ""
    run_id: str = ""
    run_attempt: str = "1"
    job: str = ""  # GITHUB_JOB: the job's id in the workflow (matrix jobs share it)
    server_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    event_name: str = ""
    event_path: str = ""
    workflow: str = ""
    actor: str = ""
    pr_number: int | None = None  # from the event payload on pull_request events

    @property
    def run_url(self) -> str:
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}/attempts/{self.run_attempt}"
