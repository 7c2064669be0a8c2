"""Cloud Monitoring keeps projects and regions apart: two projects (or two regions) that name a
service and its revisions alike each see their own requests, labelled with their own region."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.monitoring import format_timestamp
from cloudrun_emulator.projects import project_number
from tests import cloudrun
from tests.cloudrun import Api


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(
        port=0, ready_delay=0.05, images=cloudrun.TEST_IMAGES, metric_sampling=0.5, metric_lag=0.5
    ) as e:
        yield e


def served(emu: Emulator, project: str, region: str, hits: int) -> None:
    """Service ``web`` (revision ``web-v1``) in ``project``/``region``, asked ``hits`` times."""
    svc = Api(emu.url, project, region).create_service("web", "sample/hello", "web-v1")
    for _ in range(hits):
        assert requests.get(svc["status"]["url"], timeout=10).status_code == 200


def counts(emu: Emulator, project: str, started: float, extra: str = "") -> dict[tuple[str, str, str], int]:
    """request_count of revision ``web-v1``, summed per (project label, region, revision)."""
    time.sleep(1.5)  # one sampling window and the lag
    query: dict[str, Any] = {
        "filter": 'metric.type = "run.googleapis.com/request_count" AND '
        f'resource.labels.revision_name = "web-v1"{extra}',
        "interval.startTime": format_timestamp(started - 60),
        "interval.endTime": format_timestamp(time.time()),
        "aggregation.alignmentPeriod": "3600s",
        "aggregation.perSeriesAligner": "ALIGN_DELTA",
        "aggregation.crossSeriesReducer": "REDUCE_SUM",
        "aggregation.groupByFields": ["resource.labels.location", "resource.labels.revision_name"],
    }
    resp = requests.get(f"{emu.url}/v3/projects/{project}/timeSeries", params=query, timeout=10)
    assert resp.status_code == 200, resp.text
    return {
        (
            s["resource"]["labels"]["project_id"],
            s["resource"]["labels"]["location"],
            s["resource"]["labels"]["revision_name"],
        ): int(s["points"][0]["value"]["int64Value"])
        for s in resp.json().get("timeSeries", [])
    }


def test_two_projects_with_the_same_names_see_their_own_requests(emu: Emulator) -> None:
    started = time.time()
    served(emu, "scope-a", "us-central1", 3)
    served(emu, "scope-b", "us-central1", 5)
    assert counts(emu, "scope-a", started) == {("scope-a", "us-central1", "web-v1"): 3}
    assert counts(emu, "scope-b", started) == {("scope-b", "us-central1", "web-v1"): 5}
    # Addressed by its number, a project is the same project, labelled with its ID as Google does.
    assert counts(emu, project_number("scope-b"), started) == {("scope-b", "us-central1", "web-v1"): 5}


def test_two_regions_of_one_project_are_labelled_apart(emu: Emulator) -> None:
    started = time.time()
    served(emu, "scope-c", "us-central1", 2)
    served(emu, "scope-c", "europe-west1", 4)
    assert counts(emu, "scope-c", started) == {
        ("scope-c", "us-central1", "web-v1"): 2,
        ("scope-c", "europe-west1", "web-v1"): 4,
    }
    only = counts(emu, "scope-c", started, ' AND resource.labels.location = "europe-west1"')
    assert only == {("scope-c", "europe-west1", "web-v1"): 4}


def test_the_project_selector_takes_an_id_or_a_number(emu: Emulator) -> None:
    """The action pins its project with ``project = "..."`` whichever form its input has."""
    started = time.time()
    served(emu, "scope-d", "us-central1", 2)
    want = {("scope-d", "us-central1", "web-v1"): 2}
    assert counts(emu, "scope-d", started, ' AND project = "scope-d"') == want
    assert counts(emu, "scope-d", started, f' AND project = "{project_number("scope-d")}"') == want
    assert counts(emu, "scope-d", started, ' AND project = "scope-e"') == {}
    assert counts(emu, "scope-d", started, ' AND project != "scope-d"') == {}
