"""The job inputs (``job``, ``pre_job``, ``post_job``, ``job_*``): their grammars and the rules that tie
them to the mode, checked with every other input before anything is written.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Protocol, TypeVar

import yaml

from deployer.jobs.spec import MARKER_ENV
from deployer.parsers import (
    Invalid,
    choice,
    int_in,
    optional,
    parse_container,
    parse_duration,
    parse_env_vars,
    parse_image,
    parse_secrets,
    parse_service_account,
    positive_duration,
    show,
)
from deployer.settings import JobFailurePolicy, JobSettings, Mode, SecretRef

T = TypeVar("T")

# Defaults as action.yml declares them ("" meaning none).
JOB_DEFAULTS: dict[str, str] = {
    "job": "",
    "pre_job": "",
    "post_job": "",
    "post_job_failure": "rollback",
    "job_image": "",
    "job_container": "",
    "job_command": "",
    "job_args": "",
    "job_env_vars": "",
    "job_secrets": "",
    "job_tasks": "",
    "job_parallelism": "",
    "job_task_timeout": "",
    "job_max_retries": "",
    "job_service_account": "",
    "job_args_override": "",
    "job_env_override": "",
    "job_wait_timeout": "1h",
}
SETTING_INPUTS = tuple(
    name for name in JOB_DEFAULTS if name.startswith("job_") and name != "job_wait_timeout"
)

_JOB_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_TASKS = 10_000
MAX_RETRIES = 10
MAX_TASK_TIMEOUT = 168 * 3600  # Cloud Run jobs: up to 168 hours per task
MAX_ARGS = 1000


class InputReader(Protocol):
    """What ``deployer.inputs`` gives us: raw values, parsing with problems recorded, more problems."""

    def raw(self, name: str) -> str: ...

    def get(self, name: str, parser: Callable[[str], T], fallback: T) -> T: ...

    def add(self, name: str, message: str) -> None: ...


# Alike in shape to the name parsers in deployer.parsers (match a grammar or raise Invalid with a
# hint), deliberately: each names its own input and its own rule.
def parse_job_name(text: str) -> str:
    """Job names follow the service name rule: a DNS label of at most 63 characters."""
    if len(text) > 63 or not _JOB_NAME.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not a valid job name; use at most 63 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return text


def parse_argv(text: str) -> tuple[str, ...]:
    """A command or argument list: a YAML list (``["python", "migrate.py"]``) or shell words."""
    if text.lstrip().startswith(("[", "- ")):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise Invalid('is not a valid YAML list; write e.g. ["python", "migrate.py", "--all"]') from exc
        if not isinstance(data, list) or not all(isinstance(a, str | int | float) for a in data):
            raise Invalid('must be a list of strings, e.g. ["python", "migrate.py", "--all"]')
        words = [str(a) for a in data]
    else:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise Invalid(f"cannot be split into words ({exc}); quote it as a YAML list instead") from exc
    if len(words) > MAX_ARGS:
        raise Invalid(f"has {len(words)} words; at most {MAX_ARGS} are allowed")
    if any("\x00" in w for w in words):
        raise Invalid("contains a NUL character")
    return tuple(words)


def parse_task_timeout(text: str) -> int:
    seconds = parse_duration(text)
    if not 1 <= seconds <= MAX_TASK_TIMEOUT or not seconds.is_integer():
        raise Invalid(f"{show(text)} is out of range; use whole seconds from 1s to 168h, e.g. 10m")
    return int(seconds)


def _env_and_secrets(inputs: InputReader) -> tuple[dict[str, str], dict[str, SecretRef], dict[str, str]]:
    env_vars: dict[str, str] = inputs.get("job_env_vars", parse_env_vars, {})
    secrets: dict[str, SecretRef] = inputs.get("job_secrets", parse_secrets, {})
    for name in sorted(env_vars.keys() & secrets.keys()):
        inputs.add(
            "job_secrets", f"{show(name)} is also set in job_env_vars; give each variable in one of the two"
        )
    override: dict[str, str] = inputs.get("job_env_override", parse_env_vars, {})
    for name, given in (("job_env_vars", env_vars), ("job_env_override", override), ("job_secrets", secrets)):
        if MARKER_ENV in given:
            inputs.add(name, f"{MARKER_ENV} is reserved: the action marks each execution it starts with it")
    for name in sorted(override.keys() & secrets.keys()):
        inputs.add(
            "job_env_override", f"{show(name)} is a secret of the job (job_secrets); it cannot be overridden"
        )
    return env_vars, secrets, override


def read_job_settings(inputs: InputReader) -> JobSettings:
    """The ``job_*`` inputs, each parsed and named in its problems."""
    env_vars, secrets, env_override = _env_and_secrets(inputs)
    settings = JobSettings(
        image=inputs.get("job_image", optional(parse_image), None),
        container=inputs.get("job_container", optional(parse_container), None),
        command=inputs.get("job_command", optional(parse_argv), None),
        args=inputs.get("job_args", optional(parse_argv), None),
        env_vars=env_vars,
        secrets=secrets,
        tasks=inputs.get("job_tasks", optional(int_in(1, MAX_TASKS)), None),
        parallelism=inputs.get("job_parallelism", optional(int_in(0, MAX_TASKS)), None),
        task_timeout=inputs.get("job_task_timeout", optional(parse_task_timeout), None),
        max_retries=inputs.get("job_max_retries", optional(int_in(0, MAX_RETRIES)), None),
        service_account=inputs.get("job_service_account", optional(parse_service_account), None),
        args_override=inputs.get("job_args_override", optional(parse_argv), None),
        env_override=env_override,
        wait_timeout=inputs.get("job_wait_timeout", positive_duration, 3600.0),
    )
    tasks, parallelism = settings.tasks, settings.parallelism
    if tasks is not None and parallelism is not None and parallelism > tasks:
        inputs.add("job_parallelism", f"{parallelism} is above job_tasks {tasks}; use at most {tasks}")
    return settings


def read_jobs(inputs: InputReader, mode: Mode) -> tuple[str | None, str | None, str | None, JobFailurePolicy]:
    """``job``, ``pre_job``, ``post_job`` and ``post_job_failure``, checked against the mode."""
    job = inputs.get("job", optional(parse_job_name), None)
    pre = inputs.get("pre_job", optional(parse_job_name), None)
    post = inputs.get("post_job", optional(parse_job_name), None)
    policy = JobFailurePolicy(
        inputs.get("post_job_failure", choice([p.value for p in JobFailurePolicy]), "rollback")
    )
    if mode is Mode.JOB:
        if not inputs.raw("job"):
            inputs.add("job", "is required in mode job; give the Cloud Run job name, e.g. migrate")
        for name in ("pre_job", "post_job"):
            if inputs.raw(name):
                inputs.add(name, "is for a service rollout; in mode job the job to run is 'job'")
        if not (inputs.raw("job_image") or inputs.raw("image")):
            inputs.add(
                "job_image",
                "is required in mode job (or give 'image'); e.g. us-docker.pkg.dev/p/r/app@sha256:...",
            )
        return job, None, None, policy
    if inputs.raw("job"):
        inputs.add("job", f"is only used in mode job; with mode {mode} use pre_job or post_job")
    if pre and mode is not Mode.DEPLOY:
        inputs.add("pre_job", f"runs before traffic moves in mode deploy; it has no place in mode {mode}")
    if post and mode is Mode.ROLLBACK:
        inputs.add("post_job", "runs after a promotion; it has no place in mode rollback")
    if not (pre or post):
        for name in SETTING_INPUTS:
            if inputs.raw(name) and inputs.raw(name) != JOB_DEFAULTS[name]:
                inputs.add(name, "is set but no job runs; set pre_job, post_job, or mode job")
    return job, pre, post, policy
