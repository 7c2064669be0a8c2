"""Cloud Run jobs in the emulator: the API's calls on jobs, executions and tasks under
``apis/run.googleapis.com/v1``, and their wire form.

What the objects are, their validation and defaults live in ``job_objects``; how an execution runs (local
processes, retries, timeouts, cancel) in ``job_lifecycle``.
"""

from __future__ import annotations

import copy
import random
import shutil
import string
import threading
import time
from typing import Any

from cloudrun_emulator.conditions import StoredCondition
from cloudrun_emulator.errors import ApiError, check_version, invalid, not_found, url_name_mismatch
from cloudrun_emulator.job_lifecycle import POLL_SECONDS, JobRunner
from cloudrun_emulator.job_objects import (
    API_VERSION,
    CREATOR,
    EXECUTION_LABEL,
    JOB_LABEL,
    LAST_MODIFIER,
    PREFIX,
    RUNNING_STATE_LABEL,
    TASK_INDEX_LABEL,
    Execution,
    Job,
    Task,
    apply_overrides,
    check_creator,
    check_job,
    check_namespace,
    completion_status,
    default_job_spec,
    log_uri,
    running_state,
)
from cloudrun_emulator.listing import page
from cloudrun_emulator.projects import DEFAULT_REGION, LOCATION_LABEL, in_scope, scope_project
from cloudrun_emulator.services import PRINCIPAL
from cloudrun_emulator.wire import prune, status_object


class JobStore(JobRunner):
    """Jobs and executions of every namespace, behind one lock; executions run on threads."""

    def create_job(
        self, ns: str, body: dict[str, Any], dry_run: bool, region: str = DEFAULT_REGION
    ) -> dict[str, Any]:
        """jobs.create, in ``region`` (the regional endpoint the request came to)."""
        meta = body.get("metadata", {})
        name = meta.get("name", "")
        with self.lock:
            problems = check_job(body, name) + check_namespace(ns, meta) + check_creator(meta, None)
            if problems:
                raise invalid(problems)
            if (ns, name) in self.jobs:
                raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists.")
            job = Job(ns, name, {}, {}, {}, seq=self._next(), region=region)
            self._apply(job, body)
            if not dry_run:
                self.jobs[(ns, name)] = job
            return self._render_job(job)

    def replace_job(self, ns: str, name: str, body: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        """jobs.replaceJob: whole-object PUT; a stale ``resourceVersion`` is a 409."""
        meta = body.get("metadata", {})
        with self.lock:
            current = self._job(ns, name)
            problems = check_job(body, meta.get("name", "")) + check_namespace(ns, meta)
            problems += check_creator(meta, current)
            problems += url_name_mismatch(meta, name)
            if problems:
                raise invalid(problems)
            check_version(meta, name, current.resource_version)
            job = copy.deepcopy(current) if dry_run else current
            before = (copy.deepcopy(job.spec), dict(job.labels), dict(job.annotations))
            self._apply(job, body)
            if (job.spec, job.labels, job.annotations) != before:
                job.generation += 1
            return self._render_job(job)

    def _apply(self, job: Job, body: dict[str, Any]) -> None:
        """Take the user's metadata and spec, fill Cloud Run's defaults, decide readiness."""
        meta = body.get("metadata", {})
        job.labels = {**meta.get("labels", {}), LOCATION_LABEL: job.region}
        job.annotations = {**meta.get("annotations", {}), CREATOR: PRINCIPAL, LAST_MODIFIER: PRINCIPAL}
        job.spec = default_job_spec(body.get("spec", {}))
        job.resource_version = self._version()
        missing = self._missing_image(job.spec["template"]["spec"])
        if missing:
            job.ready.set("False", "ContainerMissing", f"Image '{missing}' not found.")
        else:
            job.ready.set("True")

    def get_job(self, ns: str, name: str) -> dict[str, Any]:
        with self.lock:
            return self._render_job(self._job(ns, name))

    def list_jobs(self, ns: str, selector: str, limit: int, token: str) -> dict[str, Any]:
        with self.lock:
            found = sorted((j for j in self.jobs.values() if in_scope(j.namespace, ns)), key=lambda j: -j.seq)
            items = [self._render_job(j) for j in found]
        return _page("JobList", items, selector, limit, token)

    def delete_job(self, ns: str, name: str) -> dict[str, Any]:
        """jobs.delete: the job and its executions go; running ones are cancelled first."""
        with self.lock:
            job = self._job(ns, name)
            del self.jobs[(ns, name)]
            doomed = [e for e in self.executions.values() if e.namespace == ns and e.job == name]
            for execution in doomed:
                execution.cancel.set()
                del self.executions[(ns, execution.name)]
        return _status(name, "jobs", job.uid)

    def _job(self, ns: str, name: str) -> Job:
        job = self.jobs.get((ns, name))
        if job is None:
            raise not_found("Job", name)
        return job

    def run_job(self, ns: str, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """jobs.run: a new execution of the job's current template, with per-run overrides."""
        with self.lock:
            if self._closed:
                raise ApiError(503, "UNAVAILABLE", "The emulator is shutting down.")
            job = self._job(ns, name)
            if job.ready.status != "True":
                raise ApiError(
                    400,  # FAILED_PRECONDITION, which Google maps to HTTP 400
                    "FAILED_PRECONDITION",
                    f"Job '{name}' is not ready and cannot be executed: {job.ready.message or ''}".strip(),
                )
            spec = apply_overrides(job.spec["template"]["spec"], request.get("overrides", {}))
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            exe_name = f"{name}-{suffix}"
            meta = job.spec["template"].get("metadata", {})
            labels = {**job.labels, **meta.get("labels", {}), JOB_LABEL: name, LOCATION_LABEL: job.region}
            log_dir = self._log_dir / ns / exe_name
            log_dir.mkdir(parents=True, exist_ok=True)
            execution = Execution(
                ns,
                exe_name,
                name,
                labels,
                {**meta.get("annotations", {}), CREATOR: PRINCIPAL},
                spec,
                self._next(),
                [Task(i) for i in range(spec["taskCount"])],
                log_dir,
            )
            execution.resource_version = self._version()
            execution.conditions["Completed"].set("Unknown", None, "Waiting for execution to complete.")
            execution.conditions["ResourcesAvailable"].set("Unknown", None, "Provisioning resources.")
            execution.conditions["Started"].set("Unknown", None, "Waiting for execution to start.")
            self.executions[(ns, exe_name)] = execution
            job.execution_count += 1
            job.latest = exe_name
            rendered = self._render_execution(execution)
        threading.Thread(target=self._run, args=(execution,), daemon=True, name=f"exec-{exe_name}").start()
        return rendered

    def get_execution(self, ns: str, name: str) -> dict[str, Any]:
        with self.lock:
            return self._render_execution(self._execution(ns, name))

    def list_executions(self, ns: str, selector: str, limit: int, token: str) -> dict[str, Any]:
        with self.lock:
            found = sorted(
                (e for e in self.executions.values() if in_scope(e.namespace, ns)), key=lambda e: -e.seq
            )
            items = [self._render_execution(e) for e in found]
        return _page("ExecutionList", items, selector, limit, token)

    def cancel_execution(self, ns: str, name: str, wait: float = 0.5) -> dict[str, Any]:
        """executions.cancel: running tasks are killed, waiting ones cancelled; answers once it is done
        (or after ``wait`` seconds, still running: clients poll for the terminal condition)."""
        with self.lock:
            execution = self._execution(ns, name)
            if execution.done:
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"Execution '{name}' has already completed and cannot be cancelled.",
                )
            execution.cancel.set()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not execution.done:
            time.sleep(POLL_SECONDS)
        return self.get_execution(ns, name)

    def delete_execution(self, ns: str, name: str) -> dict[str, Any]:
        with self.lock:
            execution = self._execution(ns, name)
            execution.cancel.set()
            del self.executions[(ns, name)]
        return _status(name, "executions", execution.uid)

    def _execution(self, ns: str, name: str) -> Execution:
        execution = self.executions.get((ns, name))
        if execution is None:
            raise not_found("Execution", name)
        return execution

    def get_task(self, ns: str, name: str) -> dict[str, Any]:
        exe_name, _, index = name.rpartition("-task")
        with self.lock:
            execution = self.executions.get((ns, exe_name))
            if execution is None or not index.isdigit() or int(index) >= len(execution.tasks):
                raise not_found("Task", name)
            return self._render_task(execution, execution.tasks[int(index)])

    def list_tasks(self, ns: str, selector: str, limit: int, token: str) -> dict[str, Any]:
        with self.lock:
            found = sorted(
                (e for e in self.executions.values() if in_scope(e.namespace, ns)), key=lambda e: -e.seq
            )
            items = [self._render_task(e, t) for e in found for t in e.tasks]
        return _page("TaskList", items, selector, limit, token)

    def _meta(self, ns: str, kind: str, name: str, uid: str, version: str, created: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": scope_project(ns),
            "selfLink": f"{PREFIX}/{scope_project(ns)}/{kind}/{name}",
            "uid": uid,
            "resourceVersion": version,
            "creationTimestamp": created,
        }

    def _render_job(self, job: Job) -> dict[str, Any]:
        meta = self._meta(job.namespace, "jobs", job.name, job.uid, job.resource_version, job.created)
        meta.update(generation=job.generation, labels=dict(job.labels), annotations=dict(job.annotations))
        status: dict[str, Any] = {
            "observedGeneration": job.generation,
            "conditions": [job.ready.to_json()],
            "executionCount": job.execution_count,
        }
        latest = self.executions.get((job.namespace, job.latest or ""))
        if latest is not None:
            status["latestCreatedExecution"] = {
                "name": latest.name,
                "creationTimestamp": latest.created,
                "completionTimestamp": latest.completed,
                "completionStatus": completion_status(latest),
            }
        body = {"apiVersion": API_VERSION, "kind": "Job", "metadata": meta, "spec": copy.deepcopy(job.spec)}
        return prune({**body, "status": status})

    def _render_execution(self, execution: Execution) -> dict[str, Any]:
        e = execution
        meta = self._meta(e.namespace, "executions", e.name, e.uid, e.resource_version, e.created)
        meta.update(generation=1, labels=dict(e.labels), annotations=dict(e.annotations))
        meta["ownerReferences"] = [
            {"kind": "Job", "name": e.job, "apiVersion": API_VERSION, "controller": True}
        ]
        retried = sum(max(t.attempts - 1, 0) for t in e.tasks)
        status = {
            "observedGeneration": 1,
            "conditions": [c.to_json() for c in e.conditions.values()],
            "startTime": e.started,
            "completionTime": e.completed,
            "runningCount": e.count("running"),
            "succeededCount": e.count("succeeded"),
            "failedCount": e.count("failed"),
            "cancelledCount": e.count("cancelled"),
            "retriedCount": retried,
            "logUri": log_uri(e.namespace, e.job, e.name),
        }
        body = {
            "apiVersion": API_VERSION,
            "kind": "Execution",
            "metadata": meta,
            "spec": copy.deepcopy(e.spec),
        }
        return prune({**body, "status": status})

    def _render_task(self, execution: Execution, task: Task) -> dict[str, Any]:
        name = f"{execution.name}-task{task.index}"
        meta = self._meta(
            execution.namespace, "tasks", name, task.uid, execution.resource_version, execution.created
        )
        meta["labels"] = {
            **execution.labels,
            EXECUTION_LABEL: execution.name,
            TASK_INDEX_LABEL: str(task.index),
            RUNNING_STATE_LABEL: running_state(task),
        }
        completed = StoredCondition("Completed")
        if task.state == "succeeded":
            completed.set("True", None, task.message)
        elif task.state in ("failed", "cancelled"):
            reason = {"cancelled": "Cancelled", "failed": "NonZeroExitCode"}[task.state]
            if task.state == "failed" and task.exit_code is None:
                reason = "TaskFailed"
            completed.set("False", reason, task.message)
        attempt: dict[str, Any] = {"exitCode": task.exit_code, "termSignal": task.term_signal}
        if task.state in ("failed", "cancelled") or (task.state == "running" and task.attempts > 1):
            attempt["status"] = {"code": 0 if task.state == "succeeded" else 2, "message": task.message}
        status = {
            "index": task.index,
            "retried": max(task.attempts - 1, 0),
            "startTime": task.started,
            "completionTime": task.completed if task.state in ("succeeded", "failed", "cancelled") else None,
            "conditions": [completed.to_json()],
            "lastAttemptResult": attempt if task.attempts else None,
            "logUri": log_uri(execution.namespace, execution.job, execution.name),
        }
        spec = copy.deepcopy(execution.spec["template"]["spec"])
        return prune(
            {"apiVersion": API_VERSION, "kind": "Task", "metadata": meta, "spec": spec, "status": status}
        )

    def close(self) -> None:
        """Cancel everything that runs and remove the logs."""
        with self.lock:
            self._closed = True
            running = [e for e in self.executions.values() if not e.done]
            for execution in running:
                execution.cancel.set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(not e.done for e in running):
            time.sleep(POLL_SECONDS)
        shutil.rmtree(self._log_dir, ignore_errors=True)


def _page(kind: str, items: list[dict[str, Any]], selector: str, limit: int, token: str) -> dict[str, Any]:
    listed = page(kind, items, selector, limit, token)
    listed["apiVersion"] = API_VERSION
    return listed


def _status(name: str, kind: str, uid: str) -> dict[str, Any]:
    status = status_object(name, kind, uid)
    status["details"]["group"] = "run.googleapis.com"
    return status
