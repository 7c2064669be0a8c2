"""Reading the action's inputs (``INPUT_*``) into a ``Config``.

Every input is parsed here, once, with its row of ``deployer.input_table``; then the rules that tie
inputs together run, so that bad input is reported in full (every problem, each naming its input)
before any API call is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import yaml

from deployer import secretrefs
from deployer.context import load_context
from deployer.errors import DeployerError
from deployer.input_table import DEFAULTS, INPUTS, PARSE_ORDER, InputSpec
from deployer.jobs.inputs import check_job_settings, check_jobs
from deployer.parsers import Invalid, show
from deployer.parsers_names import PROJECT_ID, PROJECT_NUMBER, check_tag_length
from deployer.settings import Config, Mode, RunContext, SecretRef
from deployer.traffic import BASELINE_TAG

__all__ = ["DEFAULTS", "ConfigError", "Problem", "load"]

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

    def given(self, name: str) -> bool:
        """Set to something other than its default."""
        return self.raw(name) != DEFAULTS[name]

    def parse(self, spec: InputSpec, values: Mapping[str, Any]) -> Any:
        """One row of the table: its value, or the value a bad input stands for."""
        return self.get(spec.name, lambda text: spec.parse(text, values), spec.bad_value())


# Job settings that only mean something when a job runs (job_wait_timeout has a default of its own).
JOB_SETTING_INPUTS = tuple(
    spec.name for spec in INPUTS if spec.field.startswith("jobs.") and spec.name != "job_wait_timeout"
)


def _config(values: Mapping[str, Any]) -> Config:
    """The parsed values, each put where its row's ``field`` says (``smoke.path``: Config.smoke.path)."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for spec in INPUTS:
        head, _, rest = spec.field.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = values[spec.name]
        else:
            top[head] = values[spec.name]
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Config)}
    for head, settings in nested.items():
        top[head] = replace(defaults[head], **settings)
    return Config(**top)


def _project(inputs: _Inputs, env: Mapping[str, str]) -> str | None:
    """project_id not given: the first of the project variables a Google tool would read."""
    for var in PROJECT_ENV_VARS:
        value = env.get(var, "").strip()
        if value:
            if PROJECT_ID.fullmatch(value) or PROJECT_NUMBER.fullmatch(value):
                return value
            inputs.add("project_id", f"is empty and {var}={show(value)} is not a project ID; set project_id")
            return None
    return None


def _check_tag(inputs: _Inputs, config: Config) -> None:
    if config.service and inputs.raw("tag") == config.tag:
        problem = check_tag_length(config.tag, config.service)
        if problem:
            inputs.add("tag", problem)


def _check_revision(inputs: _Inputs, config: Config) -> None:
    low, high = config.revision.min_instances, config.revision.max_instances
    if low is not None and high is not None and high < low:
        inputs.add("max_instances", f"{high} is below min_instances {low}; use a number of at least {low}")


def _check_analysis(inputs: _Inputs, config: Config) -> None:
    settings = config.analysis
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


def _local_secrets(
    inputs: _Inputs, name: str, secrets: Mapping[str, SecretRef], project: str | None
) -> dict[str, SecretRef]:
    """Secrets of the run's own project by name; another project's only by number (Cloud Run's alias)."""
    found, problems = secretrefs.local(dict(secrets), project)
    for problem in problems:
        inputs.add(name, problem)
    return found


def _checked(inputs: _Inputs, config: Config, env: Mapping[str, str]) -> Config:
    """The rules that tie inputs together, after each was parsed on its own."""
    check_jobs(inputs, config.mode, config.pre_job, config.post_job, JOB_SETTING_INPUTS)
    if config.mode is Mode.JOB:
        config = replace(config, pre_job=None, post_job=None)
    _check_tag(inputs, config)
    project = config.project_id if inputs.raw("project_id") else _project(inputs, env)
    secrets = _local_secrets(inputs, "secrets", config.secrets, project)
    for name in sorted(config.env_vars.keys() & secrets.keys()):
        inputs.add("secrets", f"{show(name)} is also set in env_vars; give each variable in one of the two")
    check_job_settings(inputs, config.jobs)
    jobs = replace(config.jobs, secrets=_local_secrets(inputs, "job_secrets", config.jobs.secrets, project))
    _check_revision(inputs, config)
    _check_analysis(inputs, config)
    return replace(config, project_id=project, secrets=secrets, jobs=jobs)


def load(env: Mapping[str, str]) -> tuple[Config, RunContext]:
    """Parse and validate every input; raise ConfigError listing all problems."""
    inputs = _Inputs(env)
    values: dict[str, Any] = {}
    for spec in PARSE_ORDER:
        values[spec.name] = inputs.parse(spec, values)
    config = _checked(inputs, _config(values), env)
    if inputs.problems:
        raise ConfigError(inputs.problems)
    return config, load_context(env)
