"""What the data plane hands Cloud Monitoring: requests that reached an instance (tag URLs included),
with the latency it really served; the front end's own errors are not counted, as Google documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from cloudrun_emulator.dataplane import DataPlane
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.monitoring import format_timestamp, time_series
from tests.emulator.revisions import KEY, run, start_ready


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    with DataPlane(ImageCatalogue(), start_timeout=10.0) as dp:
        yield dp


def test_requests_that_never_reached_an_instance_are_not_counted(plane: DataPlane) -> None:
    start_ready(plane, run("web-ok"))
    plane.start_revision(run("web-missing", "nope/nope"))  # never starts: the front end answers 503
    urls = plane.route(KEY, [("web-ok", 100)], {"gone": "web-missing", "ok": "web-ok"})
    assert requests.get(urls.tags["gone"], timeout=5).status_code == 503
    assert requests.get(urls.tags["ok"], timeout=5).status_code == 200
    plane.stop_revision("web-ok")
    assert requests.get(urls.url, timeout=5).status_code == 503  # its process is gone
    assert [(s.revision, s.status) for s in plane.samples()] == [("web-ok", 200)]


def test_latencies_are_a_delta_distribution_per_revision_with_tag_requests(plane: DataPlane) -> None:
    start_ready(plane, run("web-fast"))
    start_ready(plane, run("web-slow", "sample/slow", {"DELAY_MS": "150"}))
    urls = plane.route(KEY, [("web-fast", 100)], {"slow": "web-slow"})
    for _ in range(3):
        assert requests.get(urls.tags["slow"], timeout=5).status_code == 200
        assert requests.get(urls.url, timeout=5).status_code == 200
    samples = plane.samples()
    start, end = min(s.time for s in samples) - 1, max(s.time for s in samples) + 1
    status, body = time_series(
        {
            "filter": [
                'metric.type = "run.googleapis.com/request_latencies" AND '
                'resource.labels.revision_name = "web-slow"'
            ],
            "interval.startTime": [format_timestamp(start)],
            "interval.endTime": [format_timestamp(end)],
            "aggregation.alignmentPeriod": ["60s"],
            "aggregation.perSeriesAligner": ["ALIGN_DELTA"],
            "aggregation.crossSeriesReducer": ["REDUCE_SUM"],
        },
        samples,
        project="p",
        location="us-central1",
        now=end + 1000,
    )
    assert status == 200, body
    (series,) = body["timeSeries"]
    assert (series["metricKind"], series["valueType"], series["unit"]) == ("DELTA", "DISTRIBUTION", "ms")
    value = series["points"][0]["value"]["distributionValue"]
    assert value["count"] == "3" and value["range"]["min"] >= 150
    assert value["bucketOptions"] == {
        "exponentialBuckets": {"numFiniteBuckets": 64, "growthFactor": 1.4, "scale": 1.0}
    }
    counts = [int(c) for c in value["bucketCounts"]]
    assert sum(counts) == 3 and counts.index(max(counts)) >= 15  # 150 ms and more: bucket 15 [111, 156) on
