"""The harness's side of ``devtools/action_server.py``: one server per test process and interpreter,
a reader thread that collects each child's start and end, and a process handle shaped like the part
of ``subprocess.Popen`` the harness uses.

Used only when a run would start exactly as the server's children do: the same interpreter, the same
interpreter variables (``PYTHON*``), ``entrypoint.py`` or ``post.py`` with no other argument, and the
output captured to files. ``RUN_CANARY_ACTION_FORK=0`` turns it off (the benchmark does: it measures
a real start).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SERVER = Path(__file__).with_name("action_server.py")


@dataclass(frozen=True)
class Ended:
    """How a run ended, from wait4 (the server's for a forked run, the harness's for a plain one)."""

    returncode: int
    ended: float
    peak_rss_mb: float
    cpu_s: float


class Server:
    """One ``action_server.py``: start runs, learn when they end."""

    def __init__(self, python: str, interpreter_env: dict[str, str]) -> None:
        self.interpreter_env = interpreter_env
        self.process = subprocess.Popen(
            [python, str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=interpreter_env,
            start_new_session=True,  # a Ctrl-C of the test run is not the children's
        )
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pids: dict[int, int] = {}
        self._ended: dict[int, Ended] = {}
        self.alive = True
        threading.Thread(target=self._read, daemon=True, name="action-server").start()

    def _read(self) -> None:
        out: IO[bytes] | None = self.process.stdout
        assert out is not None
        for line in out:
            message = json.loads(line)
            with self._changed:
                if "id" in message:
                    self._pids[message["id"]] = message["pid"]
                else:
                    self._ended[message["pid"]] = Ended(
                        message["returncode"], time.time(), message["peak_rss_mb"], message["cpu_s"]
                    )
                self._changed.notify_all()
        with self._changed:
            self.alive = False
            self._changed.notify_all()

    def spawn(
        self, argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path
    ) -> int | None:
        """Start one run; its pid, or None when the server is gone (start it the plain way then)."""
        assert self.process.stdin is not None
        with self._changed:
            if not self.alive:
                return None
            number = next(self._ids)
            request = {
                "id": number,
                "argv": argv,
                "env": env,
                "cwd": str(cwd),
                "stdout": str(stdout),
                "stderr": str(stderr),
            }
            try:
                self.process.stdin.write((json.dumps(request) + "\n").encode())
                self.process.stdin.flush()
            except OSError:
                return None
            while number not in self._pids and self.alive:
                self._changed.wait()
            return self._pids.pop(number, None)

    def ended(self, pid: int, timeout: float | None) -> Ended | None:
        """The child's end, waiting at most ``timeout`` seconds (0: just look; None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while pid not in self._ended:
                if not self.alive:  # its parent died with it: reaped by init, the status is lost
                    return Ended(-9, time.time(), 0.0, 0.0)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(left)
            return self._ended[pid]


class Forked:
    """A forked run, with the ``pid``, ``returncode`` and ``send_signal`` the harness uses of Popen."""

    def __init__(self, server: Server, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)


_servers: dict[tuple[str, tuple[tuple[str, str], ...]], Server] = {}
_servers_lock = threading.Lock()


def interpreter_env(env: dict[str, str]) -> dict[str, str]:
    """What of an environment shapes the interpreter itself (read once, at its start)."""
    shaping = ("PATH", "LANG", "LC_ALL", "LC_CTYPE")
    return {k: v for k, v in env.items() if k.startswith("PYTHON") or k in shaping}


def server_for(argv: list[str], env: dict[str, str], scripts: tuple[Path, ...]) -> Server | None:
    """The server that can start ``argv`` with ``env`` as a plain start would, or None."""
    if os.environ.get("RUN_CANARY_ACTION_FORK", "1") == "0":
        return None
    if len(argv) != 2 or Path(argv[0]) != Path(sys.executable) or Path(argv[1]) not in scripts:
        return None
    shaping = interpreter_env(env)
    key = (argv[0], tuple(sorted(shaping.items())))
    with _servers_lock:
        server = _servers.get(key)
        if server is None or not server.alive:
            server = _servers[key] = Server(argv[0], shaping)
        return server
