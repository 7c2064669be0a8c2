"""The statistics of a baseline comparison, on the data Cloud Monitoring really returns: latency
histograms (``Distribution`` values: bucket counts, not samples) and request counts.

Pure and stdlib only (``math``): the action's image carries no numpy or scipy, and every function
here agrees with scipy on the samples a histogram stands for (``tests/unit/test_stats.py``).

- ``Histogram``: the buckets of a ``Distribution`` (exponential, linear or explicit bucket options)
  with their counts; histograms with the same buckets add up.
- ``mann_whitney_greater``: the one-sided Mann-Whitney U test that the first histogram's values
  are larger. All values in one bucket are ties (their order inside the bucket is unknown), so the
  test uses mid-ranks, the tie-corrected variance and the continuity correction, exactly as
  ``scipy.stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")`` on samples where
  every value is its bucket's number.
- ``fisher_greater``: the one-sided Fisher exact test that the first proportion is larger, as
  ``scipy.stats.fisher_exact(..., alternative="greater")``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.errors import BucketError as BucketError

INF = math.inf


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket; ``bounds[i]`` is bucket i's [lower, upper) (underflow -inf, overflow +inf)."""

    bounds: tuple[tuple[float, float], ...]
    counts: tuple[int, ...]
    minimum: float | None = None  # the Distribution's range, when given: percentiles stay inside it
    maximum: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts)

    def add(self, other: Histogram) -> Histogram:
        """Both histograms' counts (same buckets); an empty one adds nothing."""
        if not other.total:
            return self
        if not self.total:
            return other
        if self.bounds != other.bounds:
            raise BucketError("the two distributions have different buckets")
        return Histogram(
            self.bounds,
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            _pick(min, self.minimum, other.minimum),
            _pick(max, self.maximum, other.maximum),
        )

    def percentile(self, pct: float) -> float | None:
        """The ``pct`` percentile, interpolated linearly inside its bucket (as Cloud Monitoring does
        for ``ALIGN_PERCENTILE_*`` on a distribution); None when empty."""
        total = self.total
        if not total:
            return None
        rank = pct / 100.0 * total
        seen = 0
        for (lower, upper), count in zip(self.bounds, self.counts, strict=True):
            if count and seen + count >= rank:
                low, high = _span(lower, upper, self.minimum, self.maximum)
                return low + (high - low) * (rank - seen) / count
            seen += count
        return self.maximum


def _span(lower: float, upper: float, minimum: float | None, maximum: float | None) -> tuple[float, float]:
    """A bucket's finite span for interpolation: open ends closed by the range (or 0 below), and
    the range's min and max where they lie inside the bucket."""
    low = lower if lower != -INF else (minimum if minimum is not None else min(0.0, upper))
    if minimum is not None:
        low = max(low, minimum)
    high = upper if upper != INF else (maximum if maximum is not None else low)
    if maximum is not None:
        high = min(high, maximum)
    return low, max(low, high)


def _pick(func: Any, a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return func(values) if values else None


def bucket_bounds(options: Mapping[str, Any], count: int) -> tuple[tuple[float, float], ...]:
    """The [lower, upper) bounds of ``count`` buckets of Google's ``BucketOptions`` (JSON form)."""
    if "exponentialBuckets" in options:
        spec = options["exponentialBuckets"]
        finite, growth, scale = (
            int(spec["numFiniteBuckets"]),
            float(spec["growthFactor"]),
            float(spec["scale"]),
        )
        if finite <= 0 or growth <= 1 or scale <= 0:
            raise BucketError(
                "exponentialBuckets must have numFiniteBuckets > 0, growthFactor > 1, scale > 0"
            )
        edges = [scale * growth**i for i in range(finite + 1)]
    elif "linearBuckets" in options:
        spec = options["linearBuckets"]
        finite, width, offset = (
            int(spec["numFiniteBuckets"]),
            float(spec["width"]),
            float(spec.get("offset", 0)),
        )
        if finite <= 0 or width <= 0:
            raise BucketError("linearBuckets must have numFiniteBuckets > 0 and width > 0")
        edges = [offset + width * i for i in range(finite + 1)]
    elif "explicitBuckets" in options:
        edges = [float(b) for b in options["explicitBuckets"].get("bounds", [])]
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise BucketError("explicitBuckets bounds must increase")
    else:
        raise BucketError("the distribution has no bucketOptions")
    all_bounds = [(-INF, edges[0]) if edges else (-INF, INF)]
    all_bounds += list(itertools.pairwise(edges))
    if edges:
        all_bounds.append((edges[-1], INF))
    if count > len(all_bounds):
        raise BucketError(f"{count} bucket counts for {len(all_bounds)} buckets")
    return tuple(all_bounds)


def from_distribution(value: Mapping[str, Any]) -> Histogram:
    """A ``Distribution`` (JSON: int64 counts as strings, trailing zero buckets left out) as a Histogram.

    Without bucket counts (a distribution can omit them when it has none), an empty histogram."""
    counts = [int(c) for c in value.get("bucketCounts", [])]
    options = value.get("bucketOptions") or {}
    if not counts:
        return Histogram((), ())
    bounds = bucket_bounds(options, len(counts))
    counts += [0] * (len(bounds) - len(counts))
    span = value.get("range") or {}
    low = float(span["min"]) if "min" in span else None
    high = float(span["max"]) if "max" in span else None
    return Histogram(bounds, tuple(counts), low, high)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class MannWhitney:
    """The U statistic of the first sample, its z score and the one-sided p-value."""

    u: float
    z: float
    p: float


def mann_whitney_greater(x: Sequence[int], y: Sequence[int]) -> MannWhitney:
    """One-sided Mann-Whitney U test that values counted in ``x`` tend to be larger than those in
    ``y``, both counted over the same ordered buckets (a bucket's values are ties).

    Normal approximation with tie correction and continuity correction. No information (an empty
    side, or every value in one bucket): p = 1.
    """
    if len(x) != len(y):
        raise ValueError("both histograms must have the same buckets")
    n1, n2 = sum(x), sum(y)
    if not n1 or not n2:
        return MannWhitney(0.0, 0.0, 1.0)
    u, below = 0.0, 0
    ties = 0.0
    for cx, cy in zip(x, y, strict=True):
        u += cx * (below + 0.5 * cy)
        below += cy
        t = cx + cy
        ties += t**3 - t
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return MannWhitney(u, 0.0, 1.0)
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return MannWhitney(u, z, normal_sf(z))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(errors_a: int, total_a: int, errors_b: int, total_b: int) -> float:
    """One-sided Fisher exact test that the error proportion of A is larger than B's: the
    hypergeometric probability of A getting ``errors_a`` or more of all the errors."""
    if not (0 <= errors_a <= total_a and 0 <= errors_b <= total_b):
        raise ValueError("errors must be between 0 and the total")
    errors, population = errors_a + errors_b, total_a + total_b
    if errors == 0 or errors == population:
        return 1.0
    top = min(errors, total_a)
    log_all = _log_choose(population, total_a)
    terms = [
        _log_choose(errors, k) + _log_choose(population - errors, total_a - k) - log_all
        for k in range(errors_a, top + 1)
    ]
    if not terms:
        return 0.0
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))
