"""Reading the action's inputs (``INPUT_*``) into a ``Config``.

Every input is parsed here, once, so that bad input is reported in full (every problem, each naming its
input) before any API call is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import yaml

from deployer import secretrefs
from deployer.context import load_context
from deployer.errors import DeployerError
from deployer.jobs.inputs import JOB_DEFAULTS, read_job_settings, read_jobs
from deployer.parsers import (
    PROJECT_ID,
    PROJECT_NUMBER,
    Invalid,
    check_revision_name,
    check_tag_length,
    choice,
    float_in,
    free_text,
    int_in,
    optional,
    parse_bool,
    parse_container,
    parse_cpu,
    parse_duration,
    parse_endpoint,
    parse_env_vars,
    parse_image,
    parse_labels,
    parse_memory,
    parse_metadata,
    parse_project,
    parse_regex,
    parse_region,
    parse_request_timeout,
    parse_secrets,
    parse_service,
    parse_service_account,
    parse_smoke_path,
    parse_status_ranges,
    parse_steps,
    parse_suffix,
    parse_tag,
    parse_vpc_connector,
    parse_webhook,
    positive_duration,
    show,
)
from deployer.settings import (
    MAX_LOAD_RPS,
    AnalysisSettings,
    Config,
    Mode,
    RevisionSettings,
    RunContext,
    SecretRef,
    SmokeAuth,
    SmokeSettings,
    StatusRanges,
    UpdateStrategy,
)
from deployer.traffic import BASELINE_TAG

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    input: str
    message: str

    def __str__(self) -> str:
        return f"input '{self.input}': {self.message}"


class ConfigError(DeployerError):
    """Every problem found in the inputs, reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


# --------------------------------------------------------------------------------------------------
# Defaults: action.yml declares exactly these (a test compares them), "" meaning "no default".

DEFAULTS: dict[str, str] = {
    "service": "",
    "region": "us-central1",
    "project_id": "",
    "mode": "deploy",
    "image": "",
    "tag": "canary",
    "suffix": "",
    "steps": "10,50,100",
    "step_interval": "60s",
    "wait_timeout": "10m",
    "smoke_path": "/",
    "smoke_status": "200-399",
    "smoke_body": "",
    "smoke_timeout": "60s",
    "smoke_auth": "auto",
    "dry_run": "false",
    "env_vars": "",
    "env_vars_update_strategy": "merge",
    "secrets": "",
    "secrets_update_strategy": "merge",
    "labels": "",
    "skip_default_labels": "false",
    "cpu": "",
    "memory": "",
    "concurrency": "",
    "min_instances": "",
    "max_instances": "",
    "port": "",
    "request_timeout": "",
    "service_account": "",
    "ingress": "",
    "cpu_throttling": "",
    "execution_environment": "",
    "vpc_connector": "",
    "vpc_egress": "",
    "allow_unauthenticated": "",
    "metadata": "",
    "rollback_to": "",
    "api_endpoint": "",
    "monitoring_endpoint": "",
    "github_token": "",
    "environment": "",
    "takeover": "false",
    "container": "",
    "production_environment": "",
    "max_error_rate": "",
    "max_latency_p99": "",
    "max_latency_p95": "",
    "min_requests": "0",
    "on_inconclusive": "",
    "check_command": "",
    "check_webhook": "",
    "failure_threshold": "1",
    "baseline": "none",
    "max_latency_increase": "",
    "max_error_rate_increase": "",
    "confidence": "95",
    "load_rps": "",
    **JOB_DEFAULTS,  # job, pre_job, post_job, post_job_failure, job_* (deployer.jobs.inputs)
}


PROJECT_ENV_VARS = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GCLOUD_PROJECT")

# --------------------------------------------------------------------------------------------------
# Reading inputs


class _Inputs:
    """The INPUT_* values and the problems found so far, so every problem is reported at once."""

    _EXPECTED = (ValueError, TypeError, OverflowError, RecursionError, re.error, yaml.YAMLError, UnicodeError)

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[Problem] = []

    def raw(self, name: str) -> str:
        """Missing or blank means the default, as for an input without `with:`."""
        value = self.env.get(f"INPUT_{name.upper()}", "").strip()
        return value or DEFAULTS[name]

    def get(self, name: str, parser: Callable[[str], T], fallback: T) -> T:
        """Parse one input, recording its problems and returning fallback when it is bad."""
        try:
            return parser(self.raw(name))
        except Invalid as exc:
            for message in exc.messages:
                self.add(name, message)
        except self._EXPECTED as exc:  # a parser bug must still not echo the value
            self.add(
                name, f"could not be parsed ({type(exc).__name__}); see the action's README for the format"
            )
        return fallback

    def add(self, name: str, message: str) -> None:
        self.problems.append(Problem(name, message))


def _project(inputs: _Inputs, env: Mapping[str, str]) -> str | None:
    if inputs.raw("project_id"):
        return inputs.get("project_id", parse_project, None)
    for var in PROJECT_ENV_VARS:
        value = env.get(var, "").strip()
        if value:
            if PROJECT_ID.fullmatch(value) or PROJECT_NUMBER.fullmatch(value):
                return value
            inputs.add("project_id", f"is empty and {var}={show(value)} is not a project ID; set project_id")
            return None
    return None


def _smoke(inputs: _Inputs) -> SmokeSettings:
    return SmokeSettings(
        path=inputs.get("smoke_path", parse_smoke_path, "/"),
        statuses=inputs.get("smoke_status", parse_status_ranges, StatusRanges(((200, 399),))),
        body=inputs.get("smoke_body", optional(parse_regex), None),
        timeout=inputs.get("smoke_timeout", positive_duration, 60.0),
        auth=SmokeAuth(inputs.get("smoke_auth", choice([a.value for a in SmokeAuth]), "auto")),
    )


def _revision(inputs: _Inputs) -> RevisionSettings:
    settings = RevisionSettings(
        cpu=inputs.get("cpu", optional(parse_cpu), None),
        memory=inputs.get("memory", optional(parse_memory), None),
        concurrency=inputs.get("concurrency", optional(int_in(1, 1000)), None),
        min_instances=inputs.get("min_instances", optional(int_in(0)), None),
        max_instances=inputs.get("max_instances", optional(int_in(1)), None),
        port=inputs.get("port", optional(int_in(1, 65535)), None),
        request_timeout=inputs.get("request_timeout", optional(parse_request_timeout), None),
        service_account=inputs.get("service_account", optional(parse_service_account), None),
        ingress=inputs.get(
            "ingress", optional(choice(["all", "internal", "internal-and-cloud-load-balancing"])), None
        ),
        cpu_throttling=inputs.get("cpu_throttling", optional(parse_bool), None),
        execution_environment=inputs.get("execution_environment", optional(choice(["gen1", "gen2"])), None),
        vpc_connector=inputs.get("vpc_connector", optional(parse_vpc_connector), None),
        vpc_egress=inputs.get(
            "vpc_egress",
            optional(choice(["all-traffic", "private-ranges-only"], {"all": "all-traffic"})),
            None,
        ),
    )
    low, high = settings.min_instances, settings.max_instances
    if low is not None and high is not None and high < low:
        inputs.add("max_instances", f"{high} is below min_instances {low}; use a number of at least {low}")
    return settings


def _analysis(inputs: _Inputs) -> AnalysisSettings:
    settings = _analysis_settings(inputs)
    if settings.comparisons and settings.baseline == "none":
        name = (
            "max_latency_increase" if settings.max_latency_increase is not None else "max_error_rate_increase"
        )
        inputs.add(name, "compares with a baseline: set 'baseline' to revision or stable")
    if settings.baseline != "none" and not settings.comparisons:
        inputs.add(
            "baseline",
            f"{settings.baseline} compares nothing: set max_latency_increase or max_error_rate_increase too",
        )
    if settings.baseline == "revision" and inputs.raw("tag") == BASELINE_TAG:
        inputs.add(
            "tag", f"{BASELINE_TAG!r} is the baseline revision's tag with baseline: revision; use another"
        )
    return settings


def _analysis_settings(inputs: _Inputs) -> AnalysisSettings:
    return AnalysisSettings(
        max_error_rate=inputs.get("max_error_rate", optional(float_in(0, 100, " (percent)")), None),
        max_latency_p99=inputs.get(
            "max_latency_p99", optional(float_in(0, None, " (ms)", exclusive_low=True)), None
        ),
        max_latency_p95=inputs.get(
            "max_latency_p95", optional(float_in(0, None, " (ms)", exclusive_low=True)), None
        ),
        min_requests=inputs.get("min_requests", int_in(0), 0),
        on_inconclusive=inputs.get("on_inconclusive", optional(choice(["pass", "fail", "extend"])), None)
        or "",
        check_command=inputs.raw("check_command") or None,
        check_webhook=inputs.get("check_webhook", optional(parse_webhook), None),
        failure_threshold=inputs.get("failure_threshold", int_in(1), 1),
        baseline=inputs.get("baseline", choice(["none", "revision", "stable"]), "none"),
        max_latency_increase=inputs.get(
            "max_latency_increase", optional(float_in(0, None, " (percent)")), None
        ),
        max_error_rate_increase=inputs.get(
            "max_error_rate_increase", optional(float_in(0, 100, " (percentage points)")), None
        ),
        confidence=inputs.get("confidence", float_in(50, 99.9, " (percent)"), 95.0),
        load_rps=inputs.get(
            "load_rps",
            optional(float_in(0, MAX_LOAD_RPS, " (requests per second)", exclusive_low=True)),
            None,
        ),
    )


def _pairs_inputs(
    inputs: _Inputs, project: str | None
) -> tuple[dict[str, str], dict[str, SecretRef], dict[str, str]]:
    env_vars: dict[str, str] = inputs.get("env_vars", parse_env_vars, {})
    secrets = _local_secrets(inputs, "secrets", inputs.get("secrets", parse_secrets, {}), project)
    for name in sorted(env_vars.keys() & secrets.keys()):
        inputs.add("secrets", f"{show(name)} is also set in env_vars; give each variable in one of the two")
    labels: dict[str, str] = inputs.get("labels", parse_labels, {})
    return env_vars, secrets, labels


def _local_secrets(
    inputs: _Inputs, name: str, secrets: dict[str, SecretRef], project: str | None
) -> dict[str, SecretRef]:
    """Secrets of the run's own project by name; another project's only by number (Cloud Run's alias)."""
    found, problems = secretrefs.local(secrets, project)
    for problem in problems:
        inputs.add(name, problem)
    return found


def _names(inputs: _Inputs, service: str) -> tuple[str, str | None, str | None]:
    """tag, suffix and rollback_to: all checked against the service name."""
    tag = inputs.get("tag", parse_tag, "canary")
    if service and inputs.raw("tag") == tag:
        problem = check_tag_length(tag, service)
        if problem:
            inputs.add("tag", problem)
    suffix = inputs.get("suffix", optional(lambda s: parse_suffix(s, service or "x")), None)
    rollback_to = inputs.get("rollback_to", optional(lambda s: _revision_name(s, service)), None)
    return tag, suffix, rollback_to


def _revision_name(text: str, service: str) -> str:
    problem = check_revision_name(text, service) if service else None
    if problem:
        raise Invalid(problem)
    return text


def _image(inputs: _Inputs, mode: Mode) -> str | None:
    """Required in mode deploy; in mode job the default of ``job_image``; unused otherwise."""
    if mode is Mode.DEPLOY or (mode is Mode.JOB and inputs.raw("image")):
        return inputs.get("image", parse_image, None)
    return None


def load(env: Mapping[str, str]) -> tuple[Config, RunContext]:
    """Parse and validate every input; raise ConfigError listing all problems."""
    inputs = _Inputs(env)
    mode = Mode(inputs.get("mode", choice([m.value for m in Mode]), "deploy"))
    service = (
        "" if mode is Mode.JOB and not inputs.raw("service") else inputs.get("service", parse_service, "")
    )
    job, pre_job, post_job, post_job_failure = read_jobs(inputs, mode)
    tag, suffix, rollback_to = _names(inputs, service)
    project_id = _project(inputs, env)
    env_vars, secrets, labels = _pairs_inputs(inputs, project_id)
    jobs = read_job_settings(inputs)
    jobs = replace(jobs, secrets=_local_secrets(inputs, "job_secrets", dict(jobs.secrets), project_id))
    strategy = choice([s.value for s in UpdateStrategy])
    config = Config(
        service=service,
        region=inputs.get("region", parse_region, "us-central1"),
        project_id=project_id,
        mode=mode,
        image=_image(inputs, mode),
        tag=tag,
        suffix=suffix,
        steps=inputs.get("steps", parse_steps, (10, 50, 100)),
        step_interval=inputs.get("step_interval", parse_duration, 60.0),
        wait_timeout=inputs.get("wait_timeout", positive_duration, 600.0),
        smoke=_smoke(inputs),
        dry_run=inputs.get("dry_run", parse_bool, False),
        env_vars=env_vars,
        env_vars_update_strategy=UpdateStrategy(inputs.get("env_vars_update_strategy", strategy, "merge")),
        secrets=secrets,
        secrets_update_strategy=UpdateStrategy(inputs.get("secrets_update_strategy", strategy, "merge")),
        labels=labels,
        skip_default_labels=inputs.get("skip_default_labels", parse_bool, False),
        revision=_revision(inputs),
        allow_unauthenticated=inputs.get("allow_unauthenticated", optional(parse_bool), None),
        metadata=inputs.get("metadata", optional(lambda s: parse_metadata(s, service)), None),
        rollback_to=rollback_to,
        api_endpoint=inputs.get("api_endpoint", optional(parse_endpoint), None),
        monitoring_endpoint=inputs.get("monitoring_endpoint", optional(parse_endpoint), None),
        github_token=inputs.raw("github_token") or None,
        environment=inputs.get("environment", optional(free_text(255)), None),
        takeover=inputs.get("takeover", parse_bool, False),
        analysis=_analysis(inputs),
        container=inputs.get("container", optional(parse_container), None),
        production_environment=inputs.get("production_environment", optional(parse_bool), None),
        job=job,
        pre_job=pre_job,
        post_job=post_job,
        post_job_failure=post_job_failure,
        jobs=jobs,
    )
    if inputs.problems:
        raise ConfigError(inputs.problems)
    return config, load_context(env)
