"""Ports for revision processes, never handed to two processes at once.

A revision's process binds the ``PORT`` it is given some time after the data plane chose it. A port
that ``bind(0)`` picked and released is free again in that window: for any outgoing connection (they
come from the same ephemeral range) and for any other emulator on the machine (pytest-xdist runs
eight). A revision that loses its port either dies ("Address already in use") or, worse, is reached
at a port where another emulator's revision listens, and answers as that one.

So revision ports come from below the kernel's ephemeral range, in blocks: a data plane holds an
exclusive ``flock`` on one block's lock file (the kernel drops it when the process dies, so nothing
goes stale) and hands out that block's ports in turn, skipping any that something else has bound.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FIRST_PORT = 20000
BLOCK_SIZE = 256
LOCK_DIR = Path(tempfile.gettempdir()) / "cloud-run-emulator-ports"


def ephemeral_floor() -> int:
    """The lowest port the kernel hands out for ``bind(0)`` and outgoing connections."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


def block_starts(floor: int) -> range:
    """The first port of each whole block between FIRST_PORT and ``floor``."""
    return range(FIRST_PORT, floor - BLOCK_SIZE + 1, BLOCK_SIZE)


def bindable(host: str, port: int) -> bool:
    """True when nothing is bound to ``host:port`` (no SO_REUSEADDR: a lingering socket counts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def kernel_port(host: str) -> int:
    """A port the kernel picks: the fallback when no block is free (racy, see the module doc)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PortBlocks:
    """Hands out ports from blocks this process holds a lock on; ``release`` a port when it is free."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._held: list[tuple[int, IO[bytes]]] = []
        self._taken: set[int] = set()
        self._cursor = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        """A port no other holder hands out and nothing is bound to right now."""
        with self._lock:
            while True:
                port = next(self._free(), None)
                if port is not None:
                    self._taken.add(port)
                    return port
                if not self._claim():
                    return kernel_port(self.host)

    def release(self, port: int) -> None:
        """The process on ``port`` is gone: the port may be handed out again."""
        with self._lock:
            self._taken.discard(port)

    def close(self) -> None:
        """Give up every block (the kernel would at exit anyway)."""
        with self._lock:
            for _, handle in self._held:
                handle.close()
            self._held.clear()

    def _free(self) -> Iterator[int]:
        """The held blocks' ports from the cursor on, round robin, that are neither taken nor bound."""
        ports = [start + i for start, _ in self._held for i in range(BLOCK_SIZE)]
        for offset in range(len(ports)):
            index = (self._cursor + offset) % len(ports)
            port = ports[index]
            if port not in self._taken and bindable(self.host, port):
                self._cursor = index + 1
                yield port

    def _claim(self) -> bool:
        """Lock one more block no other process holds; False when none is left."""
        held = {start for start, _ in self._held}
        with contextlib.suppress(OSError):
            LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for start in block_starts(ephemeral_floor()):
            if start in held:
                continue
            try:  # another user's lock file (or directory) is not ours to open: a block we cannot hold
                handle = (LOCK_DIR / f"{start}.lock").open("ab")
            except OSError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._held.append((start, handle))
            return True
        return False
