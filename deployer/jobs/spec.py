"""Cloud Run Job objects as data: the body we write from the ``job_*`` settings, the per-execution
overrides, and what an execution's status says. No I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from deployer import secretrefs
from deployer.errors import ContainerError as ContainerError
from deployer.knative import Obj, condition
from deployer.settings import JobSettings

API_VERSION = "run.googleapis.com/v1"
SERVER_ANNOTATIONS = ("run.googleapis.com/creator", "run.googleapis.com/lastModifier")
# Every execution the action starts carries this env var (``RunJobRequest.overrides``: an execution's
# own env, the job keeps its own), valued ``<rollout token>/<when>``: how a later step finds the
# executions of a rollout, even one whose ``:run`` answer never arrived. Overrides can set nothing
# else that shows on the execution (no labels, no annotations).
MARKER_ENV = "RUN_CANARY_ROLLOUT"
JOB_LABEL = "run.googleapis.com/job"  # on every execution: the job it belongs to
# Sub-conditions of an execution that, once False, mean it cannot succeed (gcloud's
# ExecutionConditionPoller fails on the first False terminal sub-condition; ``stages.py``:
# ResourcesAvailable, then Started, then Completed).
BLOCKING_CONDITIONS = ("ResourcesAvailable", "Started")


def job_container(containers: list[Obj], name: str | None) -> int:
    """Index of the container the ``job_*`` inputs apply to, as gcloud picks it for a job: the one named
    (``job_container``), else the only one; among several without a name gcloud refuses ("the target job
    has multiple containers, a container name must be specified via --container flag"), and so do we.
    """
    names = ", ".join(repr(c.get("name") or "(unnamed)") for c in containers)
    if name:
        for index, container in enumerate(containers):
            if container.get("name") == name:
                return index
        raise ContainerError(f"input job_container: the job has no container named {name!r} (it has {names})")
    if len(containers) <= 1:
        return 0
    raise ContainerError(
        f"the job has {len(containers)} containers ({names}); name the one to run and update with the input "
        "job_container"
    )


def job_body(
    current: Obj | None,
    name: str,
    settings: JobSettings,
    image: str,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    namespace: str = "",
) -> Obj:
    """The Job to PUT (or POST): the current one with our settings on top; unset settings keep theirs.

    Env vars merge by name with the job's current ones (ours win), as ``env_vars`` does for services.
    A new job names its ``namespace`` (the project), as gcloud's ``jobs create`` always does.
    """
    body: Obj = {"apiVersion": API_VERSION, "kind": "Job", "metadata": {"name": name}, "spec": {}}
    if namespace:
        body["metadata"]["namespace"] = namespace
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
    container = containers[job_container(containers, settings.container)]
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


def overrides(settings: JobSettings, container: str = "", marker: str = "") -> Obj | None:
    """``RunJobRequest.overrides`` for this execution only: args and env of the job's container (named
    when it has a name: with several, an override must say which), and our marker."""
    override: Obj = {"name": container} if container else {}
    if settings.args_override is not None:
        if settings.args_override:
            override["args"] = list(settings.args_override)
        else:
            override["clearArgs"] = True
    env = [{"name": k, "value": v} for k, v in settings.env_override.items() if k != MARKER_ENV]
    if marker:
        env.append({"name": MARKER_ENV, "value": marker})
    if env:
        override["env"] = env
    return {"containerOverrides": [override]} if set(override) - {"name"} else None


def execution_marker(token: str, when: str) -> str:
    """The marker of one execution a rollout starts: its token and the phase (pre, post, job)."""
    return f"{token}/{when}"


def marker_of(execution: Obj) -> str:
    """The marker an execution carries (in any of its containers' env), or ""."""
    task = (((execution.get("spec") or {}).get("template") or {}).get("spec")) or {}
    for container in task.get("containers") or []:
        for var in container.get("env") or []:
            if var.get("name") == MARKER_ENV and isinstance(var.get("value"), str):
                return str(var["value"])
    return ""


def is_marked(execution: Obj, marker: str) -> bool:
    """Whether the execution was started under ``marker``: a whole rollout (its token) or one launch
    (``token/when``)."""
    found = marker_of(execution)
    return bool(marker) and (found == marker or found.startswith(marker + "/"))


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


def blocked(execution: Obj) -> str:
    """Why an execution that is not finished yet cannot succeed: the first of ResourcesAvailable and
    Started that is False (a Warning or Info severity does not count, as in gcloud), as
    "<type>: <reason>: <message>"; "" while nothing is."""
    conditions = {c.get("type"): c for c in (execution.get("status") or {}).get("conditions") or []}
    for kind in BLOCKING_CONDITIONS:
        found = conditions.get(kind) or {}
        if found.get("status") == "False" and found.get("severity", "") in ("", "Error"):
            return ": ".join([kind] + [str(found[k]) for k in ("reason", "message") if found.get(k)])
    return ""


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
