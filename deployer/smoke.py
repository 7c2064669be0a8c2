"""Smoke check of a URL: retry a GET until it answers as expected or the deadline passes.

A new revision may need a few seconds before its tag URL answers, so failures are retried with
backoff inside one deadline (the shared :class:`deployer.retry.Retrier`: 0.5 s doubling to 5 s, no
jitter, cancellable waits); the result says why it failed in one short line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from deployer import knative
from deployer.errors import AuthError
from deployer.knative import Obj
from deployer.redact import redact_url
from deployer.retry import UNLIMITED, Retrier, Retry, RetryPolicy, never
from deployer.sessions import plain
from deployer.settings import SmokeAuth, SmokeSettings

FIRST_DELAY = 0.5
MAX_DELAY = 5.0
MAX_REQUEST_TIMEOUT = 10.0
MIN_REQUEST_TIMEOUT = 0.2
MAX_BODY = 1 << 20  # bytes of the body read for matching


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


def target(known: str | None, svc: Obj, tag: str) -> str:
    """The URL a step smoke-checks: the new revision's own tag URL, never the service URL (which would
    reach the old release too). Known from an earlier step, else the one the service now reports for
    the run's tag; "" when it reports none."""
    return known or knative.tag_url(svc, tag) or ""


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


class TokenRule:
    """When requests to one URL carry an ID token (``smoke_auth``): always with ``id_token``, never with
    ``none``, and with ``auto`` from the first 401/403 answered without one (a private service), so a
    public service never gets one. The smoke check and ``load_rps`` both follow it (``deployer.main``
    hands the load one per URL)."""

    def __init__(self, auth: SmokeAuth, id_token: Callable[[], str] | None) -> None:
        self.auth = auth
        self.id_token = id_token
        self.sending = auth == SmokeAuth.ID_TOKEN

    def headers(self) -> dict[str, str]:
        """The Authorization header to send now ({} for none); AuthError (no token text in it) when a
        token is due and cannot be had."""
        if not self.sending or self.auth == SmokeAuth.NONE:
            return {}
        if self.id_token is None:
            raise AuthError("smoke_auth is id_token but no ID token source is available")
        try:
            token = self.id_token()
        except Exception as exc:
            raise AuthError(f"could not get an ID token: {exc}") from None
        return {"Authorization": f"Bearer {token}"}

    def answered(self, status: int | None) -> bool:
        """``auto``: a 401/403 to a request without a token means "send one from now on"; True when
        this answer made that switch."""
        if (
            self.auth == SmokeAuth.AUTO
            and not self.sending
            and status in (401, 403)
            and self.id_token is not None
        ):
            self.sending = True
            return True
        return False


class _Checker:
    """State of one smoke check: the URL, and whether to send the ID token (``TokenRule``)."""

    def __init__(
        self,
        full_url: str,
        settings: SmokeSettings,
        session: requests.Session,
        id_token: Callable[[], str] | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.url = full_url
        self.shown = redact_url(full_url)  # for messages: a smoke_path may carry a query
        self.settings = settings
        self.session = session
        self.log = log
        self.tokens = TokenRule(settings.auth, id_token)

    def headers(self) -> dict[str, str]:
        try:
            return self.tokens.headers()
        except AuthError as exc:
            raise _Fatal(str(exc)) from None

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
        # The body is not shown: an app that echoes its environment would print the revision's
        # env values and the secrets Cloud Run resolved into it.
        kind = resp.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
        return _Outcome(
            False,
            status,
            f"{status} but body did not match {self.settings.body.pattern!r} "
            f"({len(body)} characters, {kind}; not shown)",
        )

    def maybe_switch_to_token(self, outcome: _Outcome) -> bool:
        """auto mode: on 401/403 without a token, send the ID token from now on."""
        if not self.tokens.answered(outcome.status):
            return False
        if self.log:
            self.log(f"GET {self.shown} -> {outcome.status}; retrying with an ID token")
        return True


class _Fatal(Exception):
    """A failure that retrying cannot fix."""


def check(
    url: str,
    settings: SmokeSettings,
    *,
    session: requests.Session | None = None,
    id_token: Callable[[], str] | None = None,
    deadline: float | None = None,
    should_stop: Callable[[], bool] = never,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
    on_attempt: Callable[[str, float, float, int | None], None] | None = None,
) -> SmokeResult:
    """GET ``url + settings.path`` until it passes or time runs out (``deadline`` is monotonic).

    ``on_attempt(url, sent, answered, status)`` hears of every request (epoch seconds; status None
    without an answer): the canary analysis leaves the action's own requests out of the metrics.

    Without ``deadline`` the budget is ``settings.timeout``; after the last wait (cut short at the
    deadline) there is always one more attempt.
    """
    start = time.monotonic()
    end = start + settings.timeout if deadline is None else min(deadline, start + settings.timeout)
    own = session is None
    checker = _Checker(_join(url, settings.path), settings, session or plain(), id_token, log)
    policy = RetryPolicy(
        attempts=UNLIMITED, base_delay=FIRST_DELAY, max_delay=MAX_DELAY, total=end - start, jitter=False
    )
    retrier = Retrier(policy, sleep=sleep, should_stop=should_stop)
    attempts = 0
    outcome = _Outcome(False, None, "no attempt made")

    def attempt() -> _Outcome:
        nonlocal attempts, outcome
        while True:
            attempts += 1
            timeout = max(MIN_REQUEST_TIMEOUT, min(MAX_REQUEST_TIMEOUT, end - time.monotonic()))
            sent = time.time()
            outcome = checker.attempt(timeout)
            if on_attempt is not None:
                on_attempt(checker.url, sent, time.time(), outcome.status)
            if outcome.ok:
                return outcome
            if not checker.maybe_switch_to_token(outcome):  # a switch is retried at once
                raise Retry(_Failed(outcome))

    def retrying(error: Exception, delay: float, n: int) -> None:
        if log:
            log(f"GET {checker.shown} -> {outcome.reason}; retrying in {delay:.1f} s")

    try:
        cancelled = f"smoke check of {checker.shown} cancelled"
        outcome = retrier.run(attempt, cancelled=cancelled, on_retry=retrying)
    except _Fatal as exc:
        return _result(checker.shown, outcome, attempts, start, str(exc))
    except _Failed:
        pass
    finally:
        if own:
            checker.session.close()
    return _result(checker.shown, outcome, attempts, start)


class _Failed(Exception):
    """The last attempt did not pass (carries its outcome to the retrier)."""

    def __init__(self, outcome: _Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


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
