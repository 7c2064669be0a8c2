"""Run the real Google Cloud CLI against an emulator, the way an operator would, and parse its JSON.

    gc = Gcloud(emulator.url, project, "us-central1")
    svc = gc.run("run", "services", "describe", "hello")          # parsed ``--format json``
    gc.run("run", "services", "update-traffic", "hello", "--to-revisions", "hello-v1=100")
    result = gc.call("run", "services", "describe", "missing")    # never raises: returncode, stderr

gcloud reaches Cloud Run at ``<region>-<host of the endpoint override>``, a name that does not
resolve. Each call therefore runs in a private mount namespace (``unshare -m``, needs root) whose
``/etc/hosts`` maps ``localhost`` and ``<region>-localhost`` (this region and a few others, for
``--region``) to the emulator's address; the machine's own hosts file is never touched. Every
instance has its own throw-away ``CLOUDSDK_CONFIG``, so calls never read or write the user's gcloud
configuration and instances can run in parallel.

Starting gcloud costs about 1.5 s of CPU, most of it imports. So a test session (all its xdist
workers) keeps one gcloud that has imported itself already (``tests/gcloud_server.py``) and forks it
for every call: the same ``gcloud_main.main()`` with the call's own arguments, environment and output
files, in a process of its own (``test_gcloud_fork.py`` holds it to the ``gcloud`` command's
answers). Where that server cannot run (an SDK without its bundled Python), or with
``RUN_CANARY_GCLOUD_FORK=0``, every call starts ``gcloud`` itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

TIMEOUT = 120.0
OTHER_REGIONS = ("us-central1", "us-east1", "europe-west1", "europe-west4", "asia-northeast1")
# The namespace's hosts file is bind-mounted over /etc/hosts, then gcloud is exec'd in it.
IN_NAMESPACE = 'mount --bind "$0" /etc/hosts && exec gcloud "$@"'


def require() -> None:
    """Skip the calling test when gcloud cannot run here; in CI (``CI=true``) fail instead."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"gcloud is required in CI: {reason}", pytrace=False)
    pytest.skip(f"gcloud tests skipped: {reason}")


def missing_reason() -> str | None:
    """Why gcloud cannot be run against the emulator here, or None when it can."""
    if shutil.which("gcloud") is None:
        return "gcloud (Google Cloud CLI) is not installed (not on PATH)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed: needed for a private /etc/hosts"
    if os.geteuid() != 0:
        return "not root: `unshare -m` (private /etc/hosts for gcloud's regional host) needs root"
    return None


class GcloudError(AssertionError):
    """gcloud exited non-zero where the caller expected success."""

    def __init__(self, args: tuple[str, ...], result: Result) -> None:
        super().__init__(f"gcloud {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        self.result = result


@dataclass
class Result:
    """One gcloud invocation: exit code, stdout and stderr as text."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        """stdout parsed as JSON; None when gcloud printed nothing."""
        return json.loads(self.stdout) if self.stdout.strip() else None


class Gcloud:
    """gcloud bound to one emulator, project and region."""

    def __init__(self, base_url: str, project: str, region: str = "us-central1") -> None:
        parts = urlsplit(base_url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"base_url must be http://HOST:PORT, got {base_url!r}")
        self.base_url = base_url
        self.project = project
        self.region = region
        self._dir = Path(tempfile.mkdtemp(prefix="gcloud-emu-"))
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.hosts = self._dir / "hosts"
        regions = dict.fromkeys([region, *OTHER_REGIONS])  # `--region X` works for these too
        names = ["localhost", *(f"{r}-localhost" for r in regions)]
        self.hosts_text = "".join(f"{parts.hostname} {name}\n" for name in names)
        self.hosts.write_text(self.hosts_text)
        self.config = self._dir / "config"
        self.config.mkdir()
        self.endpoint = f"http://localhost:{parts.port}/"

    def env(self) -> dict[str, str]:
        """The caller's environment without any CLOUDSDK_* setting, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSDK_")}
        env.update(
            {
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": self.endpoint,
                # `run services replace` asks Cloud Resource Manager for the project number.
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": self.endpoint,
                "CLOUDSDK_CONFIG": str(self.config),
                "CLOUDSDK_AUTH_ACCESS_TOKEN": "emulator-token",
                "CLOUDSDK_CORE_PROJECT": self.project,
                "CLOUDSDK_RUN_REGION": self.region,
                "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                "CLOUDSDK_CORE_SHOULD_PROMPT_TO_ENABLE_API": "false",
                "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
                "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
                "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "true",
                "CLOUDSDK_CORE_DISABLE_FILE_LOGGING": "true",
                # Not on Compute Engine: no probe of the metadata server (169.254.169.254), which
                # is neither loopback nor answers here, and costs each fresh config 70 ms of CPU.
                "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            }
        )
        return env

    def call(self, *args: str, timeout: float = TIMEOUT) -> Result:
        """Run ``gcloud ARGS`` (adding ``--format json`` unless a format is given); never raises."""
        argv = list(args)
        if not any(a == "--format" or a.startswith("--format=") for a in argv):
            # Flags after --container belong to that container: put ours before the first one.
            at = next((i for i, a in enumerate(argv) if a.split("=")[0] == "--container"), len(argv))
            argv[at:at] = ["--format", "json"]
        server = _server(self.hosts_text)
        if server is not None:
            result = server.call(argv, self.env(), timeout)
            if result is not None:
                return result
            _forget(self.hosts_text)  # gone: the next call finds or starts another
        return self._spawn(argv, timeout)

    def _spawn(self, argv: list[str], timeout: float) -> Result:
        """The plain way: the ``gcloud`` command itself, started afresh (about 1.5 s of CPU)."""
        command = ["unshare", "-m", "sh", "-c", IN_NAMESPACE, str(self.hosts), *argv]
        done = subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def run(self, *args: str, timeout: float = TIMEOUT) -> Any:
        """Run gcloud and return its parsed JSON output; GcloudError when it fails."""
        result = self.call(*args, timeout=timeout)
        if result.returncode != 0:
            raise GcloudError(args, result)
        return result.json

    def text(self, *args: str, timeout: float = TIMEOUT) -> str:
        """Run gcloud with the caller's ``--format`` and return stdout; GcloudError when it fails."""
        result = self.call(*args, timeout=timeout)
        if result.returncode != 0:
            raise GcloudError(args, result)
        return result.stdout


# ---- the fast path: one pre-imported gcloud per test session, forked for each call ----------------

SERVER = Path(__file__).with_name("gcloud_server.py")
_servers: dict[str, ForkServer | None] = {}
_servers_lock = threading.Lock()


def gcloud_python() -> tuple[str, str] | None:
    """The Python the ``gcloud`` launcher runs (the SDK's bundled one) and the SDK's ``lib``."""
    found = shutil.which("gcloud")
    if found is None:
        return None
    root = Path(os.path.realpath(found)).parents[1]
    python, lib = root / "platform/bundledpythonunix/bin/python3", root / "lib"
    if not (python.is_file() and (lib / "gcloud.py").is_file()):
        return None  # another layout: every call starts gcloud itself
    return str(python), str(lib)


class ForkServer:
    """A client of ``tests/gcloud_server.py``, the one server of this test session for a hosts file.

    The session's processes (the xdist workers, which share ``PYTEST_XDIST_TESTRUNUID``) find it by
    its socket; the first to need it starts it, in its own mount namespace, under a lock. It serves
    calls side by side and ends with the session's main process, so importing gcloud (about 1.3 s of
    CPU) happens once a session instead of once a worker."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._dir = Path(tempfile.mkdtemp(prefix="gcloud-calls-"))
        self._calls = itertools.count()
        weakref.finalize(self, shutil.rmtree, self._dir, True)

    def call(self, argv: list[str], env: dict[str, str], timeout: float) -> Result | None:
        """Run one gcloud command; None when the server cannot be reached (the caller then starts
        gcloud itself)."""
        n = next(self._calls)
        out, err = self._dir / f"{n}.out", self._dir / f"{n}.err"
        request = {"argv": argv, "env": env, "stdout": str(out), "stderr": str(err), "timeout": timeout}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(self.socket_path))
                with conn.makefile("rw") as stream:
                    stream.write(json.dumps(request) + "\n")
                    stream.flush()
                    answer = stream.readline()
        except OSError:
            return None
        if not answer:
            return None  # the server died mid-call: start gcloud itself
        try:
            return Result(json.loads(answer)["returncode"], _take(out), _take(err))
        except FileNotFoundError:
            return None


def _take(path: Path) -> str:
    """A command's output file, read and removed."""
    text = path.read_text(errors="replace")
    path.unlink()
    return text


def _answers(socket_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def _session() -> tuple[str, int]:
    """This test session's id and its main process: the xdist controller for a worker (its parent),
    else this process."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run:
        return run, os.getppid()
    return f"pid{os.getpid()}", os.getpid()


def _start(hosts_text: str, socket_path: Path, python: str, lib: str) -> bool:
    """Start the session's server for ``hosts_text`` at ``socket_path``; whether it is ready."""
    hosts = socket_path.with_suffix(".hosts")
    hosts.write_text(hosts_text)  # bind-mounted over /etc/hosts in the server's namespace
    _, watched = _session()
    script = 'mount --bind "$0" /etc/hosts && exec "$1" -S "$2" "$3" "$4" "$5"'
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # a previous server's, gone without removing it
    process = subprocess.Popen(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
            str(hosts),
            python,
            str(SERVER),
            lib,
            str(socket_path),
            str(watched),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CLOUDSDK_")},
        start_new_session=True,  # not in a worker's process group: it outlives the worker
    )
    assert process.stdout is not None
    ready = process.stdout.readline().strip() == "ready"
    process.stdout.close()
    # Reaped when this process ends or with the next start (Popen keeps it in subprocess._active).
    return ready


def _server(hosts_text: str) -> ForkServer | None:
    """This session's server for that hosts file (started on first use), or None without one."""
    if os.environ.get("RUN_CANARY_GCLOUD_FORK", "1") == "0":
        return None
    key = _key(hosts_text)
    with _servers_lock:
        if key not in _servers:
            _servers[key] = _shared(key, hosts_text)
        return _servers[key]


def _key(hosts_text: str) -> str:
    """Which server a call needs: the gcloud on PATH now (a test may put a fake first) and the hosts."""
    return f"{shutil.which('gcloud')}\n{hosts_text}"


def _forget(hosts_text: str) -> None:
    with _servers_lock:
        _servers.pop(_key(hosts_text), None)


def _shared_socket(key: str) -> Path:
    """Where this session's server for ``key`` (``_key``: the gcloud and the hosts) listens."""
    run, _ = _session()
    digest = hashlib.sha256(f"{run}\n{key}".encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"run-canary-gcloud-{digest}.sock"


def _shared(key: str, hosts_text: str) -> ForkServer | None:
    """The session's server for ``key``: found by its socket, or started under a lock."""
    found = gcloud_python()
    if found is None:
        return None
    socket_path = _shared_socket(key)
    with open(socket_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(socket_path) and not _start(hosts_text, socket_path, *found):
            return None
    return ForkServer(socket_path)
