"""Readiness polling: few reads over a rollout, without seeing a settled change late.

A rollout's changes of one kind take about as long each (the emulator: exactly its ready delay), so
once one has settled the next ones are read around that time instead of every 0.25 s.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from deployer import readiness
from devtools import harness
from tests.cloudrun import Api


def read_times(expected: float, count: int = 12) -> list[float]:
    """When the reads after the PUT come, in seconds since it."""
    return [
        round(t, 3) for t in itertools.accumulate(itertools.islice(readiness.poll_delays(expected), count))
    ]


def first_read_after(expected: float, settles: float) -> float:
    return next(t for t in read_times(expected, 60) if t >= settles)


def test_without_expectation_every_quarter_second_then_backing_off_to_one_a_second() -> None:
    times = read_times(0.0)
    assert times[:8] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    gaps = [b - a for a, b in itertools.pairwise(read_times(0.0, 30))]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps[7:]))  # never faster again
    assert max(gaps) == pytest.approx(readiness.POLL_MAX)


@pytest.mark.parametrize("expected", [1.0, 2.0, 5.0, 30.0])
def test_with_expectation_reads_start_just_before_it(expected: float) -> None:
    times = read_times(expected)
    assert times[0] == pytest.approx(readiness.POLL_LEAD * expected)
    # A change that takes as long as the last one is seen within 5 % of its time (0.1 s at least).
    for settles in (expected * 0.97, expected, expected * 1.05, expected * 1.12):
        lag = first_read_after(expected, settles) - settles
        assert lag <= max(readiness.POLL_NEAR * expected, readiness.POLL_NEAR_MIN) + 1e-9, (settles, lag)
    # Reads before it settles: two or three, instead of four a second.
    assert len([t for t in times if t < expected * 1.1]) <= 3


@pytest.mark.parametrize("settles", [0.3, 2.5, 4.0, 12.0])
def test_a_slower_change_than_expected_is_still_seen(settles: float) -> None:
    """Longer than the last time: the plain schedule takes over, so the lag stays bounded."""
    lag = first_read_after(1.0, settles) - settles
    assert 0 <= lag <= readiness.POLL_MAX


@pytest.mark.long
@pytest.mark.timeout(120)
def test_a_rollout_reads_at_most_twice_a_second(own_emulator: Emulator, project: str, tmp_path: Path) -> None:
    """1 s per change, 2 s bakes (the benchmark's single scenario) against the emulator."""
    own_emulator.set_ready_delay(1.0)
    Api(own_emulator.url, project).create_service("poll", "sample/hello:v1", "poll-v1")
    started, before = time.time(), len(own_emulator.requests())
    result = harness.run(
        {
            "api_endpoint": own_emulator.url,
            "project_id": project,
            "service": "poll",
            "image": "sample/hello:v2",
            "steps": "10,50,100",
            "step_interval": "2s",
        },
        tmp_path=tmp_path,
    )
    wall = time.time() - started
    assert result.outputs["result"] == "promoted", result.log
    reads = [
        r for r in own_emulator.requests()[before:] if r["method"] == "GET" and "/services/poll" in r["path"]
    ]
    assert len(reads) / wall <= 2.0, f"{len(reads)} reads in {wall:.1f} s"
    # The later traffic steps were read around the time the first one took: two or three reads each.
    assert len(reads) <= 14, f"{len(reads)} reads of the service"
