"""Cloud Run Job objects as data: the body we write from the ``job_*`` settings, the per-execution
overrides, and what an execution's status says. No I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from deployer import secretrefs
from deployer.knative import Obj, condition
from deployer.settings import JobSettings

API_VERSION = "run.googleapis.com/v1"
SERVER_ANNOTATIONS = ("run.googleapis.com/creator", "run.googleapis.com/lastModifier")


def job_body(
    current: Obj | None,
    name: str,
    settings: JobSettings,
    image: str,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> Obj:
    """The Job to PUT (or POST): the current one with our settings on top; unset settings keep theirs.

    Env vars merge by name with the job's current ones (ours win), as ``env_vars`` does for services.
    """
    body: Obj = {"apiVersion": API_VERSION, "kind": "Job", "metadata": {"name": name}, "spec": {}}
    if current is not None:
        meta = current.get("metadata") or {}
        body["metadata"] = {
            k: copy.deepcopy(v)
            for k, v in meta.items()
            if k in ("name", "namespace", "resourceVersion", "labels", "annotations")
        }
        body["spec"] = copy.deepcopy(current.get("spec") or {})
    meta = body["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    execution_template = body["spec"].setdefault("template", {})
    execution = execution_template.setdefault("spec", {})
    task = execution.setdefault("template", {}).setdefault("spec", {})
    containers = task.setdefault("containers", [{}])
    if not containers:
        containers.append({})
    container = containers[0]
    container["image"] = image
    if settings.command is not None:
        container["command"] = list(settings.command)
    if settings.args is not None:
        container["args"] = list(settings.args)
    exec_meta = execution_template.setdefault("metadata", {})
    aliases = secretrefs.parse_annotation((exec_meta.get("annotations") or {}).get(secretrefs.ANNOTATION))
    container_env = _merged_env(container.get("env") or [], settings, aliases)
    if container_env:
        container["env"] = container_env
    secretrefs.set_annotation(exec_meta, aliases, secretrefs.in_use(task))
    if not exec_meta:
        del execution_template["metadata"]
    _set(execution, "taskCount", settings.tasks)
    _set(execution, "parallelism", settings.parallelism)
    _set(task, "maxRetries", settings.max_retries)
    _set(task, "timeoutSeconds", None if settings.task_timeout is None else str(settings.task_timeout))
    _set(task, "serviceAccountName", settings.service_account)
    return body


def _set(target: Obj, key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def _merged_env(current: list[Obj], settings: JobSettings, aliases: dict[str, str]) -> list[Obj]:
    """Ours win by name; a secret of another project goes by an alias of the execution template."""
    ours: dict[str, Obj] = {k: {"name": k, "value": v} for k, v in settings.env_vars.items()}
    ours.update({k: secretrefs.env_entry(k, ref, aliases) for k, ref in settings.secrets.items()})
    kept = [e for e in current if e.get("name") not in ours]
    return kept + list(ours.values())


def same_spec(a: Obj | None, b: Obj | None) -> bool:
    """Whether a write would change what the job runs (Cloud Run's defaults aside: compare what we set)."""
    return a is not None and b is not None and _stable(a) == _stable(b)


def _stable(job: Obj) -> object:
    meta = job.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    return (job.get("spec"), meta.get("labels") or {}, annotations)


def overrides(settings: JobSettings) -> Obj | None:
    """``RunJobRequest.overrides`` for this execution only (args and env of the container)."""
    override: Obj = {}
    if settings.args_override is not None:
        if settings.args_override:
            override["args"] = list(settings.args_override)
        else:
            override["clearArgs"] = True
    if settings.env_override:
        override["env"] = [{"name": k, "value": v} for k, v in settings.env_override.items()]
    return {"containerOverrides": [override]} if override else None


@dataclass(frozen=True)
class Progress:
    """The task counts of an execution."""

    total: int
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    cancelled: int = 0
    retried: int = 0

    def describe(self) -> str:
        parts = [f"{self.succeeded}/{self.total} succeeded"]
        parts += [f"{n} {what}" for n, what in ((self.running, "running"), (self.failed, "failed")) if n]
        parts += [
            f"{n} {what}" for n, what in ((self.cancelled, "cancelled"), (self.retried, "retried")) if n
        ]
        return ", ".join(parts)


def progress(execution: Obj) -> Progress:
    status = execution.get("status") or {}
    total = int((execution.get("spec") or {}).get("taskCount") or 1)
    return Progress(
        total=total,
        succeeded=int(status.get("succeededCount") or 0),
        failed=int(status.get("failedCount") or 0),
        running=int(status.get("runningCount") or 0),
        cancelled=int(status.get("cancelledCount") or 0),
        retried=int(status.get("retriedCount") or 0),
    )


def outcome(execution: Obj) -> tuple[str, str]:
    """(result, message) from the terminal ``Completed`` condition; result "running" until it is set."""
    done = condition(execution, "Completed")
    if done.status == "True":
        return "succeeded", done.message or ""
    if done.status == "False":
        result = "cancelled" if done.reason == "Cancelled" else "failed"
        return result, f"{done.reason}: {done.message}".strip(": ") if done.reason else (done.message or "")
    return "running", done.message or ""


def exit_codes(tasks: list[Obj]) -> dict[int, int]:
    """Task index -> exit code of the tasks whose last attempt failed with one."""
    codes: dict[int, int] = {}
    for task in tasks:
        status = task.get("status") or {}
        code = (status.get("lastAttemptResult") or {}).get("exitCode")
        if code and condition(task, "Completed").status == "False":
            codes[int(status.get("index") or 0)] = int(code)
    return dict(sorted(codes.items()))


def console_url(project: str, region: str, execution: str) -> str:
    """The execution's page in the Cloud console (tasks, logs)."""
    return (
        f"https://console.cloud.google.com/run/jobs/executions/details/{quote(region, safe='')}/"
        f"{quote(execution, safe='')}/tasks?project={quote(project, safe='')}"
    )
