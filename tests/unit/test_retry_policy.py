"""The one retry policy shared by the API client, the analysis and the smoke check."""

from __future__ import annotations

import email.utils
from collections.abc import Callable

import pytest

from deployer.retry import STOP_SLICE, Cancelled, Retrier, Retry, RetryPolicy, parse_retry_after


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, retry_after: float | None = None) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise Retry(ValueError(f"failure {len(calls)}"), retry_after)
        return "ok"

    return calls, attempt


def test_without_jitter_waits_double_up_to_the_cap() -> None:
    t = FakeTime()
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=2.0, total=100.0, jitter=False)
    calls, attempt = failing(5)
    assert Retrier(policy, sleep=t.sleep, clock=t.clock).run(attempt, cancelled="x") == "ok"
    assert t.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0] and len(calls) == 6


def test_full_jitter_stays_under_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    for n in range(1, 6):
        cap = min(4.0, 2 ** (n - 1))
        assert all(0 <= policy.delay(n, None, 100.0) <= cap for _ in range(50))


def test_retry_after_wins_but_never_past_the_budget() -> None:
    t = FakeTime()
    policy = RetryPolicy(attempts=10, base_delay=0.5, total=10.0, jitter=False)
    _, attempt = failing(3, retry_after=4.0)
    assert Retrier(policy, sleep=t.sleep, clock=t.clock).run(attempt, cancelled="x") == "ok"
    assert t.sleeps == [4.0, 4.0, 2.0]  # the third wait is cut to what is left of the 10 s


def test_gives_up_with_the_last_error_after_attempts() -> None:
    t = FakeTime()
    calls, attempt = failing(99)
    with pytest.raises(ValueError, match="failure 3"):
        Retrier(RetryPolicy(attempts=3, jitter=False), sleep=t.sleep, clock=t.clock).run(
            attempt, cancelled="x"
        )
    assert len(calls) == 3


def test_other_exceptions_are_not_retried() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise KeyError("final")

    with pytest.raises(KeyError):
        Retrier(RetryPolicy()).run(attempt, cancelled="x")
    assert calls == [1]


def test_a_cancel_during_a_long_wait_is_noticed_within_a_slice() -> None:
    t = FakeTime()
    policy = RetryPolicy(attempts=5, base_delay=30.0, max_delay=30.0, total=100.0, jitter=False)
    _, attempt = failing(5)
    retrier = Retrier(policy, sleep=t.sleep, clock=t.clock, should_stop=lambda: t.now >= 1.0)
    with pytest.raises(Cancelled, match="stopped before GET"):
        retrier.run(attempt, cancelled="stopped before GET")
    assert 1.0 <= t.now <= 1.0 + STOP_SLICE + 1e-9  # not the 30 s the policy asked for


def test_parse_retry_after() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(email.utils.formatdate(100.0, usegmt=True), now=90.0) == pytest.approx(10.0)
    assert parse_retry_after(email.utils.formatdate(100.0, usegmt=True), now=200.0) == 0.0
