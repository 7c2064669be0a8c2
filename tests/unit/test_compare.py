"""The comparative judge: significance AND an effect above the allowance fails; every number shown."""

from __future__ import annotations

import math
import random

import pytest

from deployer import compare, stats
from deployer.compare import OwnRequests, Rules, Side
from tests.latencies import draw, side

RULES = Rules(max_latency_increase=20, max_error_rate_increase=1, confidence=95)


def test_a_candidate_50_percent_slower_fails_and_says_why() -> None:
    rng = random.Random(1)
    verdict = compare.compare(
        RULES, side("candidate", draw(rng, 200, 150)), side("baseline", draw(rng, 200, 100))
    )
    assert verdict.ok is False
    first = verdict.detail.split("; ")[0]
    assert first.startswith("latency: p50 ") and "vs" in first and "allowed +20 %" in first
    assert first.endswith(": fail") and "p<0.0001" in first
    assert "candidate 200 requests" in verdict.detail and "baseline 200 requests" in verdict.detail
    assert verdict.figures["latency_p_value"] < 0.0001
    assert verdict.figures["candidate_p95_ms"] > verdict.figures["baseline_p95_ms"]


def test_the_same_release_passes() -> None:
    rng = random.Random(2)
    verdict = compare.compare(
        RULES, side("candidate", draw(rng, 300, 100)), side("baseline", draw(rng, 300, 100))
    )
    assert verdict.ok is True
    assert "latency: p50" in verdict.detail and ": pass" in verdict.detail


def test_a_significant_shift_within_the_allowance_passes_and_says_so() -> None:
    rng = random.Random(3)
    rules = Rules(max_latency_increase=20)
    verdict = compare.compare(
        rules, side("candidate", draw(rng, 3000, 110)), side("baseline", draw(rng, 3000, 100))
    )
    assert verdict.ok is True and "within the allowance" in verdict.detail


def test_five_percent_errors_against_none_fails_the_error_check() -> None:
    rng = random.Random(4)
    candidate = side("candidate", draw(rng, 200, 100), errors=10)
    baseline = side("baseline", draw(rng, 200, 100), errors=0)
    verdict = compare.compare(Rules(max_error_rate_increase=1), candidate, baseline)
    assert verdict.ok is False
    assert verdict.detail.startswith("5xx: 5.0 % of 200 vs 0.0 % of 200 (+5.0 points, allowed +1 point), p=")
    assert verdict.detail.split("; ")[0].endswith(": fail")


def test_rounds_during_the_bake_fail_only_on_overwhelming_evidence() -> None:
    """Haybittle-Peto: looking again and again must not add up to false alarms."""
    candidate = Side("candidate", {"2xx": 95, "5xx": 5})
    baseline = Side("baseline", {"2xx": 100})
    final = compare.compare(Rules(max_error_rate_increase=1), candidate, baseline)
    interim = compare.compare(Rules(max_error_rate_increase=1, interim=True), candidate, baseline)
    assert final.ok is False and 0.001 < final.figures["errors_p_value"] < 0.05
    assert interim.ok is True and "not significant" in interim.detail
    worse = Side("candidate", {"2xx": 80, "5xx": 20})
    assert compare.compare(Rules(max_error_rate_increase=1, interim=True), worse, baseline).ok is False


def test_a_large_but_insignificant_error_difference_passes_as_not_significant() -> None:
    rng = random.Random(5)
    candidate = side("candidate", draw(rng, 25, 100), errors=1)
    baseline = side("baseline", draw(rng, 25, 100))
    verdict = compare.compare(Rules(max_error_rate_increase=1), candidate, baseline)
    assert verdict.ok is True and "not significant" in verdict.detail


def test_too_little_data_is_inconclusive_never_a_pass() -> None:
    rng = random.Random(6)
    verdict = compare.compare(
        RULES, side("candidate", draw(rng, 3, 100), own=3), side("baseline", draw(rng, 50, 100))
    )
    assert verdict.ok is None
    assert (
        "only 3 candidate requests" in verdict.detail and "3 smoke-check requests left out" in verdict.detail
    )
    quiet = compare.compare(RULES, Side("candidate", {}, own=4), Side("baseline", {}))
    assert quiet.ok is None and "only 0 candidate requests" in quiet.detail


def test_min_requests_raises_the_bar_for_the_candidate() -> None:
    rng = random.Random(7)
    rules = Rules(max_latency_increase=20, min_requests=100)
    verdict = compare.compare(
        rules, side("candidate", draw(rng, 50, 100)), side("baseline", draw(rng, 50, 100))
    )
    assert verdict.ok is None and "(< 100)" in verdict.detail


def test_different_bucket_layouts_are_inconclusive() -> None:
    rng = random.Random(8)
    other = stats.Histogram(((-math.inf, 50.0), (50.0, math.inf)), (0, 100))
    baseline = Side("baseline", {"2xx": 100}, other)
    verdict = compare.compare(
        Rules(max_latency_increase=20), side("candidate", draw(rng, 100, 100)), baseline
    )
    assert verdict.ok is None and "different buckets" in verdict.detail


def test_own_requests_are_left_out_by_class_and_window() -> None:
    own = OwnRequests()
    own.record("https://canary---svc.a.run.app/", 10.0, 10.0, 200)
    own.record("https://canary---svc.a.run.app/healthz", 11.0, 11.0, 503)
    own.record("https://canary---svc.a.run.app", 99.0, 99.0, 200)  # outside the window
    own.record("https://baseline---svc.a.run.app/", 10.0, 10.0, 200)  # another revision's tag URL
    own.record("https://canary---svc.a.run.app/", 10.0, 10.0, None)  # never answered: never counted
    found = own.by_class("https://canary---svc.a.run.app", 0.0, 20.0)
    assert found == {"2xx": 1, "5xx": 1}
    left, removed = compare.without_own({"2xx": 5, "5xx": 0}, found)
    assert left == {"2xx": 4, "5xx": 0} and removed == 1


@pytest.mark.parametrize(("p", "text"), [(0.003, "p=0.003"), (0.00001, "p<0.0001"), (0.5, "p=0.5")])
def test_p_values_are_printed_readably(p: float, text: str) -> None:
    assert compare.fmt_p(p) == text
