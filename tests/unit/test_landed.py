"""Whether a failed write may have reached the service (deployer.landed.may_have_landed): the
rollout runs the way back unless the server clearly refused the write."""

from __future__ import annotations

import pytest

from deployer.errors import ApiError, Cancelled, Conflict, TransportError
from deployer.landed import may_have_landed


@pytest.mark.parametrize(
    "exc",
    [
        ApiError(400, "INVALID_ARGUMENT", "bad template"),
        ApiError(403, "PERMISSION_DENIED", "no run.services.update"),
        Conflict(409, "ABORTED", "stale resourceVersion"),
        ApiError(429, "RESOURCE_EXHAUSTED", "quota"),
    ],
)
def test_a_clear_refusal_did_not_land(exc: BaseException) -> None:
    assert may_have_landed(exc) is False


@pytest.mark.parametrize(
    "exc",
    [
        ApiError(500, "INTERNAL", "oops"),
        ApiError(503, "UNAVAILABLE", "try again"),
        TransportError(0, "TIMEOUT", "read timed out"),
        Cancelled("cancelled mid-request"),
        KeyboardInterrupt(),
        RuntimeError("anything else"),
    ],
)
def test_anything_else_may_have_landed(exc: BaseException) -> None:
    assert may_have_landed(exc) is True
