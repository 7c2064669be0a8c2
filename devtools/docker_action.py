"""Run the action's image the way the GitHub runner runs a Docker action: ``docker run`` with its flags.

The job layout, ``INPUT_*``/``GITHUB_*`` environment and file-command parsing are those of
``devtools.harness``; here the process is ``docker run`` of the built image, as the runner starts it
(see the runner's ContainerActionHandler)::

    docker run --name <id> --label <label> --workdir /github/workspace --rm
      -e INPUT_<NAME> ... -e HOME -e GITHUB_* ... -e GITHUB_ACTIONS=true -e CI=true
      [--entrypoint /app/post.py] --network host
      -v <home>:/github/home -v <workflow>:/github/workflow
      -v <file commands>:/github/file_commands -v <workspace>:/github/workspace <image>

Values are passed as ``-e NAME`` from the CLI's environment, as the runner does (no secret on the
command line), except the paths, which name the mounts inside the container. ``--network host``
stands for the job network: here it is how the container reaches the emulator on the host's loopback.
The runner also mounts the Docker socket; the action never uses it, so it is left out.

Cancellation: the runner signals the ``docker run`` process (SIGINT, SIGTERM 7.5 s later, then kills
it 2.5 s after) and docker forwards the signals to the container's PID 1. ``send_signal`` delivers
them with ``docker kill --signal``; ``signal_client`` signals the ``docker run`` process itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devtools import harness

LABEL = "run-canary-test"
POST_ENTRYPOINT = "/app/post.py"

# In the container, the job's directories are these mounts.
_MOUNTS = {
    "home": "/github/home",
    "workflow": "/github/workflow",
    "file_commands": "/github/file_commands",
    "workspace": "/github/workspace",
}
# What harness.base_env sets for a host process; the image has its own.
_HOST_ONLY = frozenset(harness.base_env("python"))


def _docker(docker_host: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        env={**os.environ, "DOCKER_HOST": docker_host},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def docker_run_argv(image: str, prepared: Any, name: str, entrypoint: str | None = None) -> list[str]:
    """The runner's ``docker run`` command line for a prepared step (see the module docstring)."""
    env = prepared.env
    host_dirs = {
        "home": Path(env["HOME"]),
        "workflow": Path(env["GITHUB_EVENT_PATH"]).parent,
        "file_commands": prepared.file_commands,
        "workspace": prepared.workspace,
    }
    inside = {
        "HOME": _MOUNTS["home"],
        "GITHUB_WORKSPACE": _MOUNTS["workspace"],
        "GITHUB_EVENT_PATH": f"{_MOUNTS['workflow']}/event.json",
    }
    for key in ("GITHUB_OUTPUT", "GITHUB_STATE", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH"):
        inside[key] = f"{_MOUNTS['file_commands']}/{Path(env[key]).name}"
    argv = ["docker", "run", "--name", name, "--label", LABEL, "--workdir", _MOUNTS["workspace"], "--rm"]
    for key in sorted(env):
        if key in _HOST_ONLY:
            continue
        argv += ["-e", f"{key}={inside[key]}" if key in inside else key]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    argv += ["--network", "host"]
    for what, directory in host_dirs.items():
        argv += ["-v", f"{directory}:{_MOUNTS[what]}"]
    argv.append(image)
    return argv


class ContainerAction(harness.RunningAction):
    """A ``docker run`` of the action image, started like the runner starts it."""

    def __init__(self, prepared: Any, *, image: str, docker_host: str, entrypoint: str | None = None):
        self.name = f"run-canary-test-{uuid.uuid4().hex[:12]}"
        self.docker_host = docker_host
        prepared.argv = docker_run_argv(image, prepared, self.name, entrypoint)
        # The CLI's own environment: the action's variables (passed on by `-e NAME`) and the engine.
        prepared.env = {**prepared.env, "PATH": os.environ["PATH"], "DOCKER_HOST": docker_host}
        super().__init__(prepared)

    def __enter__(self) -> ContainerAction:
        return self

    def send_signal(self, sig: int) -> None:
        """``docker kill --signal``: the signal reaches the container's PID 1 (the action)."""
        if self.poll() is None:
            _docker(self.docker_host, "kill", "--signal", signal.Signals(sig).name, self.name)

    def signal_client(self, sig: int) -> None:
        """Signal the ``docker run`` process, as the runner does; docker forwards it to PID 1."""
        if self.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the container (and so the ``docker run`` attached to it)."""
        if self.poll() is None:
            _docker(self.docker_host, "kill", self.name)
            if self._wait_exit(20) is None:  # the CLI did not notice: kill it too
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self._wait_exit(10)


def start(
    image: str,
    docker_host: str,
    inputs: Mapping[str, object] | None = None,
    *,
    tmp_path: Path,
    entrypoint: str | None = None,
    state: Mapping[str, str] | None = None,
    github: Mapping[str, str] | None = None,
) -> ContainerAction:
    """Start the image's entrypoint (or ``entrypoint``) as the runner would; returns at once."""
    prepared = harness._prepare(
        harness.ENTRYPOINT,
        inputs,
        tmp_path=tmp_path,
        python=None,
        env=None,
        github=github,
        event=None,
        event_name=None,
        state=state,
    )
    return ContainerAction(prepared, image=image, docker_host=docker_host, entrypoint=entrypoint)


def run(
    image: str,
    docker_host: str,
    inputs: Mapping[str, object] | None = None,
    *,
    tmp_path: Path,
    timeout: float = harness.DEFAULT_TIMEOUT,
    post: bool = True,
    **kwargs: Any,
) -> harness.RunResult:
    """Run the image to completion as the runner would; see :func:`start`. Then, unless ``post`` is
    False or this run is a post step itself, the post step the runner always runs after it (its
    result in ``.post``), so that the service a test looks at is the service after the whole job."""
    with start(image, docker_host, inputs, tmp_path=tmp_path, **kwargs) as running:
        result = running.wait(timeout=timeout)
    if post and kwargs.get("entrypoint") is None:
        result.post = run_post(image, docker_host, result, inputs, tmp_path=tmp_path, timeout=timeout)
    return result


def run_post(
    image: str,
    docker_host: str,
    main: harness.RunResult,
    inputs: Mapping[str, object] | None = None,
    *,
    tmp_path: Path,
    timeout: float = harness.DEFAULT_TIMEOUT,
) -> harness.RunResult:
    """The runner's post step: a fresh container of the image with ``--entrypoint`` the action's
    post-entrypoint, the same inputs, and ``STATE_<name>`` from the main step's GITHUB_STATE."""
    return run(
        image,
        docker_host,
        inputs,
        tmp_path=tmp_path,
        timeout=timeout,
        entrypoint=POST_ENTRYPOINT,
        state=main.state,
        post=False,
    )
