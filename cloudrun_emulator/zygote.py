"""The built-in samples, imported once and forked for each revision or task (``launcher.py`` talks to it).

Run as ``python -S cloudrun_emulator/zygote.py``: standard library only, like the samples. Each child
becomes the sample as a fresh ``python -S samples.py ARGS`` would: its own session (so ``killpg``
reaches it and what it spawns), the given environment and no other, stdin from ``/dev/null``, stdout
and stderr appended to its log, default signal handlers; it exits with the sample's code.

Protocol, one JSON object per line: stdin gets ``{"id", "args", "env", "log"}``; stdout answers
``{"id", "pid"}`` at once and ``{"pid", "returncode"}`` when that child has ended (negative for a
signal, as with ``subprocess``). The server exits when stdin closes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
from typing import Any

import samples  # beside this file: the directory of the script run is first on sys.path


def _child(request: dict[str, Any], inherited: tuple[int, ...]) -> None:
    """Become the sample and run it; never returns."""
    code = 1
    try:
        for fd in inherited:  # the server's answers and wake-up pipe: a sample must not hold them
            os.close(fd)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        for fd, source in ((0, null), (1, log), (2, log)):
            os.dup2(source, fd)
        os.close(null)
        os.close(log)
        os.environ.clear()
        os.environ.update(request["env"])
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        # Unbuffered, as PYTHONUNBUFFERED makes a sample started on its own: the log keeps the order.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), write_through=True, errors="backslashreplace"
        )
        code = samples.main(list(request["args"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def serve() -> None:
    """Fork a child per request line; report each start and each end, until stdin closes."""
    answers = os.fdopen(os.dup(1), "w")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the pipe, nothing else
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(answers)
        if 0 in ready:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, (answers.fileno(), wake_r, wake_w))
                answers.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
                answers.flush()


def _reap(answers: Any) -> None:
    """Report every child that has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        answers.write(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
