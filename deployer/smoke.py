"""Smoke check of a URL: retry a GET until it answers as expected or the deadline passes.

A new revision may need a few seconds before its tag URL answers, so failures are retried with
backoff inside one deadline; the result says why it failed in one short line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from deployer.client import Cancelled
from deployer.settings import SmokeAuth, SmokeSettings

FIRST_DELAY = 0.5
MAX_DELAY = 5.0
MAX_REQUEST_TIMEOUT = 10.0
MIN_REQUEST_TIMEOUT = 0.2
MAX_BODY = 1 << 20  # bytes of the body read for matching
EXCERPT = 200
_STOP_SLICE = 0.1


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    status: int | None
    attempts: int
    detail: str
    elapsed: float


@dataclass
class _Outcome:
    """One attempt: passed, or the reason it did not."""

    ok: bool
    status: int | None
    reason: str


def _never() -> bool:
    return False


def _join(url: str, path: str) -> str:
    if not path or path == "/":
        return url.rstrip("/") + "/"
    return url.rstrip("/") + "/" + path.lstrip("/")


def _read_body(resp: requests.Response) -> str:
    """At most MAX_BODY bytes of the body, decoded leniently."""
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    encoding = resp.encoding or "utf-8"
    try:
        return b"".join(chunks)[:MAX_BODY].decode(encoding, errors="replace")
    except LookupError:
        return b"".join(chunks)[:MAX_BODY].decode("utf-8", errors="replace")


def _excerpt(text: str, secret: str | None) -> str:
    """Short one-line excerpt with any token we sent blanked out (echo servers exist)."""
    if secret:
        text = text.replace(secret, "***")
    flat = " ".join(text.split())
    return flat[:EXCERPT] + ("..." if len(flat) > EXCERPT else "")


class _Checker:
    """State of one smoke check: whether to send the ID token, and the last token sent."""

    def __init__(
        self,
        full_url: str,
        settings: SmokeSettings,
        session: requests.Session,
        id_token: Callable[[], str] | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.url = full_url
        self.settings = settings
        self.session = session
        self.id_token = id_token
        self.log = log
        self.send_token = settings.auth == SmokeAuth.ID_TOKEN
        self.last_token: str | None = None

    def headers(self) -> dict[str, str]:
        if not self.send_token or self.settings.auth == SmokeAuth.NONE:
            return {}
        if self.id_token is None:
            raise _Fatal("smoke_auth is id_token but no ID token source is available")
        try:
            self.last_token = self.id_token()
        except Exception as exc:
            raise _Fatal(f"could not get an ID token: {exc}") from None
        return {"Authorization": f"Bearer {self.last_token}"}

    def attempt(self, timeout: float) -> _Outcome:
        try:
            resp = self.session.get(
                self.url, headers=self.headers(), timeout=timeout, allow_redirects=False, stream=True
            )
        except requests.RequestException as exc:
            return _Outcome(False, None, f"connection error ({type(exc).__name__})")
        with resp:
            status = resp.status_code
            if not self.settings.statuses.accepts(status):
                return _Outcome(False, status, f"{status} (expected {self.settings.statuses})")
            if self.settings.body is None:
                return _Outcome(True, status, str(status))
            body = _read_body(resp)
        if self.settings.body.search(body):
            return _Outcome(True, status, str(status))
        return _Outcome(
            False,
            status,
            f"{status} but body did not match {self.settings.body.pattern!r}: "
            f"{_excerpt(body, self.last_token)!r}",
        )

    def maybe_switch_to_token(self, outcome: _Outcome) -> bool:
        """auto mode: on 401/403 without a token, send the ID token from now on."""
        if (
            self.settings.auth == SmokeAuth.AUTO
            and not self.send_token
            and outcome.status in (401, 403)
            and self.id_token is not None
        ):
            self.send_token = True
            if self.log:
                self.log(f"GET {self.url} -> {outcome.status}; retrying with an ID token")
            return True
        return False


class _Fatal(Exception):
    """A failure that retrying cannot fix."""


def check(
    url: str,
    settings: SmokeSettings,
    *,
    session: requests.Session | None = None,
    id_token: Callable[[], str] | None = None,
    deadline: float | None = None,
    should_stop: Callable[[], bool] = _never,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> SmokeResult:
    """GET ``url + settings.path`` until it passes or time runs out (``deadline`` is monotonic)."""
    start = time.monotonic()
    end = start + settings.timeout if deadline is None else min(deadline, start + settings.timeout)
    own = session is None
    checker = _Checker(_join(url, settings.path), settings, session or requests.Session(), id_token, log)
    attempts, delay = 0, FIRST_DELAY
    outcome = _Outcome(False, None, "no attempt made")
    try:
        while True:
            if should_stop():
                raise Cancelled(f"smoke check of {checker.url} cancelled")
            attempts += 1
            timeout = max(MIN_REQUEST_TIMEOUT, min(MAX_REQUEST_TIMEOUT, end - time.monotonic()))
            try:
                outcome = checker.attempt(timeout)
            except _Fatal as exc:
                return _result(checker.url, outcome, attempts, start, str(exc))
            if outcome.ok:
                return _result(checker.url, outcome, attempts, start)
            if checker.maybe_switch_to_token(outcome):
                continue
            remaining = end - time.monotonic()
            if remaining <= 0:
                return _result(checker.url, outcome, attempts, start)
            if log:
                log(f"GET {checker.url} -> {outcome.reason}; retrying in {min(delay, remaining):.1f} s")
            _pause(min(delay, remaining), should_stop, sleep, checker.url)
            delay = min(delay * 2, MAX_DELAY)  # then one more attempt, even when the wait hit the deadline
    finally:
        if own:
            checker.session.close()


def _pause(seconds: float, should_stop: Callable[[], bool], sleep: Callable[[float], None], url: str) -> None:
    """Sleep in slices so a cancel is noticed promptly."""
    left = seconds
    while left > 0:
        if should_stop():
            raise Cancelled(f"smoke check of {url} cancelled")
        step = min(_STOP_SLICE, left)
        sleep(step)
        left -= step


def _result(
    url: str, outcome: _Outcome, attempts: int, start: float, fatal: str | None = None
) -> SmokeResult:
    elapsed = time.monotonic() - start
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
    if fatal:
        detail = f"GET {url}: {fatal} (after {tries})"
    else:
        detail = f"GET {url} -> {outcome.reason} after {tries}"
    return SmokeResult(outcome.ok and not fatal, outcome.status, attempts, detail, elapsed)
