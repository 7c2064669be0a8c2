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
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

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


class _Zygote:
    """One ``zygote.py`` for this process: start samples, learn when they end."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-S", str(ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")},
            start_new_session=True,  # a Ctrl-C of the emulator is not its revisions'
        )
        self._ids = itertools.count()
        self._changed = threading.Condition()
        self._pids: dict[int, int] = {}
        self._ended: dict[int, int] = {}
        self.alive = True
        threading.Thread(target=self._read, daemon=True, name="emulator-zygote").start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self._changed:
                if "id" in message:
                    self._pids[message["id"]] = message["pid"]
                else:
                    self._ended[message["pid"]] = message["returncode"]
                self._changed.notify_all()
        with self._changed:
            self.alive = False
            self._changed.notify_all()

    def spawn(self, args: list[str], env: Mapping[str, str], log_path: Path) -> int | None:
        """Start one sample; its pid, or None when the zygote is gone."""
        assert self.process.stdin is not None
        with self._changed:
            if not self.alive:
                return None
            number = next(self._ids)
            request = {"id": number, "args": args, "env": dict(env), "log": str(log_path)}
            try:
                self.process.stdin.write((json.dumps(request) + "\n").encode())
                self.process.stdin.flush()
            except OSError:
                return None
            while number not in self._pids and self.alive:
                self._changed.wait()
            return self._pids.pop(number, None)

    def ended(self, pid: int, timeout: float | None) -> int | None:
        """The child's exit code, waiting at most ``timeout`` seconds (0: just look)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while pid not in self._ended:
                if not self.alive:  # the zygote died: its children went to init, their codes with them
                    return -signal.SIGKILL
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(left)
            return self._ended.pop(pid)


class _Forked:
    """A sample forked by the zygote, with ``Popen``'s ``pid``, ``poll``, ``wait`` and ``returncode``."""

    def __init__(self, zygote: _Zygote, pid: int) -> None:
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
            self.returncode = self._zygote.ended(self.pid, timeout)
        return self.returncode


def _sample_args(argv: Sequence[str]) -> list[str] | None:
    """The sample's own arguments when ``argv`` runs a built-in sample, else None."""
    prefix = builtin_argv("")[:-1]
    return list(argv[len(prefix) :]) if list(argv[: len(prefix)]) == prefix and argv[len(prefix) :] else None


def start(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> Process:
    """Start ``argv`` in its own session with output appended to ``log_path``; OSError if it cannot."""
    args = _sample_args(argv)
    zygote = _zygote() if args is not None else None
    pid = zygote.spawn(args, env, log_path) if zygote and args is not None else None
    if zygote and pid is not None:
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


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _zygote() -> _Zygote | None:
    """This process's zygote, started on first use (again if it died); None when turned off."""
    global _ZYGOTE
    if os.environ.get("CLOUD_RUN_EMULATOR_FORK", "1") == "0":
        return None
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or not _ZYGOTE.alive:
            _ZYGOTE = _Zygote()
        return _ZYGOTE
