"""The comparative judge: is the candidate worse than its baseline over the same window?

A difference fails a step only when it is both *significant* (a p-value below 1 - confidence,
shared between the checks set: the one-sided Mann-Whitney U test on the two latency histograms,
Fisher's exact test on the 5xx counts) and *larger than its allowance* (``max_latency_increase``:
the candidate's median or p95 more than N % above the baseline's -- a regression shows in the
middle or in the tail; ``max_error_rate_increase``:
more than N percentage points). Too little data on either side is inconclusive, never a pass. The
action's own smoke-check requests are left out of the counts first (``OwnRequests``). Every verdict
carries the numbers that decided it, in words a person reads in the log and the summary. No I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from deployer.result import Verdict
from deployer.stats import BucketError, Histogram, fisher_greater, mann_whitney_greater

NAME = "baseline"
# Fewer requests than this on either side and no test is run: inconclusive. A one-sided test on 20
# against 20 can already see a clear latency shift; a 5xx difference needs more (see the README).
MIN_COMPARE_REQUESTS = 20
INTERIM_ALPHA = 0.001  # the p-value a round before the end of a bake must beat to fail the step


@dataclass(frozen=True)
class Rules:
    """What the comparison checks (from ``settings.AnalysisSettings``)."""

    max_latency_increase: float | None = None  # percent
    max_error_rate_increase: float | None = None  # percentage points
    confidence: float = 95.0  # percent
    min_requests: int = 0  # the candidate's, as for the absolute checks
    interim: bool = False  # a round during the bake (the data so far), not the step's final verdict

    @property
    def checks(self) -> int:
        return (self.max_latency_increase is not None) + (self.max_error_rate_increase is not None)

    @property
    def alpha(self) -> float:
        """The p-value under which one check's difference is significant: 1 - confidence, shared
        between the checks (Bonferroni), so a healthy release fails a step at most 1 - confidence
        of the time however many checks are set.

        Rounds during a bake look at the data again and again; each look at 1 - confidence would
        add up to false alarms. So, as in the Haybittle-Peto rule of clinical trials, a look before
        the end fails only on overwhelming evidence (INTERIM_ALPHA), and the step's final verdict
        uses the full 1 - confidence."""
        overall = 1.0 - self.confidence / 100.0
        return (
            min(overall, INTERIM_ALPHA) / max(1, self.checks)
            if self.interim
            else overall / max(1, self.checks)
        )


@dataclass(frozen=True)
class Side:
    """One side of the comparison over the window, the action's own requests already left out."""

    label: str  # "candidate" | "baseline"
    counts: Mapping[str, int]  # requests by response class ("2xx", "5xx", ...)
    latencies: Histogram = field(default_factory=lambda: Histogram((), ()))
    own: int = 0  # the action's own (smoke-check) requests left out

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    @property
    def errors(self) -> int:
        return self.counts.get("5xx", 0)

    @property
    def error_pct(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def percentile(self, pct: float) -> float | None:
        return self.latencies.percentile(pct)

    def describe(self) -> str:
        """``candidate 200 requests (4 smoke-check requests left out), 0.5 % 5xx, p50/p95/p99 ...``"""
        own = f" ({self.own} smoke-check request{'s' if self.own != 1 else ''} left out)" if self.own else ""
        quantiles = [self.percentile(p) for p in (50, 95, 99)]
        if all(q is not None for q in quantiles):
            shown = "/".join(f"{q:.0f}" for q in quantiles if q is not None)
            latency = f", p50/p95/p99 {shown} ms"
        else:
            latency = ", no latencies"
        return f"{self.label} {self.requests} requests{own}, {self.error_pct:.1f} % 5xx{latency}"

    def figures(self) -> dict[str, float]:
        out = {
            f"{self.label}_requests": float(self.requests),
            f"{self.label}_errors": float(self.errors),
            f"{self.label}_error_rate": self.error_pct,
            f"{self.label}_own_requests": float(self.own),
        }
        for pct in (50, 95, 99):
            value = self.percentile(pct)
            if value is not None:
                out[f"{self.label}_p{pct}_ms"] = value
        return out


@dataclass(frozen=True)
class Finding:
    """One comparative check's answer, in words."""

    ok: bool | None
    text: str
    p: float | None = None


def fmt_p(p: float) -> str:
    """``p=0.003``, ``p<0.0001``: two significant digits, never a misleading 0."""
    return "p<0.0001" if p < 0.0001 else f"p={p:.2g}"


def _increase(candidate: float, baseline: float) -> float:
    """Percent above the baseline (a baseline of 0 ms: any positive candidate is +inf)."""
    if baseline <= 0:
        return 0.0 if candidate <= 0 else float("inf")
    return 100.0 * (candidate - baseline) / baseline


def _verdict_word(ok: bool | None) -> str:
    return {True: "pass", False: "fail", None: "inconclusive"}[ok]


def too_little(rules: Rules, candidate: Side, baseline: Side) -> str:
    """Why there is too little data for a test ("" when there is enough)."""
    need = max(MIN_COMPARE_REQUESTS, rules.min_requests)
    if candidate.requests < need:
        return f"only {candidate.requests} candidate requests (< {need})"
    if baseline.requests < MIN_COMPARE_REQUESTS:
        return f"only {baseline.requests} baseline requests (< {MIN_COMPARE_REQUESTS})"
    return ""


def latency_finding(rules: Rules, candidate: Side, baseline: Side) -> Finding:
    """Significantly slower (Mann-Whitney U, one-sided) AND the median or the p95 above the allowance:
    the test bounds false alarms, the allowance says how much slower is too slow, wherever it shows
    (a tail noisy on one side must not hide a median 50 % up)."""
    allowance = rules.max_latency_increase
    assert allowance is not None
    try:
        if candidate.latencies.bounds and baseline.latencies.bounds:
            candidate.latencies.add(baseline.latencies)  # refuses different bucket layouts
    except BucketError as exc:
        return Finding(None, f"latency: {exc}: inconclusive")
    c50, b50 = candidate.percentile(50), baseline.percentile(50)
    c95, b95 = candidate.percentile(95), baseline.percentile(95)
    if c50 is None or b50 is None or c95 is None or b95 is None:
        return Finding(None, "latency: no latency distribution on one side: inconclusive")
    test = mann_whitney_greater(candidate.latencies.counts, baseline.latencies.counts)
    up50, up95 = _increase(c50, b50), _increase(c95, b95)
    significant = test.p < rules.alpha
    large = up50 > allowance or up95 > allowance
    ok = not (significant and large)
    why = " (not significant)" if ok and large else (" (within the allowance)" if ok and significant else "")
    text = (
        f"latency: p50 {c50:.0f} ms vs {b50:.0f} ms ({up50:+.0f} %), p95 {c95:.0f} ms vs {b95:.0f} ms "
        f"({up95:+.0f} %), allowed +{allowance:g} %, {fmt_p(test.p)}: {_verdict_word(ok)}{why}"
    )
    return Finding(ok, text, test.p)


def error_finding(rules: Rules, candidate: Side, baseline: Side) -> Finding:
    """Significantly more 5xx (Fisher's exact test, one-sided) AND more than the allowance."""
    allowance = rules.max_error_rate_increase
    assert allowance is not None
    p = fisher_greater(candidate.errors, candidate.requests, baseline.errors, baseline.requests)
    points = candidate.error_pct - baseline.error_pct
    significant = p < rules.alpha
    large = points > allowance
    ok = not (significant and large)
    why = " (not significant)" if ok and large else (" (within the allowance)" if ok and significant else "")
    unit = "point" if allowance == 1 else "points"
    text = (
        f"5xx: {candidate.error_pct:.1f} % of {candidate.requests} vs {baseline.error_pct:.1f} % of "
        f"{baseline.requests} ({points:+.1f} points, allowed +{allowance:g} {unit}), {fmt_p(p)}: "
        f"{_verdict_word(ok)}{why}"
    )
    return Finding(ok, text, p)


def compare(rules: Rules, candidate: Side, baseline: Side, note: str = "") -> Verdict:
    """One verdict for every comparative check, with both sides' figures and each check's reasoning."""
    figures = {**candidate.figures(), **baseline.figures()}
    head = f"{candidate.describe()}; {baseline.describe()}"
    short = too_little(rules, candidate, baseline)
    if short:
        return Verdict(NAME, None, f"{head}; {short}: inconclusive{note}", figures)
    findings: list[Finding] = []
    if rules.max_latency_increase is not None:
        findings.append(latency_finding(rules, candidate, baseline))
    if rules.max_error_rate_increase is not None:
        findings.append(error_finding(rules, candidate, baseline))
    for finding in findings:
        if finding.p is not None:
            key = "latency_p_value" if finding.text.startswith("latency") else "errors_p_value"
            figures[key] = finding.p
    if any(f.ok is False for f in findings):
        ok: bool | None = False
    elif any(f.ok is None for f in findings):
        ok = None
    else:
        ok = True
    ordered = sorted(findings, key=lambda f: {False: 0, None: 1, True: 2}[f.ok])
    return Verdict(NAME, ok, "; ".join([*(f.text for f in ordered), head]) + note, figures)


# ---- the action's own requests -----------------------------------------------------------------


def response_class(status: int) -> str:
    return f"{status // 100}xx"


class OwnRequests:
    """The smoke-check requests the action itself sent, by URL, time and response class, so the
    judge can leave them out: on a quiet service they would otherwise make up the data. A request
    that got no answer never reached an instance and is not recorded (Cloud Run does not count it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[str, float, float, int]] = []

    def record(self, url: str, sent: float, answered: float, status: int | None) -> None:
        """One request (epoch seconds it was sent and answered); no status: it was never answered."""
        if status is None:
            return
        with self._lock:
            self._seen.append((url.rstrip("/"), sent, answered, status))

    def by_class(self, url: str, start: float, end: float) -> dict[str, int]:
        """Requests to ``url`` (a tag URL, any path under it) that may lie between start and end:
        Cloud Run stamps a request somewhere between its sending and its answer."""
        base = url.rstrip("/")
        out: dict[str, int] = {}
        with self._lock:
            for seen, sent, answered, status in self._seen:
                if sent <= end and answered >= start and (seen == base or seen.startswith(base + "/")):
                    key = response_class(status)
                    out[key] = out.get(key, 0) + 1
        return out


def without_own(counts: Mapping[str, int], own: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """``counts`` minus the action's own requests, class by class (never below 0); how many went."""
    left: dict[str, int] = {}
    removed = 0
    for key, value in counts.items():
        take = min(value, own.get(key, 0))
        left[key] = value - take
        removed += take
    return left, removed
