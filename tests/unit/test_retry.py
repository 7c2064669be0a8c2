"""The one conflict-retry helper (deployer.retry.retry_conflicts): pure, no server."""

from __future__ import annotations

import pytest

from deployer.errors import ApiError, Conflict
from deployer.retry import CONFLICT_RETRIES, is_conflict, retry_conflicts

ABORTED = Conflict(409, "ABORTED", "stale resourceVersion")
EXISTS = Conflict(409, "ALREADY_EXISTS", "revision web-2 exists")


def test_a_409_is_retried_on_a_fresh_attempt_and_the_write_lands() -> None:
    calls: list[int] = []

    def attempt(n: int) -> str:
        calls.append(n)
        if n < 2:
            raise ABORTED
        return "written"

    assert retry_conflicts(attempt) == "written"
    assert calls == [0, 1, 2]


def test_after_the_last_retry_the_409_is_raised() -> None:
    calls: list[int] = []

    def attempt(n: int) -> str:
        calls.append(n)
        raise ABORTED

    with pytest.raises(Conflict):
        retry_conflicts(attempt)
    assert calls == list(range(CONFLICT_RETRIES + 1))


def test_already_exists_and_other_errors_are_not_retried_by_default() -> None:
    assert is_conflict(ABORTED) and not is_conflict(EXISTS) and not is_conflict(ApiError(400, "X", "y"))
    for error in (EXISTS, ApiError(500, "INTERNAL", "boom")):
        calls: list[int] = []

        def attempt(n: int, error: ApiError = error, calls: list[int] = calls) -> str:
            calls.append(n)
            raise error

        with pytest.raises(ApiError):
            retry_conflicts(attempt)
        assert calls == [0]


def test_again_decides_and_may_change_the_next_attempt() -> None:
    named = [True]

    def attempt(n: int) -> str:
        if named[0]:
            raise EXISTS
        return "unnamed"

    def again(error: ApiError) -> bool:
        named[0] = False
        return True

    assert retry_conflicts(attempt, again=again) == "unnamed"
