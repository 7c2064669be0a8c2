"""The harness's side of ``devtools/action_server.py``: one server per test process and interpreter
(a ``cloudrun_emulator.forkclient.ForkClient``, the client the emulator's zygote uses too), and a
process handle shaped like the part of ``subprocess.Popen`` the harness uses.

Used only when a run would start exactly as the server's children do: the same interpreter, the same
interpreter variables (``PYTHON*``), ``entrypoint.py`` or ``post.py`` with no other argument, and the
output captured to files. ``RUN_CANARY_ACTION_FORK=0`` turns it off (the benchmark does: it measures
a real start).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from cloudrun_emulator.forkclient import Ended, ForkClient

__all__ = ["Ended", "Forked", "Server", "server_for"]

SERVER = Path(__file__).with_name("action_server.py")


class Server(ForkClient):
    """One ``action_server.py``: start runs, learn when they end (``ForkClient.ended``)."""

    def __init__(self, python: str, interpreter_env: dict[str, str]) -> None:
        super().__init__([python, str(SERVER)], interpreter_env, "action-server")

    def start(
        self, argv: list[str], env: dict[str, str], cwd: Path, stdout: Path, stderr: Path
    ) -> int | None:
        """Start one run; its pid, or None when the server is gone (start it the plain way then)."""
        request = {"argv": argv, "env": env, "cwd": str(cwd), "stdout": str(stdout), "stderr": str(stderr)}
        return self.spawn(request)


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
