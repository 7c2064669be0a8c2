"""How often a healthy release is failed: 1,000 seeded draws of two samples from one distribution,
judged by the tests of deployer.stats and by the comparative judge (deployer.compare). Statistical
properties, slow for the unit tier; the rules one by one: tests/unit/test_stats.py, test_compare.py
(the samples: tests/latencies.py)."""

from __future__ import annotations

import random

from deployer import compare, stats
from deployer.compare import Rules
from tests.latencies import counts, draw, lognormal, side


def test_false_alarm_rate_of_the_test_on_identical_distributions() -> None:
    """1,000 seeded draws of two samples from one distribution: p < 0.05 at most 5 % of the time."""
    rng = random.Random(20240)
    alarms = 0
    for _ in range(1000):
        n = rng.choice([50, 200, 1000])
        x = counts(lognormal(rng, n, 120))
        y = counts(lognormal(rng, n, 120))
        alarms += stats.mann_whitney_greater(x, y).p < 0.05
    assert alarms / 1000 <= 0.05
    errors = 0
    for _ in range(1000):
        n = rng.choice([100, 500, 2000])
        a = sum(rng.random() < 0.02 for _ in range(n))
        b = sum(rng.random() < 0.02 for _ in range(n))
        errors += stats.fisher_greater(a, n, b, n) < 0.05
    assert errors / 1000 <= 0.05


def test_false_alarms_over_1000_seeded_draws_from_identical_distributions() -> None:
    """The judge (test AND allowance) fails a healthy release at most 1 - confidence of the time."""
    rng = random.Random(2024)
    rules = Rules(max_latency_increase=0, max_error_rate_increase=0, confidence=95)  # significance alone
    alarms = 0
    for _ in range(1000):
        n = rng.choice([50, 200, 1000])
        c_err = sum(rng.random() < 0.02 for _ in range(n))
        b_err = sum(rng.random() < 0.02 for _ in range(n))
        candidate = side("candidate", draw(rng, n, 120), errors=c_err)
        baseline = side("baseline", draw(rng, n, 120), errors=b_err)
        alarms += compare.compare(rules, candidate, baseline).ok is False
    assert alarms / 1000 <= 1 - rules.confidence / 100
