"""The caller's side of a fork server: a process that has imported a program once and forks a child
per request. The emulator's samples (``zygote.py``) are started this way, and so is the action in the
test harness (``devtools/action_server.py``).

Protocol, one JSON object per line: each request carries an ``id`` (added here); the server answers
``{"id", "pid"}`` as soon as it has forked, and ``{"pid", "returncode"}`` (optionally ``cpu_s`` and
``peak_rss_mb``) once that child has ended, ``returncode`` negative for a signal as with
``subprocess``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Ended", "ForkClient"]


@dataclass(frozen=True)
class Ended:
    """How a child ended: exit code (negative: the signal), when that was learnt, its peak memory and
    CPU (0.0 where the server does not report them)."""

    returncode: int
    ended: float
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0


class ForkClient:
    """One fork server process: start children, learn when they end."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], name: str) -> None:
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,  # a Ctrl-C of the caller is not its children's
        )
        self._ids = itertools.count()
        self._changed = threading.Condition()
        self._pids: dict[int, int] = {}
        self._ended: dict[int, Ended] = {}
        self.alive = True
        threading.Thread(target=self._read, daemon=True, name=name).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self._changed:
                if "id" in message:
                    self._pids[message["id"]] = message["pid"]
                    # The server answers a fork before it can reap that child: an end recorded under
                    # this pid is an older child's (pids wrap around, at 32,768 by default), and read
                    # as this one's it would say a process that just started has ended.
                    self._ended.pop(message["pid"], None)
                else:
                    self._ended[message["pid"]] = Ended(
                        message["returncode"],
                        time.time(),
                        message.get("peak_rss_mb", 0.0),
                        message.get("cpu_s", 0.0),
                    )
                self._changed.notify_all()
        with self._changed:
            self.alive = False
            self._changed.notify_all()

    def spawn(self, request: Mapping[str, object]) -> int | None:
        """Start one child; its pid, or None when the server is gone (start it another way then)."""
        assert self.process.stdin is not None
        with self._changed:
            if not self.alive:
                return None
            number = next(self._ids)
            try:
                self.process.stdin.write((json.dumps({**request, "id": number}) + "\n").encode())
                self.process.stdin.flush()
            except OSError:
                return None
            while number not in self._pids and self.alive:
                self._changed.wait()
            return self._pids.pop(number, None)

    def close(self) -> None:
        """End the server: no more requests (it exits once its children have ended)."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait()

    def ended(self, pid: int, timeout: float | None) -> Ended | None:
        """The child's end, waiting at most ``timeout`` seconds (0: just look; None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while pid not in self._ended:
                if not self.alive:  # the server died: its children went to init, their status with them
                    return Ended(-signal.SIGKILL, time.time())
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._changed.wait(left)
            return self._ended[pid]
