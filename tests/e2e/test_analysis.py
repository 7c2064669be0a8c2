"""Canary analysis: the emulator's Cloud Monitoring timeSeries.list and the Analysis that reads it."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest
import requests

from cloudrun_emulator.dataplane import RequestSample
from cloudrun_emulator.monitoring import Ingestion, format_timestamp, parse_timestamp, time_series
from deployer import analysis
from deployer.analysis import Analysis
from deployer.result import StepInfo, Verdict
from deployer.retry import Cancelled
from deployer.settings import AnalysisSettings
from tests.e2e.monitoring_world import QuietHandler, World, reply, serve
from tests.schema import conform

T0 = 1_700_000_000.0
COUNT = "run.googleapis.com/request_count"
LATENCIES = "run.googleapis.com/request_latencies"
# Analyses read the data plane at once and retry monitoring without waiting (tests/e2e/conftest.py).
pytestmark = pytest.mark.usefixtures("fast_analysis")


# ---- the emulator's time_series, on synthetic samples ----------------------------------------


def samples() -> list[RequestSample]:
    """web-a: 20 requests over 20 s, every 5th a 503, latencies 10..29 ms; web-b: 5 at 300 ms."""
    out = [RequestSample("web-a", "web", T0 + i, 503 if i % 5 == 0 else 200, 10.0 + i) for i in range(20)]
    out += [RequestSample("web-b", "web", T0 + i, 200, 300.0) for i in range(5)]
    out.append(RequestSample("web-a", "web", T0 - 120, 500, 9999.0))  # before the interval
    return out


def query(metric: str = COUNT, flt: str | None = None, **params: str | list[str]) -> dict[str, list[str]]:
    q: dict[str, list[str]] = {
        "filter": [flt or f'metric.type = "{metric}" AND resource.labels.revision_name = "web-a"'],
        "interval.startTime": [format_timestamp(T0)],
        "interval.endTime": [format_timestamp(T0 + 30)],
        "aggregation.alignmentPeriod": ["60s"],
        "aggregation.perSeriesAligner": ["ALIGN_DELTA"],
    }
    for name, value in params.items():
        q[name.replace("_", ".", 1)] = value if isinstance(value, list) else [value]
    return q


def call(q: Mapping[str, list[str]], data: list[RequestSample] | None = None) -> tuple[int, dict[str, Any]]:
    return time_series(
        q, samples() if data is None else data, project="proj", location="us-central1", now=T0 + 3600
    )


def test_counts_grouped_by_response_code_class_are_int64_strings() -> None:
    status, body = call(
        query(
            aggregation_crossSeriesReducer="REDUCE_SUM",
            aggregation_groupByFields=["metric.labels.response_code_class"],
        )
    )

    assert status == 200
    by_class = {s["metric"]["labels"]["response_code_class"]: s for s in body["timeSeries"]}
    assert set(by_class) == {"2xx", "5xx"}
    assert [p["value"] for p in by_class["2xx"]["points"]] == [{"int64Value": "16"}]
    assert [p["value"] for p in by_class["5xx"]["points"]] == [{"int64Value": "4"}]
    one = by_class["5xx"]
    assert one["metric"] == {"type": COUNT, "labels": {"response_code_class": "5xx"}}
    assert one["resource"] == {"type": "cloud_run_revision", "labels": {"project_id": "proj"}}
    assert (one["metricKind"], one["valueType"]) == ("DELTA", "INT64")
    assert one["points"][0]["interval"] == {
        "startTime": format_timestamp(T0 + 30 - 60),
        "endTime": format_timestamp(T0 + 30),
    }


def test_without_reducer_each_series_keeps_all_cloud_run_labels() -> None:
    status, body = call(query())

    assert status == 200
    series = {s["metric"]["labels"]["response_code"]: s for s in body["timeSeries"]}
    assert set(series) == {"200", "503"}
    assert series["503"]["resource"]["labels"] == {
        "project_id": "proj",
        "location": "us-central1",
        "service_name": "web",
        "revision_name": "web-a",
        "configuration_name": "web",
    }
    assert series["503"]["metric"]["labels"] == {"response_code": "503", "response_code_class": "5xx"}


def test_latency_percentiles_per_revision() -> None:
    data = [RequestSample("web-a", "web", T0 + 1, 200, float(ms)) for ms in range(1, 101)]
    data += [RequestSample("web-b", "web", T0 + 1, 500, 300.0)]
    flt = f'metric.type="{LATENCIES}" AND resource.labels.service_name="web"'
    results = {}
    for pct in ("99", "95", "50"):
        status, body = call(
            query(
                flt=flt,
                aggregation_crossSeriesReducer=f"REDUCE_PERCENTILE_{pct}",
                aggregation_groupByFields=["resource.labels.revision_name"],
            ),
            data,
        )
        assert status == 200
        for s in body["timeSeries"]:
            assert (s["metricKind"], s["valueType"], s["unit"]) == ("GAUGE", "DOUBLE", "ms")
            results[pct, s["resource"]["labels"]["revision_name"]] = s["points"][0]["value"]["doubleValue"]

    assert results["99", "web-a"] == pytest.approx(99.01)
    assert results["95", "web-a"] == pytest.approx(95.05)
    assert results["50", "web-a"] == pytest.approx(50.5)
    assert results["99", "web-b"] == 300.0


def test_percentile_aligner_and_distribution_without_reducer() -> None:
    status, body = call(query(LATENCIES, aggregation_perSeriesAligner="ALIGN_PERCENTILE_99"))
    assert status == 200
    got = sorted(s["points"][0]["value"]["doubleValue"] for s in body["timeSeries"])
    assert got == [pytest.approx(24.85), pytest.approx(28.85)]  # the 503s (10..25 ms), the 200s

    status, body = call(query(LATENCIES, aggregation_crossSeriesReducer="REDUCE_SUM"))
    dist = body["timeSeries"][0]["points"][0]["value"]["distributionValue"]
    assert body["timeSeries"][0]["valueType"] == "DISTRIBUTION"
    assert dist["count"] == "20" and dist["mean"] == pytest.approx(19.5)
    assert sum(int(c) for c in dist["bucketCounts"]) == 20


@pytest.mark.parametrize(
    "flt",
    [
        f'metric.type = "{COUNT}" AND resource.labels.revision_name = one_of("web-a", "web-x")',
        f'metric.type="{COUNT}" AND resource.labels.revision_name=one_of("web-x","web-a")',
        f'resource.type = "cloud_run_revision" AND metric.type = "{COUNT}" '
        'AND resource.labels.service_name = "web" AND resource.labels.revision_name != "web-b"',
        f'metric.type = "{COUNT}" and resource.labels.revision_name = starts_with("web-a")',
    ],
)
def test_filter_forms_select_the_revision(flt: str) -> None:
    status, body = call(query(flt=flt, aggregation_crossSeriesReducer="REDUCE_SUM"))

    assert status == 200
    assert body["timeSeries"][0]["points"][0]["value"] == {"int64Value": "20"}


def test_one_of_two_revisions_grouped_by_revision() -> None:
    flt = f'metric.type = "{COUNT}" AND resource.labels.revision_name = one_of("web-a","web-b")'
    status, body = call(
        query(
            flt=flt,
            aggregation_crossSeriesReducer="REDUCE_SUM",
            aggregation_groupByFields=["resource.labels.revision_name"],
        )
    )

    assert status == 200
    got = {
        s["resource"]["labels"]["revision_name"]: s["points"][0]["value"]["int64Value"]
        for s in body["timeSeries"]
    }
    assert got == {"web-a": "20", "web-b": "5"}


def test_periods_end_at_end_time_newest_first_and_rate() -> None:
    data = [RequestSample("web-a", "web", T0 + s, 200, 1.0) for s in (5, 70, 75, 130, 131, 132)]
    q = query(aggregation_crossSeriesReducer="REDUCE_SUM")
    q["interval.endTime"] = [format_timestamp(T0 + 180)]

    status, body = call(q, data)
    points = body["timeSeries"][0]["points"]
    assert status == 200
    assert [p["value"]["int64Value"] for p in points] == ["3", "2", "1"]
    assert [parse_timestamp(p["interval"]["endTime"], "x") for p in points] == [T0 + 180, T0 + 120, T0 + 60]

    q["aggregation.perSeriesAligner"] = ["ALIGN_RATE"]
    status, body = call(q, data)
    assert [p["value"]["doubleValue"] for p in body["timeSeries"][0]["points"]] == [0.05, 2 / 60, 1 / 60]


def test_requests_after_now_are_not_reported_yet() -> None:
    q = query(aggregation_crossSeriesReducer="REDUCE_SUM")
    status, body = time_series(
        q, samples(), project="proj", location="us-central1", now=T0 + 9.5, ingestion=Ingestion(0, 0)
    )

    assert status == 200 and body["timeSeries"][0]["points"][0]["value"] == {"int64Value": "10"}


def test_no_data_is_an_empty_object_and_headers_view_has_no_points() -> None:
    flt = f'metric.type = "{COUNT}" AND resource.labels.revision_name = "nope"'
    assert call(query(flt=flt)) == (200, {})

    status, body = call(query(view="HEADERS"))
    assert status == 200 and body["timeSeries"] and all("points" not in s for s in body["timeSeries"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"aggregation.perSeriesAligner": ["ALIGN_BOGUS"]}, "aggregation.per_series_aligner"),
        ({"aggregation.crossSeriesReducer": ["REDUCE_PERCENTILE_42"]}, "aggregation.cross_series_reducer"),
        ({"aggregation.alignmentPeriod": ["30s"]}, "at least 60 seconds"),
        ({"aggregation.alignmentPeriod": ["one minute"]}, "google.protobuf.Duration"),
        ({"aggregation.alignmentPeriod": []}, "alignment period is required"),
        (
            {
                "aggregation.perSeriesAligner": ["ALIGN_NONE"],
                "aggregation.crossSeriesReducer": ["REDUCE_SUM"],
            },
            "aligner other than ALIGN_NONE",
        ),
        ({"aggregation.perSeriesAligner": ["ALIGN_PERCENTILE_99"]}, "cannot be applied"),
        ({"aggregation.groupByFields": ["labels.x"]}, "groupByFields"),
        ({"filter": [""]}, "filter is required"),
        ({"filter": ['metric.type = "a" OR metric.type = "b"']}, "could not be parsed"),
        ({"filter": ['resource.labels.revision_name = "web-a"']}, "exactly one metric type"),
        ({"interval.endTime": ["yesterday"]}, "interval.end_time"),
        ({"interval.endTime": []}, "interval.endTime is required"),
        ({"interval.startTime": [format_timestamp(T0 + 99)]}, "start time"),
        ({"view": ["ALL"]}, "view"),
    ],
)
def test_bad_parameters_are_400_in_googles_shape(change: dict[str, list[str]], words: str) -> None:
    q = query()
    q.update(change)

    status, body = call(q)

    assert status == 400
    assert set(body) == {"error"}
    assert body["error"]["code"] == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert words in body["error"]["message"]


def test_unknown_metric_is_404() -> None:
    status, body = call(query(flt='metric.type = "compute.googleapis.com/instance/cpu/usage_time"'))

    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_timestamps_round_trip_rfc3339() -> None:
    assert format_timestamp(T0) == "2023-11-14T22:13:20Z"
    assert format_timestamp(T0 + 0.25) == "2023-11-14T22:13:20.25Z"
    assert parse_timestamp("2023-11-14T23:13:20.250000000+01:00", "x") == T0 + 0.25
    assert parse_timestamp(analysis.rfc3339(T0 + 0.5), "x") == T0 + 0.5


# ---- the response against monitoring.v3.json ---------------------------------------------------


def discovery() -> dict[str, Any]:
    docs = resources.files("googleapiclient") / "discovery_cache" / "documents" / "monitoring.v3.json"
    return json.loads(docs.read_text(encoding="utf-8"))


def test_responses_conform_to_list_time_series_response_schema() -> None:
    doc = discovery()
    schemas = doc["schemas"]
    assert doc["resources"]["projects"]["resources"]["timeSeries"]["methods"]["list"]["response"] == {
        "$ref": "ListTimeSeriesResponse"
    }
    bodies = [
        call(
            query(
                aggregation_crossSeriesReducer="REDUCE_SUM",
                aggregation_groupByFields=["metric.labels.response_code_class"],
            )
        )[1],
        call(query())[1],
        call(query(LATENCIES, aggregation_crossSeriesReducer="REDUCE_PERCENTILE_99"))[1],
        call(query(LATENCIES))[1],
        call(query(aggregation_perSeriesAligner="ALIGN_RATE"))[1],
    ]
    for body in bodies:
        assert body["timeSeries"]
        assert conform(body, {"$ref": "ListTimeSeriesResponse"}, schemas, "$") == []
    assert conform(
        {"timeSeries": [{"points": [{"value": {"int64Value": 3}}]}], "x": 1},
        {"$ref": "ListTimeSeriesResponse"},
        schemas,
        "$",
    ) == [
        "$.x: unknown field",
        "$.timeSeries[0].points[0].value.int64Value: expected string, got int",
    ]


# ---- Analysis against real loopback servers ----------------------------------------------------


def step(world: World, candidate: str, percent: int = 10) -> StepInfo:
    return StepInfo(
        percent=percent,
        candidate=candidate,
        previous="web-hello",
        tag_url=world.urls["hello"],
        url=world.urls["service"],
        started=world.started,
        round=1,
    )


def analysis_for(world: World, **settings: Any) -> Analysis:
    """An Analysis of service "web" in proj/us-central1 against the test's monitoring server."""
    return Analysis(
        AnalysisSettings(**settings),
        session=requests.Session(),
        project="proj",
        region="us-central1",
        service="web",
        monitoring_endpoint=world.monitoring_url,
    )


def analyse(world: World, candidate: str, **settings: Any) -> Verdict:
    checker = analysis_for(world, **settings)
    assert checker.enabled
    (verdict,) = checker.run(step(world, candidate))
    return verdict


def test_error_candidate_fails_max_error_rate(world: World) -> None:
    verdict = analyse(world, "web-error", max_error_rate=5)

    assert verdict.name == "metrics" and verdict.ok is False
    assert verdict.detail == "error rate 30.0 % of 20 requests > max 5 %"
    assert verdict.figures["requests"] == 20 and verdict.figures["errors"] == 6
    assert verdict.figures["error_rate"] == pytest.approx(30.0)


def test_slow_candidate_fails_max_latency_p99(world: World) -> None:
    verdict = analyse(world, "web-slow", max_latency_p99=100, max_error_rate=5)

    assert verdict.ok is False
    # 300 ms of delay, plus whatever a busy machine adds
    assert re.fullmatch(r"p99 (\d+) ms > max 100 ms", verdict.detail), verdict.detail
    assert 300 <= verdict.figures["p99_ms"] < 2000 and verdict.figures["p95_ms"] >= 300


def test_healthy_candidate_passes(world: World) -> None:
    verdict = analyse(
        world, "web-hello", max_error_rate=5, max_latency_p99=1000, max_latency_p95=1000, min_requests=10
    )

    assert verdict.ok is True, verdict.detail
    assert verdict.detail.startswith("error rate 0.0 % of 20 requests <= max 5 %; p99 ")
    assert verdict.figures["errors"] == 0


def test_the_queries_google_would_receive(world: World) -> None:
    world.monitoring.calls.clear()
    analyse(world, "web-hello", max_error_rate=5)

    counts, p95, p99 = world.monitoring.calls
    assert counts["filter"] == [
        'metric.type = "run.googleapis.com/request_count" AND resource.type = "cloud_run_revision" AND '
        'project = "proj" AND resource.labels.service_name = "web" AND '
        'resource.labels.revision_name = "web-hello" AND '
        'resource.labels.location = "us-central1"'
    ]
    assert counts["aggregation.perSeriesAligner"] == ["ALIGN_DELTA"]
    assert counts["aggregation.crossSeriesReducer"] == ["REDUCE_SUM"]
    assert counts["aggregation.groupByFields"] == ["metric.labels.response_code_class"]
    assert counts["aggregation.alignmentPeriod"] == ["60s"]
    assert parse_timestamp(counts["interval.startTime"][0], "x") == pytest.approx(world.started, abs=1e-5)
    assert p95["aggregation.crossSeriesReducer"] == ["REDUCE_PERCENTILE_95"]
    assert p99["aggregation.crossSeriesReducer"] == ["REDUCE_PERCENTILE_99"]


def test_too_little_traffic_is_inconclusive(world: World) -> None:
    verdict = analyse(world, "web-hello", max_error_rate=5, min_requests=1000)
    assert verdict.ok is None
    assert verdict.detail == "only 20 requests (< min 1000): inconclusive"

    verdict = analyse(world, "web-unknown", max_error_rate=5)
    assert verdict.ok is None and "no requests" in verdict.detail


def test_lag_is_noted_when_data_may_lag(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "METRIC_LAG_SECONDS", 180.0)

    verdict = analyse(world, "web-hello", max_error_rate=5, min_requests=1000)

    assert verdict.detail.endswith("(Cloud Monitoring data may lag up to 3 min)")


def test_monitoring_errors_are_retried_then_inconclusive(world: World) -> None:
    world.monitoring.failures[:] = [503]
    assert analyse(world, "web-error", max_error_rate=5).ok is False  # one 503, then served

    world.monitoring.failures[:] = [503, 503, 503]
    verdict = analyse(world, "web-error", max_error_rate=5)
    assert verdict.ok is None
    assert verdict.detail == "Cloud Monitoring query failed: HTTP 503: backend unavailable: inconclusive"

    world.monitoring.failures[:] = [403, 403]
    verdict = analyse(world, "web-error", max_error_rate=5)
    assert verdict.ok is None and "HTTP 403" in verdict.detail
    assert world.monitoring.failures == [403]  # not retried
    world.monitoring.failures.clear()


def test_unreachable_monitoring_is_inconclusive() -> None:
    checker = Analysis(
        AnalysisSettings(max_error_rate=5),
        session=requests.Session(),
        project="p",
        region="us-central1",
        service="web",
        monitoring_endpoint="http://127.0.0.1:9",
    )
    (verdict,) = checker.run(StepInfo(10, "web-a", None, "http://t", "http://s", time.time(), 1))
    assert verdict.ok is None and "ConnectionError" in verdict.detail


# ---- user checks -------------------------------------------------------------------------------


def checks(world: World, percent: int = 10, **settings: Any) -> list[Verdict]:
    checker = analysis_for(world, **settings)
    return checker.run(step(world, "web-hello", percent))


def test_check_command_sees_the_step(world: World, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FROM_PROCESS", "yes")
    command = 'test "$CANARY_STEP" = 10'
    assert [v.ok for v in checks(world, 10, check_command=command)] == [True]
    assert [v.ok for v in checks(world, 50, check_command=command)] == [False]

    env_dump = (
        'echo "$CANARY_REVISION $CANARY_PREVIOUS_REVISION $CANARY_ROUND $FROM_PROCESS $PWD"; env > env.txt'
    )
    (verdict,) = checks(world, check_command=env_dump)
    assert verdict.ok is True and f"web-hello web-hello 1 yes {tmp_path}" in verdict.detail
    env = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line)
    assert env["CANARY_TAG_URL"] == world.urls["hello"] and env["CANARY_SERVICE_URL"] == world.urls["service"]


def test_check_command_failure_carries_its_output(world: World) -> None:
    (verdict,) = checks(
        world, check_command="for i in $(seq 1 50); do echo line $i; done; echo boom >&2; exit 3"
    )

    assert verdict.name == "command" and verdict.ok is False
    assert verdict.detail.startswith("check_command failed (exit 3); last output:\n")
    assert verdict.detail.endswith("line 50\nboom") and "line 30\n" not in verdict.detail
    assert verdict.figures == {"exit_code": 3}


def test_check_command_timeout_kills_it(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "COMMAND_TIMEOUT_SECONDS", 0.5)
    began = time.monotonic()

    (verdict,) = checks(world, check_command="echo started; sleep 30 & sleep 30")

    assert time.monotonic() - began < 5
    assert verdict.ok is False and verdict.detail.startswith("check_command timed out after 0.5 s")
    assert "started" in verdict.detail


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[Any], list[int]]]:
    received: list[Any] = []
    statuses: list[int] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append((self.headers.get("Content-Type"), json.loads(self.rfile.read(length))))
            status = statuses.pop(0)
            if status == 204:
                self.send_response(204)
                self.end_headers()
            else:
                reply(self, status, b'{"reason": "error budget exhausted"}')

    server, url = serve(Handler)
    yield url + "/hook", received, statuses
    server.shutdown()
    server.server_close()


def test_webhook_passes_on_204_and_fails_on_500(
    world: World, webhook: tuple[str, list[Any], list[int]]
) -> None:
    url, received, statuses = webhook
    statuses[:] = [204, 500]

    (ok,) = checks(world, 50, check_webhook=url)
    (bad,) = checks(world, 50, check_webhook=url)

    assert (ok.name, ok.ok, ok.detail) == ("webhook", True, "check_webhook answered 204")
    assert (
        bad.ok is False and bad.detail == 'check_webhook answered 500: {"reason": "error budget exhausted"}'
    )
    assert received[0] == (
        "application/json",
        {
            "service_url": world.urls["service"],
            "tag_url": world.urls["hello"],
            "revision": "web-hello",
            "previous_revision": "web-hello",
            "step": 50,
            "round": 1,
            "phase": "step",
        },
    )


def test_all_checks_in_order_and_enabled(world: World, webhook: tuple[str, list[Any], list[int]]) -> None:
    url, _, statuses = webhook
    statuses[:] = [204]

    verdicts = checks(world, max_error_rate=5, check_command="true", check_webhook=url)

    assert [(v.name, v.ok) for v in verdicts] == [("metrics", True), ("command", True), ("webhook", True)]
    session = requests.Session()
    off = Analysis(AnalysisSettings(min_requests=5), session=session, project="p", region="r", service="s")
    assert not off.enabled and off.run(step(world, "web-hello")) == []


def test_a_cancel_stops_the_monitoring_retries(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        analysis, "MONITORING_POLICY", replace(analysis.MONITORING_POLICY, base_delay=30.0, max_delay=30.0)
    )
    world.monitoring.failures[:] = [503, 503, 503]
    cancel = threading.Event()
    checker = analysis_for(world, max_error_rate=5)
    checker.should_stop = cancel.is_set
    threading.Timer(0.3, cancel.set).start()
    began, before = time.monotonic(), len(world.monitoring.calls)
    with pytest.raises(Cancelled, match="Cloud Monitoring query cancelled"):
        checker.run(step(world, "web-error"))
    assert time.monotonic() - began < 5.0  # not the 30 s wait
    assert len(world.monitoring.calls) == before + 1  # one query, then the wait was cut short
    world.monitoring.failures.clear()


def test_monitoring_honours_retry_after(world: World) -> None:
    world.monitoring.failures[:] = [429]
    world.monitoring.retry_after = "0.4"
    began = time.monotonic()
    assert analyse(world, "web-error", max_error_rate=5).ok is False  # one 429, then served
    assert time.monotonic() - began >= 0.4
    world.monitoring.retry_after = None


# ---- ingestion lag and pages --------------------------------------------------------------------


def test_requests_show_up_a_sampling_window_plus_the_lag_later() -> None:
    """Google's Cloud Run metrics: sampled every 60 s, visible up to 180 s after sampling."""
    window_start = 1_700_000_040.0  # a multiple of 60
    data = [RequestSample("web-a", "web", window_start + 10, 200, 5.0)]
    q = query(aggregation_crossSeriesReducer="REDUCE_SUM")
    q["interval.startTime"] = [format_timestamp(window_start)]
    q["interval.endTime"] = [format_timestamp(window_start + 600)]

    def seen(now: float) -> bool:
        status, body = time_series(q, data, project="proj", location="us-central1", now=now)
        assert status == 200
        return bool(body)

    assert not seen(window_start + 60 + 179.9)  # the window closed, the point is not visible yet
    assert seen(window_start + 60 + 180)
    assert Ingestion().window(window_start + 10) == (window_start, window_start + 60)
    assert Ingestion(0, 0).visible(window_start + 10, window_start + 10)


def test_raw_points_are_one_per_sampling_window_newest_first() -> None:
    data = [RequestSample("web-a", "web", T0 + t, 200, 5.0) for t in (1, 2, 61, 62, 63)]
    q = query()
    del q["aggregation.alignmentPeriod"], q["aggregation.perSeriesAligner"]
    q["interval.endTime"] = [format_timestamp(T0 + 120)]
    status, body = time_series(q, data, project="proj", location="us-central1", now=T0 + 3600)
    assert status == 200
    (series,) = body["timeSeries"]
    window = Ingestion().window(T0 + 61)
    assert series["points"][0]["interval"] == {
        "startTime": format_timestamp(window[0]),
        "endTime": format_timestamp(window[1]),
    }
    assert sum(int(p["value"]["int64Value"]) for p in series["points"]) == 5


def test_pages_follow_next_page_token_and_a_foreign_token_is_refused() -> None:
    q = query(
        aggregation_crossSeriesReducer="REDUCE_SUM", aggregation_groupByFields=["metric.labels.response_code"]
    )
    q["pageSize"] = ["1"]
    seen: list[str] = []
    while True:
        status, body = call(q)
        assert status == 200
        seen += [s["metric"]["labels"]["response_code"] for s in body["timeSeries"]]
        if "nextPageToken" not in body:
            break
        q["pageToken"] = [body["nextPageToken"]]
    assert seen == ["200", "503"]
    q["pageToken"] = ["bm90LW91cnM="]
    status, body = call(q)
    assert status == 400 and body["error"]["message"] == "The page token is invalid."
    q["pageSize"] = ["many"]
    assert call(q)[0] == 400
