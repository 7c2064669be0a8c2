"""The baseline comparison through Cloud Monitoring: the emulator's data plane served real requests,
the analysis reads counts and latency distributions of both sides and judges them."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from deployer import analysis
from deployer.analysis import Analysis, MonitoringError, SeriesPage, partial, series_page
from deployer.compare import OwnRequests
from deployer.result import StepInfo
from deployer.settings import AnalysisSettings
from tests.e2e.monitoring_world import QuietHandler, World, reply, serve

# ``world`` (tests/e2e/conftest.py): the data plane with real requests served, and its Cloud Monitoring.
pytestmark = pytest.mark.usefixtures("fast_analysis")


def compare_step(
    world: World, candidate: str, baseline: tuple[str, ...], *, ended: float | None = None
) -> StepInfo:
    return StepInfo(
        percent=10,
        candidate=candidate,
        previous="web-hello",
        tag_url=world.urls["hello"],
        url=world.urls["service"],
        started=world.started,
        round=1,
        ended=ended,
        baseline=baseline,
    )


def comparer(world: World, own: OwnRequests | None = None, **settings: Any) -> Analysis:
    return Analysis(
        AnalysisSettings(baseline="revision", **settings),
        session=requests.Session(),
        project="proj",
        region="us-central1",
        service="web",
        monitoring_endpoint=world.monitoring_url,
        own=own,
    )


def test_a_slower_candidate_fails_against_its_baseline(world: World) -> None:
    checker = comparer(world, max_latency_increase=20)
    (verdict,) = checker.run(compare_step(world, "web-slow", ("web-hello",)))
    assert verdict.name == "baseline" and verdict.ok is False, verdict.detail
    assert verdict.detail.startswith("latency: p50 ")
    assert "allowed +20 %" in verdict.detail and ": fail" in verdict.detail
    assert verdict.figures["candidate_requests"] == 20 and verdict.figures["baseline_requests"] == 20
    assert verdict.figures["candidate_p50_ms"] >= 300 > verdict.figures["baseline_p50_ms"]


def test_the_same_revision_on_both_sides_passes(world: World) -> None:
    checker = comparer(world, max_latency_increase=20, max_error_rate_increase=1)
    (verdict,) = checker.run(compare_step(world, "web-hello", ("web-hello",)))
    assert verdict.ok is True, verdict.detail


def test_errors_are_compared_by_class(world: World) -> None:
    checker = comparer(world, max_error_rate_increase=1)
    final = compare_step(world, "web-error", ("web-hello",), ended=time.time())
    (verdict,) = checker.run(final)
    assert verdict.ok is False, verdict.detail
    assert verdict.detail.startswith("5xx: 30.0 % of 20 vs 0.0 % of 20 (+30.0 points, allowed +1 point)")


def test_several_stable_revisions_are_one_baseline(world: World) -> None:
    world.monitoring.calls.clear()
    checker = comparer(world, max_error_rate_increase=1)
    (verdict,) = checker.run(compare_step(world, "web-hello", ("web-hello", "web-slow")))
    assert verdict.figures["baseline_requests"] == 40
    filters = [c["filter"][0] for c in world.monitoring.calls]
    assert any('resource.labels.revision_name = one_of("web-hello", "web-slow")' in f for f in filters)
    assert all('project = "proj"' in f for f in filters)


def test_own_smoke_requests_are_left_out(world: World) -> None:
    own = OwnRequests()
    for _ in range(20):  # as if every request web-hello served had been a smoke check of its tag URL
        own.record(world.urls["hello"] + "/", world.started + 1, world.started + 1, 200)
    checker = comparer(world, own, max_latency_increase=20)
    (verdict,) = checker.run(compare_step(world, "web-hello", ("web-slow",)))
    assert verdict.ok is None, verdict.detail
    assert "candidate 0 requests (20 smoke-check requests left out)" in verdict.detail
    assert "only 0 candidate requests" in verdict.detail


def test_no_baseline_is_inconclusive(world: World) -> None:
    (verdict,) = comparer(world, max_latency_increase=20).run(compare_step(world, "web-hello", ()))
    assert verdict.ok is None and "no baseline" in verdict.detail


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"executionErrors": [{"code": 14, "message": "shard unavailable"}]},
            "executionErrors: shard unavailable",
        ),
        ({"unreachable": ["projects/other"]}, "unreachable: projects/other"),
    ],
)
def test_partial_answers_are_inconclusive_and_say_why(body: dict[str, Any], words: str) -> None:
    page = series_page({"timeSeries": [], **body})
    with pytest.raises(MonitoringError, match=words):
        partial(page)
    partial(SeriesPage([], ""))  # a complete page passes


def test_a_partial_answer_makes_the_round_inconclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "MONITORING_POLICY", replace(analysis.MONITORING_POLICY, base_delay=0.01))

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            assert 'project = "proj"' in query["filter"][0]
            reply(self, 200, json.dumps({"unreachable": ["projects/proj/locations/us-central1"]}).encode())

    server, url = serve(Handler)
    try:
        checker = Analysis(
            AnalysisSettings(baseline="revision", max_latency_increase=20, max_error_rate=5),
            session=requests.Session(),
            project="proj",
            region="us-central1",
            service="web",
            monitoring_endpoint=url,
        )
        step = StepInfo(10, "web-a", "web-b", "http://x", "http://y", 0.0, 1, baseline=("web-b",))
        verdicts = checker.run(step)
    finally:
        server.shutdown()
        server.server_close()
    assert [v.name for v in verdicts] == ["metrics", "baseline"]
    assert all(v.ok is None and "partial (unreachable" in v.detail for v in verdicts)


def test_absolute_thresholds_leave_the_smoke_checks_out_too(world: World) -> None:
    own = OwnRequests()
    for _ in range(15):
        own.record(world.urls["hello"] + "/", world.started + 1, world.started + 1, 200)
    checker = Analysis(
        AnalysisSettings(max_error_rate=5, min_requests=10),
        session=requests.Session(),
        project="proj",
        region="us-central1",
        service="web",
        monitoring_endpoint=world.monitoring_url,
        own=own,
    )
    step = StepInfo(10, "web-hello", None, world.urls["hello"], world.urls["service"], world.started, 1)
    (verdict,) = checker.run(step)
    assert verdict.ok is None, verdict.detail
    assert verdict.detail == "only 5 requests (< min 10): inconclusive (15 smoke-check requests left out)"
    assert verdict.figures["own_requests"] == 15
