"""The job inputs (``job``, ``pre_job``, ``post_job``, ``job_*``): their grammars and the rules that tie
them to the mode and to each other, checked with every other input before anything is written.

The inputs themselves are rows of ``deployer.input_table``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import Protocol

import yaml

from deployer.jobs.spec import MARKER_ENV
from deployer.parsers import Invalid, parse_duration, show
from deployer.settings import JobSettings, Mode

_JOB_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_TASKS = 10_000
MAX_RETRIES = 10
MAX_TASK_TIMEOUT = 168 * 3600  # Cloud Run jobs: up to 168 hours per task
MAX_ARGS = 1000


class InputReader(Protocol):
    """What ``deployer.inputs`` gives us: raw values, more problems, whether an input was given."""

    def raw(self, name: str) -> str: ...

    def add(self, name: str, message: str) -> None: ...

    def given(self, name: str) -> bool: ...


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


def check_job_settings(inputs: InputReader, jobs: JobSettings) -> None:
    """The ``job_*`` inputs against each other: a variable in one place only, the marker untouched."""
    env_vars, secrets, override = jobs.env_vars, jobs.secrets, jobs.env_override
    for name in sorted(env_vars.keys() & secrets.keys()):
        inputs.add(
            "job_secrets", f"{show(name)} is also set in job_env_vars; give each variable in one of the two"
        )
    for name, given in (("job_env_vars", env_vars), ("job_env_override", override), ("job_secrets", secrets)):
        if MARKER_ENV in given:
            inputs.add(name, f"{MARKER_ENV} is reserved: the action marks each execution it starts with it")
    for name in sorted(override.keys() & secrets.keys()):
        inputs.add(
            "job_env_override", f"{show(name)} is a secret of the job (job_secrets); it cannot be overridden"
        )
    tasks, parallelism = jobs.tasks, jobs.parallelism
    if tasks is not None and parallelism is not None and parallelism > tasks:
        inputs.add("job_parallelism", f"{parallelism} is above job_tasks {tasks}; use at most {tasks}")


def check_jobs(
    inputs: InputReader, mode: Mode, pre: str | None, post: str | None, settings: Iterable[str]
) -> None:
    """``job``, ``pre_job`` and ``post_job`` against the mode; ``settings`` (the ``job_*`` inputs
    that configure a job) only when a job runs."""
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
        return
    if inputs.raw("job"):
        inputs.add("job", f"is only used in mode job; with mode {mode} use pre_job or post_job")
    if pre and mode is not Mode.DEPLOY:
        inputs.add("pre_job", f"runs before traffic moves in mode deploy; it has no place in mode {mode}")
    if post and mode is Mode.ROLLBACK:
        inputs.add("post_job", "runs after a promotion; it has no place in mode rollback")
    if not (pre or post):
        for name in settings:
            if inputs.given(name):
                inputs.add(name, "is set but no job runs; set pre_job, post_job, or mode job")
