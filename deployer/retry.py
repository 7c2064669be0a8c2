"""The one retry policy: which failures are repeated, how long to wait, and a sleep that can be cancelled.

The API client, the Cloud Monitoring queries of the canary analysis and the smoke check all retry
through :class:`Retrier`, so there is one place that decides backoff, honours ``Retry-After``, keeps
within a time budget and notices a cancellation while it waits.
"""

from __future__ import annotations

import email.utils
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from deployer.errors import ApiError, Conflict
from deployer.errors import Cancelled as Cancelled

T = TypeVar("T")

# Transient answers worth repeating: 408 Request Timeout and 429 Too Many Requests (the request was
# not processed), and the 5xx that Google documents as retryable with backoff (500, 502, 503, 504).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
STOP_SLICE = 0.1  # seconds between should_stop checks while waiting
UNLIMITED = sys.maxsize  # attempts: only the time budget ends the retries
CONFLICT_RETRIES = 3  # read-modify-writes repeated after someone else's write (409)


def never() -> bool:
    """The default should_stop: nothing ever cancels."""
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how often and for how long.

    Exponential backoff from ``base_delay`` doubling up to ``max_delay``, with full jitter unless
    ``jitter`` is off (then the waits are exactly base, 2*base, ...); a server's Retry-After wins.
    ``total`` bounds the time from the first attempt to the start of the last one. The timeouts are
    per HTTP request.
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 8.0
    total: float = 60.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    jitter: bool = True

    def delay(self, failures: int, retry_after: float | None, remaining: float) -> float:
        """How long to wait after the ``failures``-th failed attempt; never past the budget."""
        if retry_after is not None:
            wait = retry_after
        else:
            cap = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
            wait = random.uniform(0, cap) if self.jitter else cap
        return max(0.0, min(wait, remaining))


class Retry(Exception):
    """Raised by an attempt: this failure may be repeated (after ``retry_after`` seconds if given)."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Retrier:
    """Runs attempts under a :class:`RetryPolicy`, waiting between them in cancellable slices."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        should_stop: Callable[[], bool] = never,
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.should_stop = should_stop

    def run(
        self,
        attempt: Callable[[], T],
        *,
        cancelled: str,
        on_retry: Callable[[Exception, float, int], None] | None = None,
    ) -> T:
        """Call ``attempt`` until it returns, raises anything but :class:`Retry`, or the policy gives up.

        When it gives up, the last ``Retry.error`` is raised. ``cancelled`` is the message of the
        :class:`Cancelled` raised when should_stop turns true; ``on_retry(error, delay, attempt_no)``
        is told before each wait (for the log).
        """
        start = self.clock()
        n = 0
        while True:
            self.check(cancelled)
            n += 1
            try:
                return attempt()
            except Retry as failure:
                remaining = start + self.policy.total - self.clock()
                if n >= self.policy.attempts or remaining <= 0:
                    raise failure.error from None
                delay = self.policy.delay(n, failure.retry_after, remaining)
                if on_retry is not None:
                    on_retry(failure.error, delay, n)
                self.pause(delay, cancelled)

    def pause(self, seconds: float, cancelled: str) -> None:
        """Sleep, in slices of STOP_SLICE when a should_stop hook was given, so a cancel is prompt."""
        if self.should_stop is never:
            self.sleep(seconds)
            return
        left = seconds
        while left > 0:
            self.check(cancelled)
            step = min(STOP_SLICE, left)
            self.sleep(step)
            left -= step
        self.check(cancelled)

    def check(self, cancelled: str) -> None:
        """Raise :class:`Cancelled` with this message if the caller wants us to stop."""
        if self.should_stop():
            raise Cancelled(cancelled)


def is_conflict(error: ApiError) -> bool:
    """A 409 that re-reading can resolve: ABORTED (a stale resourceVersion or etag), not ALREADY_EXISTS."""
    return isinstance(error, Conflict) and error.reason != "ALREADY_EXISTS"


def retry_conflicts(
    attempt: Callable[[int], T],
    *,
    again: Callable[[ApiError], bool] = is_conflict,
    retries: int = CONFLICT_RETRIES,
) -> T:
    """A read-modify-write: ``attempt(n)`` reads, decides and writes; when it fails with an error
    ``again`` accepts (by default a 409: someone else wrote since our read), it runs once more on a
    fresh read, at most ``retries`` more times; then (or for any other error) the error is raised.
    ``again`` may note what to do differently next time (and log that it retries)."""
    for n in range(retries + 1):
        try:
            return attempt(n)
        except ApiError as exc:
            if n == retries or not again(exc):
                raise
    raise AssertionError("unreachable")


__all__ = [
    "CONFLICT_RETRIES",
    "RETRYABLE_STATUSES",
    "Cancelled",
    "Retrier",
    "Retry",
    "RetryPolicy",
    "is_conflict",
    "never",
    "parse_retry_after",
    "retry_conflicts",
]
