"""Run ``entrypoint.py`` and ``post.py`` the way the GitHub runner runs the container action.

The one imitation of the runner: the tests, ``benchmarks/run.py`` and ``scripts/demo.py`` all use it.
The runner gives a Docker action's entrypoint (GitHub's "Metadata syntax" and "Workflow commands"
documentation, and actions/runner's ContainerActionHandler and FileCommandManager):

- ``INPUT_<NAME>`` for every input declared in action.yml (name uppercased, spaces to ``_``, hyphens
  kept), the ``with:`` value or else the declared default, ``""`` when there is neither;
- ``GITHUB_*`` / ``RUNNER_*`` variables, ``CI=true``, ``GITHUB_ACTIONS=true``, ``HOME``;
- empty file-command files (``GITHUB_OUTPUT``, ``GITHUB_STATE``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV``,
  ``GITHUB_PATH``) new for each step, which it parses after the step;
- the workspace as working directory;
- for the ``post-entrypoint``, the same inputs plus ``STATE_<name>`` for each value the main step
  saved to ``GITHUB_STATE``.

Here the process runs with a minimal environment (nothing of the developer's leaks in) and a chosen
Python (``sys.executable`` by default; :func:`make_runtime_venv` gives one with only the image's
runtime dependencies). Each result also carries the process's wall time, peak RSS and CPU time (from
``wait4``), which the benchmark reports.

    result = harness.run({"service": "hello", "image": "sample/hello", "api_endpoint": emu.url},
                         tmp_path=tmp_path)
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"

    with harness.start(inputs, tmp_path=tmp_path) as running:
        running.wait_for_output("step 1", timeout=30)
        result = running.cancel_like_runner()
    post = harness.run_post(result, inputs, tmp_path=tmp_path)
"""

from __future__ import annotations

import compileall
import contextlib
import copy
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devtools import forkserver

ROOT = Path(__file__).resolve().parent.parent  # the repository
ACTION_YML = ROOT / "action.yml"
ENTRYPOINT = ROOT / "entrypoint.py"
POST = ROOT / "post.py"
REQUIREMENTS_LOCK = ROOT / "requirements.txt"
RUNTIME_VENV = ROOT / ".venv-runtime"

DEFAULT_TIMEOUT = 120.0

# What a hosted runner's job looks like, overridable per run with ``github={...}``.
DEFAULT_GITHUB: dict[str, str] = {
    "GITHUB_REPOSITORY": "octo-org/octo-repo",
    "GITHUB_REPOSITORY_OWNER": "octo-org",
    "GITHUB_REPOSITORY_ID": "123456789",
    "GITHUB_SHA": "2f1e0d9c8b7a69584736251403f2e1d0c9b8a796",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
    "GITHUB_REF_TYPE": "branch",
    "GITHUB_HEAD_REF": "",
    "GITHUB_BASE_REF": "",
    "GITHUB_RUN_ID": "9876543210",
    "GITHUB_RUN_NUMBER": "42",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_RETENTION_DAYS": "90",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_API_URL": "https://api.github.com",
    "GITHUB_GRAPHQL_URL": "https://api.github.com/graphql",
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_WORKFLOW": "Deploy",
    "GITHUB_WORKFLOW_REF": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
    "GITHUB_JOB": "deploy",
    "GITHUB_ACTION": "canary",
    "GITHUB_ACTION_REPOSITORY": "",
    "GITHUB_ACTOR": "octocat",
    "GITHUB_ACTOR_ID": "583231",
    "GITHUB_TRIGGERING_ACTOR": "octocat",
    "RUNNER_OS": "Linux",
    "RUNNER_ARCH": "X64",
    "RUNNER_NAME": "GitHub Actions 1",
    "RUNNER_ENVIRONMENT": "github-hosted",
}


class FileCommandError(ValueError):
    """A file-command file the runner would reject (it fails the step)."""


class ActionTimeout(AssertionError):
    """The process did not finish in time; it was killed."""


# --------------------------------------------------------------------------------------------------
# action.yml and INPUT_*


def action_metadata() -> dict[str, Any]:
    """action.yml as the runner reads it (a copy: callers may change it)."""
    return copy.deepcopy(_parsed(ACTION_YML.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=2)
def _parsed(text: str) -> dict[str, Any]:
    """Parsed once per text: every run starts from the inputs, and parsing action.yml (pure-Python
    YAML, 60 ms) for every main and post step was a fifth of the test workers' CPU. With libyaml
    (in PyYAML's wheels) the safe loader's C form reads it ten times faster."""
    data = yaml.load(text, Loader=yaml.CSafeLoader)
    assert isinstance(data, dict)
    return data


def action_inputs() -> dict[str, str | None]:
    """Declared inputs and their defaults (``None``: no ``default:`` key)."""
    inputs = _parsed(ACTION_YML.read_text(encoding="utf-8")).get("inputs") or {}
    out: dict[str, str | None] = {}
    for name, spec in inputs.items():
        default = (spec or {}).get("default")
        out[str(name)] = None if default is None else _to_input_string(default)
    return out


def input_env_name(name: str) -> str:
    """``INPUT_<NAME>`` as the runner spells it: uppercased, spaces to ``_``, hyphens kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def _to_input_string(value: object) -> str:
    # The runner passes every input as the string its expression evaluated to.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def input_env(inputs: Mapping[str, object] | None = None) -> dict[str, str]:
    """``INPUT_*`` for every declared input (default, else ""), then the given ``with:`` values.

    Inputs not declared in action.yml are passed too (the runner only warns about them).
    """
    env = {input_env_name(name): default or "" for name, default in action_inputs().items()}
    for name, value in (inputs or {}).items():
        env[input_env_name(name)] = _to_input_string(value)
    return env


# --------------------------------------------------------------------------------------------------
# File commands and workflow commands, parsed like the runner


def _read_lines(text: str) -> Iterator[tuple[str, int, str | None]]:
    """Yield (line, index after the line, newline or None at EOF) splitting on \\r\\n or \\n."""
    index = 0
    while index < len(text):
        nl = text.find("\n", index)
        if nl < 0:
            yield text[index:], len(text), None
            return
        if nl > index and text[nl - 1] == "\r":
            yield text[index : nl - 1], nl + 1, "\r\n"
        else:
            yield text[index:nl], nl + 1, "\n"
        index = nl + 1


def parse_file_command(text: str) -> dict[str, str]:
    """Parse GITHUB_OUTPUT / GITHUB_STATE / GITHUB_ENV content exactly like the runner.

    ``name=value`` lines, and ``name<<DELIM`` heredocs whose value runs up to a line equal to
    DELIM (the newline before the delimiter is not part of the value). Later names win.
    """
    result: dict[str, str] = {}
    lines = _read_lines(text)
    for line, index, _newline in lines:
        if not line:
            continue
        eq = line.find("=")
        heredoc = line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            key, value = line.split("=", 1)
            if not key:
                raise FileCommandError(f"Invalid format '{line}'. Name must not be empty")
        elif heredoc >= 0 and (eq < 0 or heredoc < eq):
            key, delimiter = line.split("<<", 1)
            if not key or not delimiter:
                raise FileCommandError(
                    f"Invalid format '{line}'. Name must not be empty and delimiter must not be empty"
                )
            start = end = index
            for inner, inner_index, newline in lines:
                if inner == delimiter:
                    break
                if newline is None:
                    raise FileCommandError("Invalid value. EOF marker missing new line.")
                end = inner_index - len(newline)
            else:
                raise FileCommandError(f"Invalid value. Matching delimiter not found '{delimiter}'")
            value = text[start:end] if end > start else ""
        else:
            raise FileCommandError(f"Invalid format '{line}'")
        result[key] = value
    return result


@dataclass(frozen=True)
class WorkflowCommand:
    """``::name k=v,k2=v2::data``, with data and properties unescaped as the runner does."""

    name: str
    properties: dict[str, str]
    data: str
    stream: str  # "stdout" | "stderr"


_RUNNER_COMMANDS = frozenset(
    {
        "error",
        "warning",
        "notice",
        "debug",
        "group",
        "endgroup",
        "add-mask",
        "add-matcher",
        "remove-matcher",
        "echo",
        "stop-commands",
        "save-state",
        "set-output",
        "set-env",
        "add-path",
    }
)


def _unescape_data(value: str) -> str:
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(value: str) -> str:
    return (
        value.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def parse_workflow_commands(text: str, stream: str = "stdout") -> list[WorkflowCommand]:
    """The workflow commands the runner would act on in one output stream (honours stop-commands)."""
    commands: list[WorkflowCommand] = []
    resume_token: str | None = None
    for raw in text.splitlines():
        line = raw.lstrip()
        if resume_token is not None:
            if line == f"::{resume_token}::":
                resume_token = None
            continue
        if not line.startswith("::"):
            continue
        end = line.find("::", 2)
        if end < 0:
            continue
        info = line[2:end]
        name, _, props_text = info.partition(" ")
        if name not in _RUNNER_COMMANDS:
            continue
        props: dict[str, str] = {}
        for prop in props_text.strip().split(","):
            key, sep, value = prop.partition("=")
            if prop and sep and key and value:
                props[key] = _unescape_property(value)
        data = _unescape_data(line[end + 2 :])
        if name == "stop-commands":
            resume_token = data
        commands.append(WorkflowCommand(name, props, data, stream))
    return commands


# --------------------------------------------------------------------------------------------------
# Runs


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    state: dict[str, str]
    summary: str
    env_file: dict[str, str]
    path_file: list[str]
    env: dict[str, str] = field(repr=False)
    workspace: Path = field(repr=False)
    file_commands: Path = field(repr=False)
    started: float = 0.0  # epoch seconds just before the process was spawned
    ended: float = 0.0  # epoch seconds when it was reaped
    peak_rss_mb: float = 0.0  # the process's own maximum resident set (ru_maxrss)
    cpu_s: float = 0.0  # user + system CPU seconds
    post: RunResult | None = field(default=None, repr=False)  # the post step the runner ran after it

    @property
    def wall_s(self) -> float:
        return self.ended - self.started

    @property
    def log(self) -> str:
        """Both streams, for assertion messages."""
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    @property
    def commands(self) -> list[WorkflowCommand]:
        return parse_workflow_commands(self.stdout, "stdout") + parse_workflow_commands(self.stderr, "stderr")

    def annotations(self, level: str | None = None) -> list[WorkflowCommand]:
        levels = {level} if level else {"error", "warning", "notice"}
        return [c for c in self.commands if c.name in levels]

    @property
    def masks(self) -> list[str]:
        return [c.data for c in self.commands if c.name == "add-mask"]

    def printed_before_masked(self, secret: str) -> bool:
        """True when ``secret`` appears in a stream before (or without) an ``::add-mask::`` of it."""
        for text in (self.stdout, self.stderr):
            masked = False
            for line in text.splitlines():
                stripped = line.lstrip()
                if stripped.startswith("::add-mask::") and _unescape_data(stripped[12:]) == secret:
                    masked = True
                    continue
                if secret in line and not masked:
                    return True
            if not masked and secret in text:
                return True
        return False


@dataclass
class _Prepared:
    argv: list[str]
    env: dict[str, str]
    workspace: Path
    file_commands: Path


def base_env(python: str | os.PathLike[str]) -> dict[str, str]:
    """A minimal process environment: nothing of the developer's leaks into the action."""
    python_dir = str(Path(python).parent)
    return {
        "PATH": os.pathsep.join(
            [python_dir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        ),
        "LANG": "C.UTF-8",
        # As the Dockerfile sets them.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def pull_request_event(number: int = 7, *, head_sha: str | None = None) -> dict[str, Any]:
    """A minimal ``pull_request`` event payload; use with ``event_name="pull_request"``."""
    sha = head_sha or DEFAULT_GITHUB["GITHUB_SHA"]
    repo = DEFAULT_GITHUB["GITHUB_REPOSITORY"]
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": sha, "ref": "feature", "repo": {"full_name": repo}},
            "base": {"ref": "main", "repo": {"full_name": repo}},
        },
        "repository": {"full_name": repo},
    }


@functools.cache
def byte_compile_app() -> None:
    """Byte-compile ``deployer/`` once per process, as the image does at build time.

    The action's environment (like the image's) has PYTHONDONTWRITEBYTECODE, so without this every
    run would compile the package from source again: about 40 ms of CPU that no real run spends.
    An up-to-date package costs only a stat per file; the writes are atomic, so workers may race.
    """
    compileall.compile_dir(ROOT / "deployer", quiet=1)


def _prepare(
    script: Path,
    inputs: Mapping[str, object] | None,
    *,
    tmp_path: Path,
    python: str | os.PathLike[str] | None,
    env: Mapping[str, str | None] | None,
    github: Mapping[str, str] | None,
    event: Mapping[str, Any] | None,
    event_name: str | None,
    state: Mapping[str, str] | None,
) -> _Prepared:
    """Lay out the job directories under tmp_path (reused by later steps) and build the env."""
    byte_compile_app()
    tmp_path = Path(tmp_path)
    workspace = tmp_path / "workspace"
    home = tmp_path / "home"
    runner_temp = tmp_path / "runner_temp"
    workflow_dir = tmp_path / "workflow"
    for d in (workspace, home, runner_temp, workflow_dir, tmp_path / "tool_cache"):
        d.mkdir(parents=True, exist_ok=True)
    # The runner creates new, empty file-command files for every step.
    file_commands = Path(tempfile.mkdtemp(prefix="file_commands-", dir=tmp_path))
    files = {
        "GITHUB_OUTPUT": file_commands / "set_output",
        "GITHUB_STATE": file_commands / "save_state",
        "GITHUB_STEP_SUMMARY": file_commands / "step_summary",
        "GITHUB_ENV": file_commands / "set_env",
        "GITHUB_PATH": file_commands / "add_path",
    }
    for path in files.values():
        path.write_text("", encoding="utf-8")

    gh = dict(DEFAULT_GITHUB)
    if event_name is not None:
        gh["GITHUB_EVENT_NAME"] = event_name
    gh.update(github or {})
    if event is None:
        event = pull_request_event() if gh["GITHUB_EVENT_NAME"].startswith("pull_request") else {}
    event_path = workflow_dir / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")

    py = str(python or sys.executable)
    full = base_env(py)
    full.update(
        {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "HOME": str(home),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_PATH": str(event_path),
            "RUNNER_TEMP": str(runner_temp),
            "RUNNER_TOOL_CACHE": str(tmp_path / "tool_cache"),
            "RUNNER_WORKSPACE": str(tmp_path),
            **{k: str(v) for k, v in files.items()},
            **gh,
        }
    )
    full.update(input_env(inputs))
    for name, saved in (state or {}).items():
        full[f"STATE_{name}"] = saved
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return _Prepared([py, str(script)], full, workspace, file_commands)


_Exit = forkserver.Ended  # how a run ended (from wait4, ours or the fork server's)


def _collect(prepared: _Prepared, exit: _Exit, started: float, stdout: str, stderr: str) -> RunResult:
    env = prepared.env

    def read(name: str) -> str:
        return Path(env[name]).read_text(encoding="utf-8")

    return RunResult(
        returncode=exit.returncode,
        stdout=stdout,
        stderr=stderr,
        outputs=parse_file_command(read("GITHUB_OUTPUT")),
        state=parse_file_command(read("GITHUB_STATE")),
        summary=read("GITHUB_STEP_SUMMARY"),
        env_file=parse_file_command(read("GITHUB_ENV")),
        path_file=[line for line in read("GITHUB_PATH").splitlines() if line],
        env=env,
        workspace=prepared.workspace,
        file_commands=prepared.file_commands,
        started=started,
        ended=exit.ended,
        peak_rss_mb=exit.peak_rss_mb,
        cpu_s=exit.cpu_s,
    )


class RunningAction:
    """A started entrypoint or post step (see :func:`start`). Use as a context manager.

    The process is reaped with ``os.wait4`` (never ``Popen.wait``) so its own resource usage is known.
    With ``echo`` its output goes to our own stdout/stderr (the demo) instead of log files, and the
    result's ``stdout``/``stderr`` are empty.
    """

    REAP_POLL = 0.005  # seconds between wait4 polls while waiting with a timeout

    def __init__(
        self,
        prepared: _Prepared,
        *,
        echo: bool = False,
        post: Callable[[RunResult, float | None], RunResult] | None = None,
    ):
        self._prepared = prepared
        # The runner's post step, run once the main step has ended (``wait``, ``cancel_like_runner``),
        # as on GitHub (``post-if: always()``); not after ``kill``: a killed main step stands for a
        # lost runner, or for a test that runs the post step itself (``run_post``).
        self._post = post
        self._killed = False
        self._out_path = prepared.file_commands / "stdout.log"
        self._err_path = prepared.file_commands / "stderr.log"
        self._out = self._out_path.open("wb")
        self._err = self._err_path.open("wb")
        self.started = time.time()
        self.proc: subprocess.Popen[bytes] | forkserver.Forked
        self.proc = self._fork(prepared, echo) or subprocess.Popen(
            prepared.argv,
            cwd=prepared.workspace,
            env=prepared.env,
            stdin=subprocess.DEVNULL,
            stdout=None if echo else self._out,
            stderr=None if echo else self._err,
            start_new_session=True,
        )
        self._exit: _Exit | None = None
        self._result: RunResult | None = None

    def _fork(self, prepared: _Prepared, echo: bool) -> forkserver.Forked | None:
        """The run forked from a server that has imported the action already (``devtools.forkserver``:
        the same start, 0.3 s of CPU less), when it can start this one exactly; else None."""
        server = None if echo else forkserver.server_for(prepared.argv, prepared.env, (ENTRYPOINT, POST))
        if server is None:
            return None
        args = (prepared.env, prepared.workspace, self._out_path, self._err_path)
        pid = server.start(prepared.argv, *args)
        return None if pid is None else forkserver.Forked(server, pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def env(self) -> dict[str, str]:
        return self._prepared.env

    def _wait_exit(self, timeout: float | None) -> _Exit | None:
        """The exit, waiting at most ``timeout`` seconds (0: just look; None: as long as it takes)."""
        if self._exit is None:
            self._exit = self._ended(timeout)
            if self._exit is not None:
                self.proc.returncode = self._exit.returncode
        return self._exit

    def _ended(self, timeout: float | None) -> _Exit | None:
        """How the process ended, once it has: from the fork server, or by wait4 on our own child
        (Popen is told, so it never waits itself)."""
        if isinstance(self.proc, forkserver.Forked):
            return self.proc.server.ended(self.proc.pid, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, 0 if deadline is None else os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                return _Exit(code, time.time(), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
            if deadline is None or time.monotonic() >= deadline:
                return None
            time.sleep(self.REAP_POLL)

    def poll(self) -> int | None:
        done = self._wait_exit(0)
        return None if done is None else done.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            self.proc.send_signal(sig)

    def stdout_so_far(self) -> str:
        return self._out_path.read_text(encoding="utf-8", errors="replace")

    def stderr_so_far(self) -> str:
        return self._err_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        """Wait until stdout+stderr match ``pattern`` (a regex); fail if the process exits first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout_so_far() + "\n" + self.stderr_so_far()
            match = regex.search(text)
            if match:
                return match
            if self.poll() is not None:
                raise AssertionError(
                    f"process exited ({self.proc.returncode}) before printing {regex.pattern!r}:\n{text}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ActionTimeout(f"{regex.pattern!r} not printed within {timeout}s:\n{text}")
            time.sleep(0.05)

    def wait(self, timeout: float | None = DEFAULT_TIMEOUT) -> RunResult:
        """Wait for exit, then parse the file commands (kills and raises ActionTimeout on timeout)."""
        if self._result is not None:
            return self._result
        done = self._wait_exit(timeout)
        if done is None:
            self.kill()
            raise ActionTimeout(
                f"{self._prepared.argv[-1]} still running after {timeout}s\n--- stdout\n"
                f"{self.stdout_so_far()}\n--- stderr\n{self.stderr_so_far()}"
            )
        self._out.close()
        self._err.close()
        self._result = _collect(
            self._prepared, done, self.started, self.stdout_so_far(), self.stderr_so_far()
        )
        if self._post is not None and not self._killed:
            self._result.post = self._post(self._result, timeout)
        return self._result

    def cancel_like_runner(self, sigint_grace: float = 7.5, sigterm_grace: float = 2.5) -> RunResult:
        """What the runner does on cancel or step timeout: SIGINT, SIGTERM after 7.5 s, kill 2.5 s later."""
        for sig, grace in ((signal.SIGINT, sigint_grace), (signal.SIGTERM, sigterm_grace)):
            self.send_signal(sig)
            if self._wait_exit(grace) is not None:
                break
        else:
            self.kill()
        return self.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the process group (no post step follows: see ``__init__``)."""
        if self.poll() is None:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._wait_exit(10)

    def __enter__(self) -> RunningAction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._out.close()
        self._err.close()


def start(
    inputs: Mapping[str, object] | None = None,
    *,
    tmp_path: Path,
    python: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    github: Mapping[str, str] | None = None,
    event: Mapping[str, Any] | None = None,
    event_name: str | None = None,
    script: Path = ENTRYPOINT,
    state: Mapping[str, str] | None = None,
    echo: bool = False,
    post: bool = True,
) -> RunningAction:
    """Start ``script`` (entrypoint.py) as the runner would; returns at once.

    ``tmp_path`` holds the job's directories (workspace, home, runner temp, event), reused by later
    steps with the same ``tmp_path``; ``env`` adds or (with None) removes variables last; ``github``
    overrides ``GITHUB_*``/``RUNNER_*`` values; ``event`` is the payload written to GITHUB_EVENT_PATH;
    ``echo`` sends the output to our own terminal instead of capturing it. Once the main step has
    ended (and was not killed), ``wait`` runs the post step as the runner does, its result in
    ``.post``; ``post=False`` leaves it out (a test of the main step alone, or one that runs it itself).
    """
    job: dict[str, Any] = {
        "python": python,
        "env": env,
        "github": github,
        "event": event,
        "event_name": event_name,
    }
    after = None
    if post and script == ENTRYPOINT:

        def after(result: RunResult, timeout: float | None) -> RunResult:
            """The post step in the same job: inputs, directories and environment."""
            limit = DEFAULT_TIMEOUT if timeout is None else timeout  # as long as the main step's wait
            return run_post(result, inputs, tmp_path=tmp_path, timeout=limit, echo=echo, **job)

    prepared = _prepare(script, inputs, tmp_path=tmp_path, state=state, **job)
    return RunningAction(prepared, echo=echo, post=after)


def run(
    inputs: Mapping[str, object] | None = None,
    *,
    tmp_path: Path,
    python: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    github: Mapping[str, str] | None = None,
    event: Mapping[str, Any] | None = None,
    event_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    script: Path = ENTRYPOINT,
    state: Mapping[str, str] | None = None,
    echo: bool = False,
    post: bool = True,
) -> RunResult:
    """Run ``script`` (entrypoint.py) to completion as the runner would; see :func:`start`.

    Then, as the runner always does (``post-if: always()``), the post step with the state the main
    step saved, its result in ``.post``: what a test asserts on the service afterwards is the service
    after the whole job. ``post=False`` stops after the main step (a test of the main step alone).
    """
    with start(
        inputs,
        tmp_path=tmp_path,
        python=python,
        env=env,
        github=github,
        event=event,
        event_name=event_name,
        script=script,
        state=state,
        echo=echo,
        post=post,
    ) as running:
        return running.wait(timeout=timeout)


def run_post(
    main: RunResult | Mapping[str, str],
    inputs: Mapping[str, object] | None = None,
    *,
    tmp_path: Path,
    timeout: float = DEFAULT_TIMEOUT,
    script: Path = POST,
    **kwargs: Any,
) -> RunResult:
    """Run ``post.py`` like the runner's post-entrypoint: same inputs, ``STATE_<name>`` from the
    main step's GITHUB_STATE (``main`` is its RunResult or the state mapping), fresh file commands."""
    state = main.state if isinstance(main, RunResult) else dict(main)
    return run(inputs, tmp_path=tmp_path, timeout=timeout, script=script, state=state, post=False, **kwargs)


# --------------------------------------------------------------------------------------------------
# A venv with only the image's runtime dependencies


def lock_hash() -> str:
    return hashlib.sha256(REQUIREMENTS_LOCK.read_bytes()).hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_runtime_venv(directory: Path | None = None) -> Path:
    """A venv with ONLY ``pip install --require-hashes --no-deps -r requirements.txt`` (what the
    image installs); returns its python. Built once per lock content, in ``<directory>/venv``
    (``directory`` defaults to ``.venv-runtime``), under a file lock so that concurrent test
    sessions don't race."""
    base = Path(directory) if directory is not None else RUNTIME_VENV
    base.mkdir(parents=True, exist_ok=True)
    venv = base / "venv"
    stamp = venv / ".lock-sha256"
    want = lock_hash()
    with open(base / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text().strip() == want and venv_python(venv).exists():
            return venv_python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        clean = base_env(sys.executable)
        clean["HOME"] = os.environ.get("HOME", "/root")  # pip's configuration (index) lives there
        # pip's own configuration (the index to use) is kept; nothing else of the caller's env.
        clean.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") or k == "XDG_CONFIG_HOME"})
        base_python = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True, env=clean)
        proc = subprocess.run(
            [
                str(venv_python(venv)),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--require-hashes",
                "--no-deps",
                "-r",
                str(REQUIREMENTS_LOCK),
            ],
            env=clean,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"installing the runtime lock failed:\n{proc.stdout}\n{proc.stderr}")
        stamp.write_text(want + "\n")
        return venv_python(venv)
