"""The action, imported once and forked for each run: the fast path of ``devtools.harness``.

Starting ``entrypoint.py`` or ``post.py`` costs about 0.3 s of CPU before the first request, nearly all
of it imports; the end-to-end tests start the action some 500 times. This server imports what both
scripts import, then forks once per run. Each child becomes the run as a fresh interpreter would: its
own session (so signals and ``killpg`` reach it alone), working directory, environment, arguments,
stdin from ``/dev/null`` and stdout/stderr to the run's files, then runs the script as ``__main__`` and
exits the way the interpreter does (non-daemon threads joined, ``atexit`` run, streams flushed).

Started with the same interpreter and interpreter variables (``PYTHON*``) as the runs it serves.
Protocol, one JSON object per line: stdin gets ``{"id", "argv", "env", "cwd", "stdout", "stderr"}``;
stdout answers ``{"id", "pid"}`` at once and ``{"pid", "returncode", "cpu_s", "peak_rss_mb"}`` when that
child has ended (``returncode`` negative for a signal, as with ``subprocess``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import sys
import threading
import traceback
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import deployer.main  # noqa: E402, F401  (what entrypoint.py and post.py import first)

# Imported by nearly every run on its way (found by comparing sys.modules before and after the
# end-to-end tests' runs): Application Default Credentials' lookup, and requests' .netrc reading.
for _name in ("google.auth._cloud_sdk", "google.auth._helpers", "netrc", "pkgutil", "resource"):
    importlib.import_module(_name)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter exits with for ``SystemExit(code)`` (a message is printed, exit 1)."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    sys.stderr.write(f"{exc.code}\n")
    return 1


def _become(request: dict[str, Any], inherited: tuple[int, ...]) -> None:
    """In the child: take on the run's session, place, environment and files."""
    signal.set_wakeup_fd(-1)  # the server's pipes (answers, wake-up): a run neither holds nor writes them
    for fd in inherited:
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_APPEND | os.O_CREAT),
        (2, request["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh interpreter has them
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.argv = list(request["argv"][1:])  # [python, script, ...]: the script is argv[0]
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))


def _child(request: dict[str, Any], inherited: tuple[int, ...]) -> None:
    """Run one script as ``__main__`` and exit as the interpreter would; never returns."""
    code = 1
    interrupted = False
    try:
        _become(request, inherited)
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except KeyboardInterrupt:
            traceback.print_exc()
            interrupted = True
        except BaseException:
            traceback.print_exc()
        threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads, as at exit
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed stream: nothing left to save
                stream.flush()
        if interrupted:  # an uncaught KeyboardInterrupt ends the interpreter by SIGINT (exit -2)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


def serve() -> None:
    """Fork a child per request line; report each start and each end, until stdin closes and every
    child has ended. An ending child wakes the loop (SIGCHLD through a pipe): no polling."""
    answers = os.fdopen(os.dup(1), "w")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the pipe, nothing else
    running: set[int] = set()
    pending = b""
    open_ = True
    while open_ or running:
        ready, _, _ = select.select([0, wake_r] if open_ else [wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        if 0 in ready:
            chunk = os.read(0, 1 << 16)
            open_ = bool(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request, (answers.fileno(), wake_r, wake_w))
                running.add(pid)
                answers.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
                answers.flush()
        _reap(running, answers)


def _reap(running: set[int], answers: Any) -> None:
    """Report every child that has ended."""
    while running:
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            return
        running.discard(pid)
        ended = {
            "pid": pid,
            "returncode": os.waitstatus_to_exitcode(status),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
        }
        answers.write(json.dumps(ended) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
