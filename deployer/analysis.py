"""Canary analysis at each step: Cloud Monitoring metrics of the candidate plus the user's own checks.

The smoke check only proves the candidate answers; real traffic at 10 % or 50 % shows whether it
answers *well*. Each configured check gives one ``Verdict``: ``metrics`` (request_count by response
class and request_latencies percentiles from Cloud Monitoring v3), ``baseline`` (the candidate
against its baseline: ``deployer.compare``), ``command`` (``check_command`` in bash) and
``webhook`` (``check_webhook``), the last two in ``deployer.checks``. ``ok=None`` means too little
data to judge; the rollout decides what that means (``on_inconclusive``). Nothing here raises on a
failed check or API error: a broken monitoring call must not crash a rollout half way through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from deployer import compare, stats
from deployer.checks import BODY_EXCERPT, check_env, post_webhook, run_command, webhook_payload
from deployer.errors import MonitoringError as MonitoringError
from deployer.result import StepInfo, Verdict
from deployer.retry import RETRYABLE_STATUSES, Retrier, Retry, RetryPolicy, never, parse_retry_after
from deployer.settings import AnalysisSettings

MONITORING_ENDPOINT = "https://monitoring.googleapis.com"
REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
# Google: Cloud Run metrics are "sampled every 60 seconds. After sampling, data is not visible for up
# to 180 seconds." A request made at the end of a bake can therefore show up SAMPLING + LAG seconds
# later. Rounds during a bake judge what has arrived (enough to fail early on errors); the final
# verdict of a step waits until Cloud Monitoring holds a point past the bake's end (at most
# SAMPLING + LAG), then judges exactly [bake start, bake end].
METRIC_SAMPLING_SECONDS = 60.0
METRIC_LAG_SECONDS = 180.0
MAX_PAGES = 100  # nextPageToken is followed; a runaway token loop stops here
MIN_ALIGNMENT_SECONDS = 60  # Cloud Monitoring refuses shorter alignment periods
MONITORING_TIMEOUT_SECONDS = 30.0
# Three attempts, 1 s then 2 s apart (no jitter: one caller, no herd), Retry-After honoured.
MONITORING_POLICY = RetryPolicy(
    attempts=3,
    base_delay=1.0,
    max_delay=2.0,
    total=2 * MONITORING_TIMEOUT_SECONDS + 3.0,
    connect_timeout=MONITORING_TIMEOUT_SECONDS,
    read_timeout=MONITORING_TIMEOUT_SECONDS,
    jitter=False,
)
COMMAND_TIMEOUT_SECONDS = 300.0
WEBHOOK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Metrics:
    """What Cloud Monitoring reports about the candidate over the step window."""

    requests: int
    errors: int
    p95_ms: float | None
    p99_ms: float | None
    own: int = 0  # the action's own smoke-check requests, left out of requests and errors

    @property
    def error_rate(self) -> float:
        """Percent of 5xx; 0 when there was no request."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def figures(self) -> dict[str, float]:
        out = {"requests": float(self.requests), "errors": float(self.errors), "error_rate": self.error_rate}
        if self.own:
            out["own_requests"] = float(self.own)
        if self.p95_ms is not None:
            out["p95_ms"] = self.p95_ms
        if self.p99_ms is not None:
            out["p99_ms"] = self.p99_ms
        return out


def rfc3339(epoch: float) -> str:
    """Epoch seconds as an RFC 3339 UTC timestamp (what the Timestamp query parameters take)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quote(value: str) -> str:
    """A monitoring filter string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fmt(value: float) -> str:
    """Thresholds as the user wrote them: 5 not 5.0."""
    return f"{value:g}"


# ---- metrics -----------------------------------------------------------------------------------


def count_by_class(series: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Sum int64 points per ``response_code_class`` (counts come as strings, as int64 JSON does)."""
    counts: dict[str, int] = {}
    for one in series:
        labels = one.get("metric", {}).get("labels", {})
        code_class = labels.get("response_code_class", "")
        total = sum(int(p.get("value", {}).get("int64Value", 0)) for p in one.get("points", []))
        counts[code_class] = counts.get(code_class, 0) + total
    return counts


def worst_double(series: Sequence[Mapping[str, Any]]) -> float | None:
    """The largest double point: with several periods the worst one is what a threshold cares about."""
    values = [
        float(p["value"]["doubleValue"])
        for one in series
        for p in one.get("points", [])
        if "doubleValue" in p.get("value", {})
    ]
    values = [v for v in values if math.isfinite(v)]
    return max(values) if values else None


def judge(settings: AnalysisSettings, metrics: Metrics, lag: float) -> Verdict:
    """Compare the candidate's figures with the thresholds; too few requests is inconclusive."""
    note = f" (Cloud Monitoring data may lag up to {lag / 60:g} min)" if lag > 0 else ""
    if metrics.own:
        own = f"{metrics.own} smoke-check request{'s' if metrics.own != 1 else ''} left out"
        note = f" ({own})" + note
    figures = metrics.figures()
    if metrics.requests == 0 or metrics.requests < settings.min_requests:
        if metrics.requests == 0:
            detail = "no requests to the candidate yet: inconclusive"
        else:
            detail = f"only {metrics.requests} requests (< min {settings.min_requests}): inconclusive"
        return Verdict("metrics", None, detail + note, figures)
    failed: list[str] = []
    passed: list[str] = []
    if settings.max_error_rate is not None:
        text = f"error rate {metrics.error_rate:.1f} % of {metrics.requests} requests"
        bad = metrics.error_rate > settings.max_error_rate
        (failed if bad else passed).append(
            f"{text} {'>' if bad else '<='} max {_fmt(settings.max_error_rate)} %"
        )
    for name, limit, value in (
        ("p99", settings.max_latency_p99, metrics.p99_ms),
        ("p95", settings.max_latency_p95, metrics.p95_ms),
    ):
        if limit is None:
            continue
        if value is None:
            passed.append(f"{name} not available")
            continue
        bad = value > limit
        (failed if bad else passed).append(
            f"{name} {value:.0f} ms {'>' if bad else '<='} max {_fmt(limit)} ms"
        )
    detail = "; ".join(failed or passed) + note
    return Verdict("metrics", not failed, detail, figures)


# ---- the analysis ------------------------------------------------------------------------------


class Analysis:
    """Runs every configured check for one step and returns one verdict per check."""

    def __init__(
        self,
        settings: AnalysisSettings,
        *,
        session: requests.Session,
        project: str,
        region: str,
        service: str,
        monitoring_endpoint: str | None = None,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] = never,
        sleep: Callable[[float], None] = time.sleep,
        own: compare.OwnRequests | None = None,
    ) -> None:
        self.settings = settings
        self.own = own or compare.OwnRequests()
        self.session = session
        self.project = project
        self.region = region
        self.service = service
        self.endpoint = (monitoring_endpoint or MONITORING_ENDPOINT).rstrip("/")
        self.clock = clock
        self.log = log or (lambda _text: None)
        self.should_stop = should_stop
        self.sleep = sleep

    @property
    def absolute_enabled(self) -> bool:
        s = self.settings
        return any(v is not None for v in (s.max_error_rate, s.max_latency_p99, s.max_latency_p95))

    @property
    def metrics_enabled(self) -> bool:
        """Any check that reads Cloud Monitoring (absolute thresholds or a baseline comparison)."""
        return self.absolute_enabled or self.settings.comparisons

    @property
    def enabled(self) -> bool:
        """Any metric threshold, check_command or check_webhook set."""
        s = self.settings
        return self.metrics_enabled or bool(s.check_command) or bool(s.check_webhook)

    def run(self, step: StepInfo) -> list[Verdict]:
        """One verdict per configured check, in a fixed order: metrics, command, webhook."""
        verdicts: list[Verdict] = []
        if self.absolute_enabled:
            verdicts.append(self.check_metrics(step))
        if self.settings.comparisons:
            verdicts.append(self.check_baseline(step))
        if self.settings.check_command:
            self.log(f"running check_command at step {step.percent} % (round {step.round})")
            verdicts.append(
                run_command(self.settings.check_command, check_env(step), COMMAND_TIMEOUT_SECONDS)
            )
        if self.settings.check_webhook:
            self.log(f"calling check_webhook at step {step.percent} % (round {step.round})")
            verdicts.append(
                post_webhook(self.settings.check_webhook, webhook_payload(step), WEBHOOK_TIMEOUT_SECONDS)
            )
        for verdict in verdicts:
            self.log(f"{verdict.name}: {_word(verdict.ok)}: {verdict.detail}")
        return verdicts

    def ingested(self, revision: str, since: float) -> bool:
        """Whether Cloud Monitoring already holds a point of ``revision`` ending at or after ``since``.

        Cloud Run writes one point per sampling window and series, in order; once a window ending
        after the bake is visible, every earlier one is too. Errors count as "not yet".
        """
        try:
            start = since - METRIC_SAMPLING_SECONDS
            series = self._series(REQUEST_COUNT, revision, start, self.clock(), "", [])
        except (MonitoringError, ValueError, TypeError, KeyError, AttributeError):
            return False
        ends = [
            parse_rfc3339(str(p.get("interval", {}).get("endTime", "")))
            for one in series
            for p in one.get("points", [])
        ]
        return any(end is not None and end >= since for end in ends)

    def check_metrics(self, step: StepInfo) -> Verdict:
        """Query the candidate's metrics over the step window and judge them."""
        try:
            end = step.ended if step.ended is not None else self.clock()
            metrics = self.fetch_metrics(step.candidate, step.started, end, step.tag_url)
        except MonitoringError as exc:
            return Verdict("metrics", None, f"Cloud Monitoring query failed: {exc}: inconclusive")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a body not shaped as documented
            detail = f"Cloud Monitoring answered an unexpected body ({type(exc).__name__}): inconclusive"
            return Verdict("metrics", None, detail)
        # The final verdict of a step comes after the lag was waited out; rounds during the bake may lag.
        return judge(self.settings, metrics, 0.0 if step.ended is not None else METRIC_LAG_SECONDS)

    def check_baseline(self, step: StepInfo) -> Verdict:
        """Compare the candidate with its baseline over the same window (``deployer.compare``)."""
        s = self.settings
        rules = compare.Rules(
            s.max_latency_increase,
            s.max_error_rate_increase,
            s.confidence,
            s.min_requests,
            interim=step.ended is None,
        )
        lag = (
            ""
            if step.ended is not None
            else f" (Cloud Monitoring data may lag up to {METRIC_LAG_SECONDS / 60:g} min)"
        )
        if not step.baseline:
            return Verdict(compare.NAME, None, "no baseline revision serves in this window: inconclusive")
        try:
            end = step.ended if step.ended is not None else self.clock()
            candidate = self.fetch_side("candidate", (step.candidate,), step.tag_url, step.started, end)
            baseline = self.fetch_side("baseline", step.baseline, step.baseline_tag_url, step.started, end)
        except MonitoringError as exc:
            return Verdict(compare.NAME, None, f"Cloud Monitoring query failed: {exc}: inconclusive")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            detail = f"Cloud Monitoring answered an unexpected body ({type(exc).__name__}): inconclusive"
            return Verdict(compare.NAME, None, detail)
        return compare.compare(rules, candidate, baseline, lag)

    def fetch_side(
        self, label: str, revisions: Sequence[str], tag_url: str, start: float, end: float
    ) -> compare.Side:
        """Counts by response class (the action's own smoke requests to ``tag_url`` left out) and the
        merged latency histogram of ``revisions`` between start and end."""
        end = max(end, start + 1.0)
        counts = count_by_class(
            self._series(
                REQUEST_COUNT, revisions, start, end, "REDUCE_SUM", ["metric.labels.response_code_class"]
            )
        )
        own = self.own.by_class(tag_url, start, end) if tag_url else {}
        counts, removed = compare.without_own(counts, own)
        latencies = stats.Histogram((), ())
        for one in self._series(REQUEST_LATENCIES, revisions, start, end, "REDUCE_SUM", []):
            for point in one.get("points", []):
                value = point.get("value", {}).get("distributionValue")
                if value is not None:
                    latencies = latencies.add(stats.from_distribution(value))
        return compare.Side(label, counts, latencies, removed)

    def fetch_metrics(self, revision: str, start: float, end: float, tag_url: str = "") -> Metrics:
        """Counts by response class (the action's own smoke-check requests to ``tag_url`` left out)
        and p95/p99 latency of one revision between start and end."""
        end = max(end, start + 1.0)
        counts = count_by_class(
            self._series(
                REQUEST_COUNT, revision, start, end, "REDUCE_SUM", ["metric.labels.response_code_class"]
            )
        )
        counts, own = compare.without_own(counts, self.own.by_class(tag_url, start, end) if tag_url else {})
        p95 = worst_double(self._series(REQUEST_LATENCIES, revision, start, end, "REDUCE_PERCENTILE_95", []))
        p99 = worst_double(self._series(REQUEST_LATENCIES, revision, start, end, "REDUCE_PERCENTILE_99", []))
        return Metrics(sum(counts.values()), counts.get("5xx", 0), p95, p99, own)

    def _series(
        self,
        metric: str,
        revision: str | Sequence[str],
        start: float,
        end: float,
        reducer: str,
        group_by: list[str],
    ) -> list[dict[str, Any]]:
        """``timeSeries.list``, every page: ALIGN_DELTA over one period covering the whole window,
        or the raw points when ``reducer`` is empty."""
        params: dict[str, str | list[str]] = {
            "filter": self._filter(metric, revision),
            "interval.startTime": rfc3339(start),
            "interval.endTime": rfc3339(end),
        }
        if reducer:
            period = max(MIN_ALIGNMENT_SECONDS, math.ceil(end - start))
            params["aggregation.alignmentPeriod"] = f"{period}s"
            params["aggregation.perSeriesAligner"] = "ALIGN_DELTA"
            params["aggregation.crossSeriesReducer"] = reducer
        if group_by:
            params["aggregation.groupByFields"] = group_by
        url = f"{self.endpoint}/v3/projects/{self.project}/timeSeries"
        found: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = series_page(self._get(url, params))
            partial(page)
            found += page.series
            if not page.next_token:
                return found
            params = {**params, "pageToken": page.next_token}
        raise MonitoringError(f"more than {MAX_PAGES} pages of time series")

    def _filter(self, metric: str, revision: str | Sequence[str]) -> str:
        """One metric of our revision(s) in our project: a metrics scope that watches several projects
        (staging deploying the same commit has the same revision names) must not add theirs in. The
        ``project`` selector takes the project's ID or number, as the ``project_id`` input may be
        either; ``resource.labels.project_id`` holds the ID only."""
        names = [revision] if isinstance(revision, str) else list(revision)
        which = _quote(names[0]) if len(names) == 1 else "one_of(" + ", ".join(_quote(n) for n in names) + ")"
        terms = [
            f"metric.type = {_quote(metric)}",
            f"resource.type = {_quote('cloud_run_revision')}",
            f"project = {_quote(self.project)}",
            f"resource.labels.service_name = {_quote(self.service)}",
            f"resource.labels.revision_name = {which}",
            f"resource.labels.location = {_quote(self.region)}",
        ]
        return " AND ".join(terms)

    def _get(self, url: str, params: Mapping[str, str | list[str]]) -> dict[str, Any]:
        """GET under MONITORING_POLICY (cancellable waits); MonitoringError once the retries are used up."""
        policy = MONITORING_POLICY
        timeout = (policy.connect_timeout, policy.read_timeout)

        def attempt() -> dict[str, Any]:
            try:
                resp = self.session.get(url, params=params, timeout=timeout)
            except requests.RequestException as exc:
                raise Retry(MonitoringError(f"{type(exc).__name__}: {exc}")) from None
            if resp.status_code == 200:
                return _json_object(resp)
            problem = MonitoringError(f"HTTP {resp.status_code}: {_error_message(resp)}")
            if resp.status_code in RETRYABLE_STATUSES:
                raise Retry(problem, parse_retry_after(resp.headers.get("Retry-After")))
            raise problem

        retrier = Retrier(policy, sleep=self.sleep, should_stop=self.should_stop)
        return retrier.run(attempt, cancelled="Cloud Monitoring query cancelled")


@dataclass(frozen=True)
class SeriesPage:
    """One ``ListTimeSeriesResponse``: its series, the token of the next page ("" on the last), and
    what Cloud Monitoring says it could not read (``executionErrors``, ``unreachable``)."""

    series: list[dict[str, Any]]
    next_token: str
    errors: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()


def partial(page: SeriesPage) -> None:
    """A page with execution errors or unreachable resources holds part of the data: judging it as
    the whole would pass a step on half its requests. MonitoringError (inconclusive) says why."""
    if page.errors:
        raise MonitoringError(
            f"the answer is partial (executionErrors: {'; '.join(page.errors)[:BODY_EXCERPT]})"
        )
    if page.unreachable:
        raise MonitoringError(
            f"the answer is partial (unreachable: {', '.join(page.unreachable)[:BODY_EXCERPT]})"
        )


def series_page(body: Mapping[str, Any]) -> SeriesPage:
    """Read a ``ListTimeSeriesResponse`` as documented (both fields may be absent)."""
    series = body.get("timeSeries", [])
    token = body.get("nextPageToken", "")
    if not isinstance(series, list) or not all(isinstance(s, dict) for s in series):
        raise MonitoringError("the response has no timeSeries list")
    if not isinstance(token, str):
        raise MonitoringError("the response's nextPageToken is not a string")
    errors = body.get("executionErrors") or []
    unreachable = body.get("unreachable") or []
    described = tuple(
        str(e.get("message") or e.get("code") or "error") if isinstance(e, dict) else str(e) for e in errors
    )
    return SeriesPage(series, token, described, tuple(str(u) for u in unreachable))


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp as Google writes them (``Z``, 0-9 fraction digits)."""
    try:
        return datetime.fromisoformat(text.replace("z", "Z")).timestamp()
    except ValueError:
        return None


def _json_object(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        raise MonitoringError("the response is not JSON") from None
    if not isinstance(body, dict):
        raise MonitoringError("the response is not a JSON object")
    return body


def _error_message(resp: requests.Response) -> str:
    """Google's ``error.message`` when there is one, else the start of the body."""
    try:
        message = resp.json()["error"]["message"]
        if isinstance(message, str):
            return message[:BODY_EXCERPT]
    except (ValueError, KeyError, TypeError):
        pass
    return " ".join(resp.text[:BODY_EXCERPT].split())


def _word(ok: bool | None) -> str:
    return {True: "pass", False: "fail", None: "inconclusive"}[ok]
