"""``load_rps``: the action's own GET requests during a bake, so a quiet service gets data to judge.

``rps`` requests a second to ``smoke_path``, taking turns between the targets (``targets``: each gets
the same number), each request with an ID token when that URL's ``TokenRule`` says so (the smoke
check's rule: with ``smoke_auth: auto`` only after a 401/403). Bounded on every side: at most
``settings.MAX_LOAD_RPS`` a second, ``MAX_IN_FLIGHT`` at once (a request that would exceed it is
skipped and counted), ``REQUEST_TIMEOUT`` each; it runs only while a bake's window lasts or until the
run is cancelled, and says what it sent, what was answered, and what it could not send and why.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import requests

from deployer.errors import AuthError
from deployer.redact import redact_url

MAX_IN_FLIGHT = 16
REQUEST_TIMEOUT = 10.0


class TokenRule(Protocol):
    """When a request to one URL carries an ID token (``deployer.smoke.TokenRule``)."""

    def headers(self) -> dict[str, str]:
        """The headers to send now; AuthError when a token is due and cannot be had."""
        ...

    def answered(self, status: int | None) -> bool:
        """Hear an answer (a 401/403 may switch tokens on)."""
        ...


class Anonymous:
    """No ID token ever (an anonymous endpoint, or a test)."""

    def headers(self) -> dict[str, str]:
        return {}

    def answered(self, status: int | None) -> bool:
        return False


def targets(baseline: str, tag_url: str, baseline_url: str, service_url: str) -> tuple[str, ...]:
    """Where ``load_rps`` sends its requests during a bake: the new revision's tag URL and the other
    side of the comparison. With ``baseline: revision`` that is the baseline's tag URL (never the
    service URL: that load would land on the stable revisions too and tell the comparison nothing).
    With ``baseline: stable`` the revisions from before the run have no tag URL of their own, so
    the service URL: they get their share of it (the new revision the rest, as with real users)."""
    other = {"revision": baseline_url, "stable": service_url}.get(baseline, "")
    return tuple(url for url in (tag_url, other) if url)


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
        auth: Callable[[str], TokenRule] = lambda url: Anonymous(),
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = [join(u, path) for u in urls]
        self.rules = {join(u, path): auth(u) for u in urls}
        self.rps, self.session, self.should_stop, self.clock = rps, session, should_stop, clock
        self.sent = 0
        self.with_token = 0
        self.skipped = 0
        self.by_class: dict[str, int] = {}
        self.failed = 0  # sent, no answer (connection error, timeout)
        self.unsent = 0  # never sent: no ID token could be had for its URL
        self.refused: dict[str, str] = {}  # URL -> why no ID token could be had (no token text in it)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._in_flight = threading.Semaphore(MAX_IN_FLIGHT)
        self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sending (nothing is sent after this returns); requests in flight finish (each within
        REQUEST_TIMEOUT)."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        interval = 1.0 / self.rps
        start = self.clock()
        n = 0
        while not self._stop.is_set() and not self.should_stop():
            self._turn(self.targets[n % len(self.targets)])
            n += 1
            self._stop.wait(max(0.0, start + n * interval - self.clock()))

    def _turn(self, url: str) -> None:
        """One tick of the rate: a request to ``url``, unless it cannot be sent or too many are in flight."""
        with self._lock:
            if url in self.refused:
                self.unsent += 1
                return
        if self._in_flight.acquire(blocking=False):
            self._pool.submit(self._one, url)
        else:
            with self._lock:
                self.skipped += 1

    def _one(self, url: str) -> None:
        try:
            if self._stop.is_set():
                return  # stopped while queued: never sent
            rule = self.rules[url]
            try:
                headers = rule.headers()
            except AuthError as exc:
                # Not sent: the URL wants a token we cannot get; its later turns are not sent either
                # (each would mint again, and without a token it only answers 401/403).
                with self._lock:
                    self.unsent += 1
                    self.refused.setdefault(url, str(exc))
                return
            # Counted here, not when queued: a stop cancels what is queued, and that was never sent.
            with self._lock:
                self.sent += 1
                self.with_token += bool(headers)
            try:
                resp = self.session.get(url, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False)
            except requests.RequestException:
                with self._lock:
                    self.failed += 1
                return
            resp.close()
            rule.answered(resp.status_code)
            key = f"{resp.status_code // 100}xx"
            with self._lock:
                self.by_class[key] = self.by_class.get(key, 0) + 1
        finally:
            self._in_flight.release()

    def describe(self) -> str:
        """``load_rps 20: sent 120 GET requests to URL, URL: 119 2xx, 1 4xx, 119 with an ID token``; what
        was not sent, and why, follows."""
        with self._lock:
            where = ", ".join(redact_url(t) for t in self.targets)
            parts = [f"{v} {k}" for k, v in sorted(self.by_class.items())]
            if self.failed:
                parts.append(f"{self.failed} without an answer")
            if self.with_token:
                parts.append(f"{self.with_token} with an ID token")
            if self.skipped:
                parts.append(f"{self.skipped} skipped ({MAX_IN_FLIGHT} in flight)")
            if self.unsent:
                why = "; ".join(f"{redact_url(u)}: {reason}" for u, reason in self.refused.items())
                parts.append(f"{self.unsent} not sent ({why})")
            listed = f": {', '.join(parts)}" if parts else ""
            return f"load_rps {self.rps:g}: sent {self.sent} GET requests to {where}{listed}"


@contextlib.contextmanager
def running(
    urls: Sequence[str],
    rps: float | None,
    path: str,
    *,
    session: requests.Session,
    auth: Callable[[str], TokenRule] = lambda url: Anonymous(),
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Callable[[], str]]:
    """Load on ``urls`` while the block runs (nothing when ``rps`` is None; nothing is sent once the
    block is left); yields its report. ``auth(url)``: the ID-token rule of each URL."""
    if not rps or not urls:
        yield lambda: ""
        return
    load = Load(urls, rps, path, session=session, auth=auth, should_stop=should_stop)
    load.start()
    try:
        yield load.describe
    finally:
        load.stop()
