"""``load_rps``: the action's own GET requests during a bake, so a quiet service gets data to judge.

``rps`` requests a second to ``smoke_path``, taking turns between the tag URLs (the candidate's and
the baseline's: each gets the same number), with an ID token where the smoke check would send one.
Bounded on every side: at most ``settings.MAX_LOAD_RPS`` a second, ``MAX_IN_FLIGHT`` at once (a
request that would exceed it is skipped and counted), ``REQUEST_TIMEOUT`` each; it stops as soon as
the bake ends or the run is cancelled, and says what it sent.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import requests

from deployer.redact import redact_url

MAX_IN_FLIGHT = 16
REQUEST_TIMEOUT = 10.0


def targets(tag_url: str, baseline_url: str) -> tuple[str, ...]:
    """Where ``load_rps`` sends its requests during a bake: the new revision's tag URL and, with a
    baseline revision, the baseline's, so both sides get the same requests (never the service URL:
    that load would land on the stable revisions too and tell the comparison nothing)."""
    return tuple(url for url in (tag_url, baseline_url) if url)


def join(url: str, path: str) -> str:
    return url.rstrip("/") + "/" + path.lstrip("/")


class Load:
    """Requests at a steady rate on a background thread, until ``stop()``."""

    def __init__(
        self,
        urls: Sequence[str],
        rps: float,
        path: str,
        *,
        session: requests.Session,
        headers: Callable[[str], dict[str, str]] = lambda url: {},
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = [join(u, path) for u in urls]
        self.rps, self.session, self.headers, self.should_stop, self.clock = (
            rps,
            session,
            headers,
            should_stop,
            clock,
        )
        self.sent = 0
        self.skipped = 0
        self.by_class: dict[str, int] = {}
        self.failed = 0  # no answer (connection error, timeout)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._in_flight = threading.Semaphore(MAX_IN_FLIGHT)
        self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; requests in flight finish (each within REQUEST_TIMEOUT)."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        interval = 1.0 / self.rps
        start = self.clock()
        n = 0
        while not self._stop.is_set() and not self.should_stop():
            url = self.targets[n % len(self.targets)]
            if self._in_flight.acquire(blocking=False):
                self._pool.submit(self._one, url)
            else:
                with self._lock:
                    self.skipped += 1
            n += 1
            self._stop.wait(max(0.0, start + n * interval - self.clock()))

    def _one(self, url: str) -> None:
        # Counted here, not when queued: a stop cancels what is queued, and that was never sent.
        with self._lock:
            self.sent += 1
        try:
            resp = self.session.get(
                url, headers=self.headers(url), timeout=REQUEST_TIMEOUT, allow_redirects=False
            )
            resp.close()
            key = f"{resp.status_code // 100}xx"
            with self._lock:
                self.by_class[key] = self.by_class.get(key, 0) + 1
        except requests.RequestException:
            with self._lock:
                self.failed += 1
        finally:
            self._in_flight.release()

    def describe(self) -> str:
        """``load_rps: sent 120 GET /healthz (60 to each of 2 tag URLs): 120 2xx``."""
        with self._lock:
            classes = ", ".join(f"{v} {k}" for k, v in sorted(self.by_class.items())) or "no answer"
            extra = f", {self.failed} without an answer" if self.failed else ""
            extra += f", {self.skipped} skipped ({MAX_IN_FLIGHT} in flight)" if self.skipped else ""
            where = ", ".join(redact_url(t) for t in self.targets)
            return f"load_rps {self.rps:g}: sent {self.sent} GET requests to {where}: {classes}{extra}"


@contextlib.contextmanager
def running(
    urls: Sequence[str],
    rps: float | None,
    path: str,
    *,
    session: requests.Session,
    headers: Callable[[str], dict[str, str]] = lambda url: {},
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Callable[[], str]]:
    """Load on ``urls`` while the block runs (nothing when ``rps`` is None); yields its report."""
    if not rps or not urls:
        yield lambda: ""
        return
    load = Load(urls, rps, path, session=session, headers=headers, should_stop=should_stop)
    load.start()
    try:
        yield load.describe
    finally:
        load.stop()
