"""Seeded latency samples and what Cloud Monitoring makes of them: counts in the exponential buckets
Cloud Run reports latencies in (64 finite buckets, growth 1.4, scale 1), and a side of the comparative
judge. Shared by the unit tests of deployer.stats and deployer.compare and their statistical properties
(tests/properties/test_false_alarms.py)."""

from __future__ import annotations

import math
import random

from deployer import stats
from deployer.compare import Side

EXPONENTIAL = {"exponentialBuckets": {"numFiniteBuckets": 64, "growthFactor": 1.4, "scale": 1.0}}
BOUNDS = stats.bucket_bounds(EXPONENTIAL, 66)


def bucket_of(value: float) -> int:
    """The exponential bucket (64 / 1.4 / 1) a latency falls in, as Google's BucketOptions define it."""
    return 0 if value < 1.0 else min(65, 1 + math.floor(math.log(value, 1.4) + 1e-12))


def counts(values: list[float], size: int = 66) -> list[int]:
    out = [0] * size
    for v in values:
        out[bucket_of(v)] += 1
    return out


def histogram(values: list[float]) -> stats.Histogram:
    return stats.Histogram(BOUNDS, tuple(counts(values)), min(values), max(values))


def side(label: str, latencies: list[float], errors: int = 0, own: int = 0) -> Side:
    ok = len(latencies) - errors
    return Side(label, {"2xx": ok, "5xx": errors}, histogram(latencies), own)


def lognormal(rng: random.Random, n: int, median: float, sigma: float = 0.5) -> list[float]:
    return [median * math.exp(rng.gauss(0, sigma)) for _ in range(n)]


def draw(rng: random.Random, n: int, median: float) -> list[float]:
    """Latencies of a healthy service around ``median`` (log-normal, sigma 0.3)."""
    return [median * math.exp(rng.gauss(0, 0.3)) for _ in range(n)]
