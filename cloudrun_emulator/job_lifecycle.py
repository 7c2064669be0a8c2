"""How an execution runs: each task a local process, retried, timed out, cancelled; conditions follow.

An execution really runs: each task is a local process (the image's command from the catalogue, or the
container's ``command``, plus its ``args``) with the env Cloud Run gives tasks (``CLOUD_RUN_TASK_INDEX``,
``CLOUD_RUN_TASK_COUNT``, ``CLOUD_RUN_TASK_ATTEMPT``, ``CLOUD_RUN_EXECUTION``, ``CLOUD_RUN_JOB``). Exit code
0 is a succeeded attempt; anything else, or running past ``timeoutSeconds``, a failed one, retried up to
``maxRetries`` times. At most ``parallelism`` tasks run at once. ``:cancel`` kills what runs and cancels
what waits. Conditions follow what gcloud reads: ``Ready`` on the job; ``ResourcesAvailable``, ``Started``
and the terminal ``Completed`` (reason ``Cancelled`` after a cancel) on executions and tasks.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cloudrun_emulator import launcher
from cloudrun_emulator.dataplane import _base_env
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.job_objects import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, Execution, Job, Task, task_env
from cloudrun_emulator.wire import now_iso

MAX_PARALLEL_PROCESSES = 100  # parallelism 0 ("as many as possible") on a laptop


KILL_GRACE_SECONDS = 1.0


POLL_SECONDS = 0.05


class JobRunner:
    """Jobs and executions of every namespace behind one lock, and the threads that run executions."""

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

    def _missing_image(self, execution_spec: dict[str, Any]) -> str:
        """The first image of the task's containers that nothing serves, or ""."""
        for container in execution_spec.get("template", {}).get("spec", {}).get("containers", []):
            if self.images.resolve(container.get("image", "")) is None:
                return str(container.get("image", ""))
        return ""

    def log_path(self, ns: str, execution: str, index: int) -> Path:
        """Where a task's output goes (tests and ``--help`` point users here)."""
        return self._log_dir / ns / execution / f"task{index}.log"

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
        sidecars: list[launcher.Process] = []
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
    ) -> launcher.Process | str:
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
        try:
            return launcher.start(argv, env, execution.log_dir / f"task{task.index}.log")
        except OSError as exc:
            task.exit_code, task.term_signal = 127, None
            task.message = f"The container command {argv[0]!r} could not be started: {exc}."
            return "failed"

    def _wait(self, execution: Execution, task: Task, process: launcher.Process, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (code := process.poll()) is None:
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


def _counts(execution: Execution) -> str:
    parts = [
        f"{execution.count(state)} {state}"
        for state in ("succeeded", "failed", "cancelled")
        if execution.count(state)
    ]
    return ", ".join(parts) + "."


def _kill(process: launcher.Process) -> None:
    """SIGTERM the task's process group, SIGKILL after a short grace (as Cloud Run stops a task)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        launcher.signal_group(process, sig)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
