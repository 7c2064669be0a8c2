"""Start a revision's or a task's process: a built-in sample forked from a warm interpreter, any
other command executed.

A built-in sample (``images.builtin_argv``) started as a new interpreter spends 35-50 ms of CPU on
``http.server``'s imports before it listens, and a test session starts about 900 of them. Forked
from ``zygote.py``, which imported the samples once, one starts in about a millisecond
(multiprocessing's fork server would re-run the embedding program's ``__main__`` in every child).
``CLOUD_RUN_EMULATOR_FORK=0`` starts every sample as a new interpreter.

Either way the caller gets the same handle: a process in its own session (so its group can be
signalled), stdin from /dev/null, stdout and stderr appended to the log file, and only the
environment it was given.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from cloudrun_emulator.forkclient import ForkClient
from cloudrun_emulator.images import builtin_argv

ZYGOTE = Path(__file__).with_name("zygote.py")

__all__ = ["Process", "signal_group", "start"]


class Process(Protocol):
    """What the data plane and the job runner need of a process (``subprocess.Popen`` has it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class _Forked:
    """A sample forked by the zygote, with ``Popen``'s ``pid``, ``poll``, ``wait`` and ``returncode``."""

    def __init__(self, zygote: ForkClient, pid: int) -> None:
        self._zygote = zygote
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self._look(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._look(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"sample {self.pid}", timeout or 0)
        return code

    def _look(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            ended = self._zygote.ended(self.pid, timeout)
            self.returncode = None if ended is None else ended.returncode
        return self.returncode


def _sample_args(argv: Sequence[str]) -> list[str] | None:
    """The sample's own arguments when ``argv`` runs a built-in sample, else None."""
    prefix = builtin_argv("")[:-1]
    return list(argv[len(prefix) :]) if list(argv[: len(prefix)]) == prefix and argv[len(prefix) :] else None


def start(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> Process:
    """Start ``argv`` in its own session with output appended to ``log_path``; OSError if it cannot."""
    args = _sample_args(argv)
    zygote = _zygote() if args is not None else None
    if zygote is not None:
        pid = zygote.spawn({"args": args, "env": dict(env), "log": str(log_path)})
        if pid is not None:  # else the zygote is gone: start it as a new interpreter
            return _Forked(zygote, pid)
    log: IO[bytes] = log_path.open("ab")
    try:
        return subprocess.Popen(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    finally:
        log.close()


def signal_group(process: Process, sig: signal.Signals) -> None:
    """Signal the process's whole group (it may have spawned children). A forked sample makes its
    group as it starts; until then the process alone is signalled."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        if process.poll() is None:  # not reaped: the pid is still this process's
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
    except PermissionError:
        pass


_ZYGOTE: ForkClient | None = None
_ZYGOTE_LOCK = threading.Lock()


def _zygote() -> ForkClient | None:
    """This process's zygote, started on first use (again if it died); None when turned off."""
    global _ZYGOTE
    if os.environ.get("CLOUD_RUN_EMULATOR_FORK", "1") == "0":
        return None
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or not _ZYGOTE.alive:
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
            _ZYGOTE = ForkClient([sys.executable, "-S", str(ZYGOTE)], env, "emulator-zygote")
        return _ZYGOTE
