"""Fixtures of the canary analysis suites (test_analysis.py, test_analysis_baseline.py): the data plane
with real requests served and its loopback Cloud Monitoring, and analyses that do not wait."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import monitoring_world
from tests.e2e.monitoring_world import World


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """The data plane with real requests served, and its Cloud Monitoring (one per module)."""
    with monitoring_world.build_world() as built:
        yield built


@pytest.fixture
def fast_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """No metric lag, monitoring retries at once (``pytest.mark.usefixtures("fast_analysis")``)."""
    monitoring_world.fast_analysis(monkeypatch)
