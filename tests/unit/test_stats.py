"""deployer.stats against scipy (a dev dependency only) on the samples a histogram stands for."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from deployer import stats
from tests.latencies import EXPONENTIAL, counts, lognormal


def scipy_stats() -> Any:
    """scipy.stats (a second of CPU to import), imported here rather than at module level so only a
    worker that runs these tests pays for it. The comparisons are two tests, not one per case: each
    xdist worker that runs one imports scipy, and one per case sent them to every worker. scipy is a
    dev dependency (requirements-dev.txt): without it these tests fail, never skip."""
    import scipy.stats

    return scipy.stats


def expand(histogram: list[int]) -> list[int]:
    """The samples a histogram stands for: every value is its bucket's number (ties within a bucket)."""
    return [i for i, c in enumerate(histogram) for _ in range(c)]


def test_mann_whitney_agrees_with_scipy_on_expanded_samples() -> None:
    reference = scipy_stats()
    for seed in range(40):
        rng = random.Random(seed)
        n1, n2 = rng.choice([3, 12, 50, 400]), rng.choice([5, 30, 200, 1000])
        shift = rng.choice([1.0, 1.1, 1.5, 0.8])
        x = counts(lognormal(rng, n1, 100 * shift, rng.choice([0.05, 0.3, 1.0])))
        y = counts(lognormal(rng, n2, 100, rng.choice([0.05, 0.3, 1.0])))
        ours = stats.mann_whitney_greater(x, y)
        ref = reference.mannwhitneyu(expand(x), expand(y), alternative="greater", method="asymptotic")
        assert ours.u == pytest.approx(float(ref.statistic), abs=1e-9), f"seed {seed}"
        assert ours.p == pytest.approx(float(ref.pvalue), abs=1e-6), f"seed {seed}"


def test_mann_whitney_with_every_value_in_one_bucket_is_no_evidence() -> None:
    x, y = [0, 5, 0], [0, 7, 0]
    assert stats.mann_whitney_greater(x, y).p == 1.0
    assert stats.mann_whitney_greater([0, 0, 0], y).p == 1.0


def test_fisher_agrees_with_scipy_on_chosen_and_random_tables() -> None:
    reference = scipy_stats()
    chosen = [
        (5, 100, 0, 100),
        (1, 20, 0, 20),
        (0, 50, 3, 50),
        (30, 1000, 12, 1000),
        (7, 7, 0, 9),
        (2, 300, 1, 3000),
    ]
    for a, n1, b, n2 in chosen:
        ref = reference.fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="greater")
        assert stats.fisher_greater(a, n1, b, n2) == pytest.approx(float(ref.pvalue), abs=1e-9), (
            a,
            n1,
            b,
            n2,
        )
    rng = random.Random(7)
    for _ in range(200):
        n1, n2 = rng.randint(1, 2000), rng.randint(1, 2000)
        a, b = rng.randint(0, n1 // 10 + 1), rng.randint(0, n2 // 10 + 1)
        a, b = min(a, n1), min(b, n2)
        ref = reference.fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="greater")
        assert stats.fisher_greater(a, n1, b, n2) == pytest.approx(float(ref.pvalue), abs=1e-6), (
            a,
            n1,
            b,
            n2,
        )


def test_histogram_from_a_distribution_as_cloud_monitoring_writes_it() -> None:
    value = {
        "count": "4",
        "mean": 120.0,
        "range": {"min": 90.0, "max": 150.0},
        "bucketOptions": EXPONENTIAL,
        "bucketCounts": ["0"] * 14 + ["2", "2"],  # trailing empty buckets left out
    }
    histogram = stats.from_distribution(value)
    assert histogram.total == 4
    assert len(histogram.counts) == 66
    assert histogram.bounds[0] == (-math.inf, 1.0)
    assert histogram.bounds[-1][1] == math.inf
    lower, upper = histogram.bounds[14]
    assert lower == pytest.approx(1.4**13) and upper == pytest.approx(1.4**14)
    median = histogram.percentile(50)
    assert median is not None and 90.0 <= median <= 1.4**14
    top = histogram.percentile(100)
    assert top == pytest.approx(150.0)


def test_histograms_of_one_layout_add_up_and_others_refuse() -> None:
    one = stats.from_distribution({"bucketOptions": EXPONENTIAL, "bucketCounts": ["1", "2"]})
    two = stats.from_distribution({"bucketOptions": EXPONENTIAL, "bucketCounts": ["0", "3", "4"]})
    assert one.add(two).counts[:3] == (1, 5, 4)
    linear = stats.from_distribution(
        {
            "bucketOptions": {"linearBuckets": {"numFiniteBuckets": 3, "width": 10, "offset": 0}},
            "bucketCounts": ["1"],
        }
    )
    with pytest.raises(stats.BucketError):
        one.add(linear)


def test_bucket_options_as_documented() -> None:
    linear = stats.bucket_bounds({"linearBuckets": {"numFiniteBuckets": 2, "width": 5, "offset": 10}}, 4)
    assert linear == ((-math.inf, 10.0), (10.0, 15.0), (15.0, 20.0), (20.0, math.inf))
    explicit = stats.bucket_bounds({"explicitBuckets": {"bounds": [1, 5, 50]}}, 2)
    assert explicit == ((-math.inf, 1.0), (1.0, 5.0), (5.0, 50.0), (50.0, math.inf))
    with pytest.raises(stats.BucketError, match="bucketOptions"):
        stats.bucket_bounds({}, 1)
    with pytest.raises(stats.BucketError, match="increase"):
        stats.bucket_bounds({"explicitBuckets": {"bounds": [5, 1]}}, 1)


def test_percentile_interpolates_inside_the_bucket() -> None:
    histogram = stats.Histogram(((0.0, 10.0), (10.0, 20.0)), (5, 5))
    assert histogram.percentile(50) == pytest.approx(10.0)
    assert histogram.percentile(75) == pytest.approx(15.0)
    assert stats.Histogram((), ()).percentile(50) is None
