"""Cloud Run jobs in the emulator: jobs, executions and tasks under ``apis/run.googleapis.com/v1``.

An execution really runs: each task is a local process (the image's command from the catalogue, or the
container's ``command``, plus its ``args``) with the env Cloud Run gives tasks (``CLOUD_RUN_TASK_INDEX``,
``CLOUD_RUN_TASK_COUNT``, ``CLOUD_RUN_TASK_ATTEMPT``, ``CLOUD_RUN_EXECUTION``, ``CLOUD_RUN_JOB``). Exit code
0 is a succeeded attempt; anything else, or running past ``timeoutSeconds``, a failed one, retried up to
``maxRetries`` times. At most ``parallelism`` tasks run at once. ``:cancel`` kills what runs and cancels
what waits. Conditions follow what gcloud reads: ``Ready`` on the job; ``ResourcesAvailable``, ``Started``
and the terminal ``Completed`` (reason ``Cancelled`` after a cancel) on executions and tasks.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import shutil
import signal
import string
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from cloudrun_emulator import secretrefs
from cloudrun_emulator.conditions import StoredCondition
from cloudrun_emulator.dataplane import _base_env
from cloudrun_emulator.errors import ApiError, check_version, invalid, not_found, url_name_mismatch
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.listing import page
from cloudrun_emulator.projects import DEFAULT_REGION, LOCATION_LABEL, in_scope, same_project, scope_project
from cloudrun_emulator.schema import DNS1035, MAX_NAME, Violation, _check_env
from cloudrun_emulator.services import PRINCIPAL
from cloudrun_emulator.wire import now_iso, prune, status_object

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
MAX_PARALLEL_PROCESSES = 100  # parallelism 0 ("as many as possible") on a laptop
KILL_GRACE_SECONDS = 1.0
POLL_SECONDS = 0.05


# ---- objects -----------------------------------------------------------------------------------


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
    process: subprocess.Popen[bytes] | None = None
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


# ---- validation --------------------------------------------------------------------------------


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


# ---- the store ---------------------------------------------------------------------------------


class JobStore:
    """Jobs and executions of every namespace, behind one lock; executions run on threads."""

    def __init__(self, images: ImageCatalogue, *, allow_commands: bool = True) -> None:
        self.images = images
        # A container ``command`` runs as given on this machine: only when the API is on loopback.
        self.allow_commands = allow_commands
        self.lock = threading.RLock()
        self.jobs: dict[tuple[str, str], Job] = {}
        self.executions: dict[tuple[str, str], Execution] = {}
        self._counter = 0
        self._closed = False
        self._log_dir = Path(tempfile.mkdtemp(prefix="cloud-run-emulator-jobs-"))

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _version(self) -> str:
        return f"{self._next():016x}"

    # ---- jobs ----------------------------------------------------------------------------

    def create_job(
        self, ns: str, body: dict[str, Any], dry_run: bool, region: str = DEFAULT_REGION
    ) -> dict[str, Any]:
        """jobs.create, in ``region`` (the regional endpoint the request came to)."""
        meta = body.get("metadata", {})
        name = meta.get("name", "")
        with self.lock:
            problems = check_job(body, name) + _check_namespace(ns, meta) + _check_creator(meta, None)
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
            problems = check_job(body, meta.get("name", "")) + _check_namespace(ns, meta)
            problems += _check_creator(meta, current)
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

    def _missing_image(self, execution_spec: dict[str, Any]) -> str:
        """The first image of the task's containers that nothing serves, or ""."""
        for container in execution_spec.get("template", {}).get("spec", {}).get("containers", []):
            if self.images.resolve(container.get("image", "")) is None:
                return str(container.get("image", ""))
        return ""

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

    # ---- executions ----------------------------------------------------------------------

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

    # ---- tasks ---------------------------------------------------------------------------

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

    # ---- running -------------------------------------------------------------------------

    def _run(self, execution: Execution) -> None:
        """Run every task, ``parallelism`` at a time, then decide the Completed condition."""
        missing = self._missing_image(execution.spec)
        if missing:  # deleted from its registry since the job was written: nothing can start
            self._starve(execution, "ContainerMissing", f"Image '{missing}' not found.")
            return
        with self.lock:
            execution.conditions["ResourcesAvailable"].set("True")
            execution.started = now_iso()
            execution.resource_version = self._version()
        count = len(execution.tasks)
        width = execution.spec.get("parallelism") or count
        width = max(1, min(width, count, MAX_PARALLEL_PROCESSES))
        pending = list(execution.tasks)
        workers = [
            threading.Thread(target=self._worker, args=(execution, pending), daemon=True)
            for _ in range(width)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self._finish(execution)

    def _starve(self, execution: Execution, reason: str, message: str) -> None:
        """Resources that cannot be had: ResourcesAvailable turns False at once, and the execution waits
        (Completed stays Unknown) until it is cancelled or its task timeout has passed, then fails."""
        with self.lock:
            execution.blocked = (reason, message)
            execution.conditions["ResourcesAvailable"].set("False", reason, message)
            execution.resource_version = self._version()
        timeout = float(execution.spec["template"]["spec"].get("timeoutSeconds", DEFAULT_TIMEOUT))
        deadline = time.monotonic() + timeout
        while not (execution.cancel.is_set() or self._closed) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        with self.lock:
            state = "cancelled" if execution.cancel.is_set() or self._closed else "failed"
            for task in execution.tasks:
                task.state, task.message = state, message
        self._finish(execution)

    def _worker(self, execution: Execution, pending: list[Task]) -> None:
        while True:
            with self.lock:
                if not pending:
                    return
                task = pending.pop(0)
                if execution.cancel.is_set() or self._closed:
                    task.state = "cancelled"
                    continue
            self._run_task(execution, task)

    def _run_task(self, execution: Execution, task: Task) -> None:
        """Attempts until one exits 0, retries run out, or the execution is cancelled."""
        task_spec = execution.spec["template"]["spec"]
        retries = task_spec.get("maxRetries", DEFAULT_MAX_RETRIES)
        timeout = float(task_spec.get("timeoutSeconds", DEFAULT_TIMEOUT))
        containers = task_spec["containers"]
        for attempt in range(retries + 1):
            with self.lock:
                if execution.cancel.is_set():
                    task.state = "cancelled"
                    return
                task.state, task.attempts = "running", attempt + 1
                task.started = task.started or now_iso()
                if execution.conditions["Started"].status != "True":
                    execution.conditions["Started"].set("True")
            outcome = self._attempt(execution, task, containers, attempt, timeout)
            with self.lock:
                task.process = None
                task.completed = now_iso()
                execution.resource_version = self._version()
                if outcome == "cancelled":
                    task.state = "cancelled"
                    return
                if outcome == "succeeded":
                    task.state = "succeeded"
                    return
                task.state = "failed" if attempt == retries else "running"

    def _attempt(
        self, execution: Execution, task: Task, containers: list[dict[str, Any]], attempt: int, timeout: float
    ) -> str:
        """One attempt: each container a local process, the sidecars beside the main (first) container;
        the main container's exit decides, and the sidecars are then stopped as at a task's end.
        'succeeded', 'failed' or 'cancelled'."""
        sidecars: list[subprocess.Popen[bytes]] = []
        try:
            for container in containers[1:]:
                started = self._start(execution, task, container, attempt)
                if isinstance(started, str):
                    return started
                sidecars.append(started)
            main = self._start(execution, task, containers[0], attempt)
            if isinstance(main, str):
                return main
            with self.lock:
                task.process = main
            return self._wait(execution, task, main, timeout)
        finally:
            for sidecar in sidecars:
                _kill(sidecar)

    def _start(
        self, execution: Execution, task: Task, container: dict[str, Any], attempt: int
    ) -> subprocess.Popen[bytes] | str:
        """One container's process, or "failed" (with the task's message) when it cannot start."""
        argv = self.images.resolve(container["image"])
        if argv is None:
            task.exit_code, task.message = None, f"Image '{container['image']}' not found."
            return "failed"
        if container.get("command"):
            if not self.allow_commands:
                task.exit_code, task.term_signal = 126, None
                task.message = (
                    "The emulator listens beyond loopback: a container command from the API is not run "
                    "(map the image with --image REF=COMMAND instead)."
                )
                return "failed"
            argv = list(container["command"])
        argv += list(container.get("args", []))
        env = {
            **_base_env(),
            **task_env(container, execution.annotations),
            "CLOUD_RUN_JOB": execution.job,
            "CLOUD_RUN_EXECUTION": execution.name,
            "CLOUD_RUN_TASK_INDEX": str(task.index),
            "CLOUD_RUN_TASK_COUNT": str(len(execution.tasks)),
            "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
        }
        log: IO[bytes] = (execution.log_dir / f"task{task.index}.log").open("ab")
        try:
            return subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            task.exit_code, task.term_signal = 127, None
            task.message = f"The container command {argv[0]!r} could not be started: {exc}."
            return "failed"
        finally:
            log.close()

    def _wait(
        self, execution: Execution, task: Task, process: subprocess.Popen[bytes], timeout: float
    ) -> str:
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if execution.cancel.is_set() or self._closed:
                _kill(process)
                task.exit_code, task.term_signal = None, int(signal.SIGTERM)
                task.message = "The task was cancelled."
                return "cancelled"
            if time.monotonic() >= deadline:
                _kill(process)
                task.exit_code, task.term_signal = None, int(signal.SIGKILL)
                task.message = f"Task exceeded its timeout of {timeout:g} seconds and was stopped."
                return "failed"
            time.sleep(POLL_SECONDS)
        code = process.returncode
        task.term_signal = -code if code < 0 else None
        task.exit_code = code if code >= 0 else None
        if code == 0:
            task.message = "The container exited successfully."
            return "succeeded"
        task.message = f"The container exited with an error (exit code {code})."
        return "failed"

    def _finish(self, execution: Execution) -> None:
        """The terminal Completed condition, in Cloud Run's words."""
        with self.lock:
            done = execution.conditions["Completed"]
            failed = [t for t in execution.tasks if t.state == "failed"]
            total = len(execution.tasks)
            if execution.cancel.is_set() and execution.count("cancelled"):
                done.set("False", "Cancelled", f"The execution was cancelled. {_counts(execution)}")
            elif execution.blocked is not None:
                done.set("False", *execution.blocked)
            elif failed:
                first = failed[0]
                reason = "NonZeroExitCode" if first.exit_code is not None else "TaskFailed"
                message = (
                    f"Task {execution.name}-task{first.index} failed after {first.attempts} attempt(s): "
                    f"{first.message} {len(failed)} of {total} task(s) failed."
                )
                done.set("False", reason, message)
            else:
                done.set("True", None, f"Execution {execution.name} has completed successfully.")
            if execution.conditions["Started"].status != "True" and execution.blocked is None:
                execution.conditions["Started"].set("True")
            execution.completed = now_iso()
            execution.resource_version = self._version()

    # ---- rendering -----------------------------------------------------------------------

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

    def log_path(self, ns: str, execution: str, index: int) -> Path:
        """Where a task's output goes (tests and ``--help`` point users here)."""
        return self._log_dir / ns / execution / f"task{index}.log"

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


# ---- helpers -----------------------------------------------------------------------------------


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


def _counts(execution: Execution) -> str:
    parts = [
        f"{execution.count(state)} {state}"
        for state in ("succeeded", "failed", "cancelled")
        if execution.count(state)
    ]
    return ", ".join(parts) + "."


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the task's process group, SIGKILL after a short grace (as Cloud Run stops a task)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


def _check_namespace(ns: str, meta: dict[str, Any]) -> list[Violation]:
    given = meta.get("namespace")
    if given and not same_project(given, ns):
        text = f"metadata.namespace: '{given}' does not match the project in the URL"
        return [Violation("metadata.namespace", text)]
    return []


def _check_creator(meta: dict[str, Any], current: Job | None) -> list[Violation]:
    """run.googleapis.com/creator belongs to the server."""
    value = meta.get("annotations", {}).get(CREATOR)
    expected = current.annotations.get(CREATOR) if current else None
    if value is not None and value != (expected or PRINCIPAL):
        where = f"metadata.annotations[{CREATOR}]"
        return [
            Violation(where, f"{where}: annotation value is immutable (expected {expected!r}, got {value!r})")
        ]
    return []


def _page(kind: str, items: list[dict[str, Any]], selector: str, limit: int, token: str) -> dict[str, Any]:
    listed = page(kind, items, selector, limit, token)
    listed["apiVersion"] = API_VERSION
    return listed


def _status(name: str, kind: str, uid: str) -> dict[str, Any]:
    status = status_object(name, kind, uid)
    status["details"]["group"] = "run.googleapis.com"
    return status
