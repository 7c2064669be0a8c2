"""Jobs, executions and tasks as the emulator stores them: limits, validation, Cloud Run's defaults and
overrides, task env and the status values gcloud reads."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cloudrun_emulator import launcher, secretrefs
from cloudrun_emulator.conditions import StoredCondition
from cloudrun_emulator.errors import invalid
from cloudrun_emulator.projects import DEFAULT_REGION, same_project, scope_project
from cloudrun_emulator.schema import DNS1035, MAX_NAME, Violation, _check_env
from cloudrun_emulator.services import PRINCIPAL
from cloudrun_emulator.wire import now_iso

API_VERSION = "run.googleapis.com/v1"


PREFIX = "/apis/run.googleapis.com/v1/namespaces"


JOB_LABEL = "run.googleapis.com/job"


EXECUTION_LABEL = "run.googleapis.com/execution"


TASK_INDEX_LABEL = "run.googleapis.com/taskIndex"


# A task's state as a label, what ``gcloud run jobs executions tasks list --failed`` (and --running,
# --succeeded, ...) select on (api_lib/run/task.py STATE_LABEL; command_lib/run/flags.py).
RUNNING_STATE_LABEL = "run.googleapis.com/runningState"


MAX_CONTAINERS = 10


CREATOR, LAST_MODIFIER = "run.googleapis.com/creator", "run.googleapis.com/lastModifier"


DEFAULT_MAX_RETRIES = 3


DEFAULT_TIMEOUT = "600"


MAX_TASKS = 10_000


MAX_RETRIES = 10


MAX_TIMEOUT = 7 * 24 * 3600  # jobs may run up to 168 hours


@dataclass
class Job:
    namespace: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]
    seq: int
    generation: int = 1
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)
    resource_version: str = ""
    ready: StoredCondition = field(default_factory=lambda: StoredCondition("Ready"))
    execution_count: int = 0
    latest: str | None = None  # name of the latest execution
    region: str = DEFAULT_REGION


@dataclass
class Task:
    """One task of an execution: its attempts and how the last one ended."""

    index: int
    state: str = "pending"  # pending | running | succeeded | failed | cancelled
    attempts: int = 0
    exit_code: int | None = None
    term_signal: int | None = None
    message: str = ""
    started: str | None = None
    completed: str | None = None
    process: launcher.Process | None = None
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Execution:
    namespace: str
    name: str
    job: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]  # ExecutionSpec with the run's overrides applied
    seq: int
    tasks: list[Task]
    log_dir: Path
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)
    started: str | None = None
    completed: str | None = None
    resource_version: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    blocked: tuple[str, str] | None = None  # (reason, message) when its resources cannot be had
    conditions: dict[str, StoredCondition] = field(
        default_factory=lambda: {
            t: StoredCondition(t) for t in ("Completed", "ResourcesAvailable", "Started")
        }
    )

    @property
    def done(self) -> bool:
        return self.conditions["Completed"].status != "Unknown"

    def count(self, state: str) -> int:
        return sum(1 for t in self.tasks if t.state == state)


def check_job(job: dict[str, Any], name: str) -> list[Violation]:
    """What parses but Cloud Run still refuses in a Job body."""
    problems = _check_name(name)
    spec = job.get("spec", {}).get("template", {}).get("spec", {})
    problems += _check_execution_spec(spec, "spec.template.spec")
    annotations = job.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
    task, where = spec.get("template", {}).get("spec", {}), "spec.template.spec.template.spec"
    found = secretrefs.check(annotations, task, "spec.template.metadata", where)
    return problems + [Violation(field, text) for field, text in found]


def _check_name(name: str) -> list[Violation]:
    if not name:
        return [Violation("metadata.name", "metadata.name: name is required")]
    if len(name) > MAX_NAME or not DNS1035.match(name):
        text = (
            f"metadata.name: Invalid job name '{name}': must use only lowercase alphanumeric characters "
            "and dashes, begin with a letter, not end with a dash, and be at most 63 characters."
        )
        return [Violation("metadata.name", text)]
    return []


def _check_execution_spec(spec: dict[str, Any], where: str) -> list[Violation]:
    """Task count, parallelism, retries, timeout and the one container."""
    problems = []
    tasks = spec.get("taskCount")
    if tasks is not None and not 1 <= tasks <= MAX_TASKS:
        problems.append(_range(f"{where}.taskCount", tasks, 1, MAX_TASKS))
    parallelism = spec.get("parallelism")
    if parallelism is not None and parallelism < 0:
        problems.append(_range(f"{where}.parallelism", parallelism, 0, MAX_TASKS))
    task = spec.get("template", {}).get("spec", {})
    where = f"{where}.template.spec"
    retries = task.get("maxRetries")
    if retries is not None and not 0 <= retries <= MAX_RETRIES:
        problems.append(_range(f"{where}.maxRetries", retries, 0, MAX_RETRIES))
    timeout = task.get("timeoutSeconds")
    if timeout is not None and not 1 <= int(timeout) <= MAX_TIMEOUT:
        problems.append(_range(f"{where}.timeoutSeconds", int(timeout), 1, MAX_TIMEOUT))
    containers = task.get("containers", [])
    if not 1 <= len(containers) <= MAX_CONTAINERS:
        text = f"{where}.containers: 1 to {MAX_CONTAINERS} containers are required, got {len(containers)}"
        return [*problems, Violation(f"{where}.containers", text)]
    names: set[str] = set()
    for i, container in enumerate(containers):
        cwhere = f"{where}.containers[{i}]"
        if not container.get("image"):
            problems.append(Violation(f"{cwhere}.image", f"{cwhere}.image: image is required"))
        if container.get("ports"):
            text = f"{cwhere}.ports: ports are not supported for jobs"
            problems.append(Violation(f"{cwhere}.ports", text))
        name = container.get("name", "")
        if len(containers) > 1 and not name:
            text = f"{cwhere}.name: each container of a job with several containers needs a name"
            problems.append(Violation(f"{cwhere}.name", text))
        elif name in names:
            problems.append(Violation(f"{cwhere}.name", f"{cwhere}.name: duplicate container name '{name}'"))
        names.add(name)
        problems += _check_env(container.get("env", []), f"{cwhere}.env")
    return problems


def _range(where: str, value: int, low: int, high: int) -> Violation:
    return Violation(where, f"{where}: expected {low} <= {value} <= {high}")


def apply_overrides(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The execution spec of one run: the job's, with ``RunJobRequest.overrides`` on top."""
    result = copy.deepcopy(spec)
    problems = []
    if overrides.get("taskCount") is not None:
        count = overrides["taskCount"]
        if not 1 <= count <= MAX_TASKS:
            problems.append(_range("overrides.taskCount", count, 1, MAX_TASKS))
        result["taskCount"] = count
    task = result.setdefault("template", {}).setdefault("spec", {})
    if overrides.get("timeoutSeconds") is not None:
        timeout = overrides["timeoutSeconds"]
        if not 1 <= timeout <= MAX_TIMEOUT:
            problems.append(_range("overrides.timeoutSeconds", timeout, 1, MAX_TIMEOUT))
        task["timeoutSeconds"] = str(timeout)
    containers = task.get("containers", [])
    for i, override in enumerate(overrides.get("containerOverrides", [])):
        where = f"overrides.containerOverrides[{i}]"
        name = override.get("name", "")
        target = next((c for c in containers if not name or c.get("name", "") == name), None)
        if target is None:
            text = f"{where}.name: no container named '{name}' in the job"
            problems.append(Violation(f"{where}.name", text))
            continue
        if override.get("clearArgs") and override.get("args"):
            text = f"{where}: args and clearArgs are mutually exclusive"
            problems.append(Violation(where, text))
        if override.get("clearArgs"):
            target.pop("args", None)
        elif override.get("args"):
            target["args"] = list(override["args"])
        problems += _check_env(override.get("env", []), f"{where}.env")
        env = {e["name"]: e for e in target.get("env", [])}
        env.update({e.get("name", ""): e for e in override.get("env", [])})
        if env:
            target["env"] = list(env.values())
    if problems:
        raise invalid(problems)
    return result


def default_job_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill what Cloud Run writes back: one task, 3 retries, a 10 minute timeout, resources."""
    result = copy.deepcopy(spec)
    execution = result.setdefault("template", {}).setdefault("spec", {})
    execution.setdefault("taskCount", 1)
    task = execution.setdefault("template", {}).setdefault("spec", {})
    task.setdefault("maxRetries", DEFAULT_MAX_RETRIES)
    task.setdefault("timeoutSeconds", DEFAULT_TIMEOUT)
    for container in task.get("containers", []):
        limits = container.setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("cpu", "1000m")
        limits.setdefault("memory", "512Mi")
    return result


def running_state(task: Task) -> str:
    """The task's ``run.googleapis.com/runningState`` label, as run.v1.json's ``tasks.list``
    documents it (Pending, Running, Succeeded, Failed, Cancelled, Abandoned: "The task has not yet
    started and never will because its parent execution has been aborted"); gcloud's
    ``tasks list --failed`` selects on it (``serverless_operations.ListTasks``)."""
    if task.state == "cancelled" and task.started is None:
        return "Abandoned"
    return task.state.capitalize()


def task_env(container: dict[str, Any], annotations: Mapping[str, str] | None = None) -> dict[str, str]:
    """The container's env for the process: literal values; secrets as ``secret:<name>:<key>``, an
    alias of the execution's ``run.googleapis.com/secrets`` annotation resolved to its path."""
    env = {}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        env[var["name"]] = (
            f"secret:{secretrefs.resolve(ref.get('name', ''), annotations or {})}:{ref.get('key', '')}"
            if ref
            else var.get("value", "")
        )
    return env


def completion_status(execution: Execution) -> str:
    """``ExecutionReference.completionStatus`` of the job's latest execution."""
    done = execution.conditions["Completed"]
    if done.status == "True":
        return "EXECUTION_SUCCEEDED"
    if done.status == "False":
        return "EXECUTION_CANCELLED" if done.reason == "Cancelled" else "EXECUTION_FAILED"
    return "EXECUTION_RUNNING" if execution.started else "EXECUTION_PENDING"


def log_uri(ns: str, job: str, execution: str) -> str:
    """The Cloud Logging URL Cloud Run gives an execution."""
    query = (
        f'resource.type="cloud_run_job"\nresource.labels.job_name="{job}"\n'
        f'labels."run.googleapis.com/execution_name"="{execution}"'
    )
    project, advanced = scope_project(ns), quote(query, safe="")
    return f"https://console.cloud.google.com/logs/viewer?project={project}&advancedFilter={advanced}"


def check_namespace(ns: str, meta: dict[str, Any]) -> list[Violation]:
    given = meta.get("namespace")
    if given and not same_project(given, ns):
        text = f"metadata.namespace: '{given}' does not match the project in the URL"
        return [Violation("metadata.namespace", text)]
    return []


def check_creator(meta: dict[str, Any], current: Job | None) -> list[Violation]:
    """run.googleapis.com/creator belongs to the server."""
    value = meta.get("annotations", {}).get(CREATOR)
    expected = current.annotations.get(CREATOR) if current else None
    if value is not None and value != (expected or PRINCIPAL):
        where = f"metadata.annotations[{CREATOR}]"
        return [
            Violation(where, f"{where}: annotation value is immutable (expected {expected!r}, got {value!r})")
        ]
    return []
