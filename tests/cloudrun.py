"""Test helpers that talk to the emulator the way an operator would: plain HTTP, Cloud Run paths."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

FLAKY_APP = Path(__file__).parent / "apps" / "flaky.py"
PRIVATE_APP = Path(__file__).parent / "apps" / "private.py"  # 403 without an ID token
TEST_IMAGES = {
    "test/flaky": [sys.executable, str(FLAKY_APP)],
    "test/private": [sys.executable, str(PRIVATE_APP)],
}
# Cloud Monitoring's timing (60 s sampling, up to 180 s ingestion lag) scaled by 1/60 so suites stay
# fast: 1 s windows, 3 s lag. The action does not know the scale: it waits for the data to arrive.
METRIC_SCALE = 1 / 60
METRIC_SAMPLING, METRIC_LAG = 60 * METRIC_SCALE, 180 * METRIC_SCALE


def loopback_session() -> requests.Session:
    """A session for the emulator on loopback: no proxy or netrc settings from the environment, which
    requests would otherwise look up again for every request (a tenth of a test worker's CPU)."""
    session = requests.Session()
    session.trust_env = False
    return session


def poll_pauses(first: float = 0.05, factor: float = 1.5, most: float = 0.2) -> Iterator[float]:
    """Pauses between a test's reads of something that settles: quick at first (most changes settle
    within a few tenths of a second), then at most ``most`` s. Each read costs the test and the
    emulator a millisecond or two of CPU, and the suite waits thousands of times."""
    pause = first
    while True:
        yield pause
        pause = min(pause * factor, most)


class Api:
    """The Admin API v1 of one project on the emulator: the one test client.

    ``create``/``get``/``put``/``delete``/``revision``/``iam`` return the raw response (the emulator's
    own tests look at statuses and error bodies); the rest return parsed objects and wait for them.
    """

    def __init__(self, base: str, project: str, region: str = "us-central1"):
        self.base = base.rstrip("/")
        self.project = project
        self.region = region
        # The Knative paths carry no region (the emulator's plain host means us-central1); any other
        # region is addressed by location, as Cloud Run's v1 API allows through one endpoint.
        self.ns = (
            f"{self.base}/apis/serving.knative.dev/v1/namespaces/{project}"
            if region == "us-central1"
            else f"{self.base}/v1/projects/{project}/locations/{region}"
        )
        self.http = loopback_session()

    # ---- raw calls -------------------------------------------------------------------------------

    def create(self, body: dict[str, Any], **params: str) -> requests.Response:
        return self.http.post(f"{self.ns}/services", json=body, params=params, timeout=10)

    def get(self, name: str) -> requests.Response:
        return self.http.get(f"{self.ns}/services/{name}", timeout=10)

    def put(self, body: dict[str, Any], **params: str) -> requests.Response:
        name = body["metadata"]["name"]
        return self.http.put(f"{self.ns}/services/{name}", json=body, params=params, timeout=10)

    def delete(self, name: str) -> requests.Response:
        return self.http.delete(f"{self.ns}/services/{name}", timeout=10)

    def revision(self, name: str) -> requests.Response:
        return self.http.get(f"{self.ns}/revisions/{name}", timeout=10)

    def iam(self, service: str, verb: str, body: dict[str, Any] | None = None) -> requests.Response:
        url = f"{self.base}/v1/projects/{self.project}/locations/{self.region}/services/{service}:{verb}"
        if body is None:
            return self.http.get(url, timeout=10)
        return self.http.post(url, json=body, timeout=10)

    # ---- objects -----------------------------------------------------------------------------------

    def service(self, name: str) -> dict[str, Any]:
        resp = self.get(name)
        resp.raise_for_status()
        return resp.json()

    def exists(self, name: str) -> bool:
        return self.get(name).status_code == 200

    def revisions(self, service: str) -> list[str]:
        resp = self.http.get(
            f"{self.ns}/revisions",
            params={"labelSelector": f"serving.knative.dev/service={service}"},
            timeout=10,
        )
        resp.raise_for_status()
        return sorted(r["metadata"]["name"] for r in resp.json().get("items", []))

    def wait(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll until the current generation is observed and Ready is decided (True or False)."""
        deadline = time.monotonic() + timeout
        pauses = poll_pauses()
        while True:
            svc = self.get(name).json()
            status = svc.get("status", {})
            ready = condition(svc, "Ready")
            fresh = status.get("observedGeneration") == svc["metadata"]["generation"]
            if fresh and ready.get("status") in ("True", "False"):
                return svc
            assert time.monotonic() < deadline, f"{name} never became ready: {status}"
            time.sleep(next(pauses))

    def wait_ready(self, name: str, timeout: float = 20, condition_type: str = "Ready") -> dict[str, Any]:
        """Poll until the current generation is observed and ``condition_type`` is True."""
        end = time.monotonic() + timeout
        pauses = poll_pauses()
        while time.monotonic() < end:
            svc = self.service(name)
            status = svc.get("status", {})
            fresh = status.get("observedGeneration") == svc["metadata"]["generation"]
            if fresh and condition(svc, condition_type).get("status") == "True":
                return svc
            time.sleep(next(pauses))
        raise AssertionError(f"{name} not ready: {json.dumps(self.service(name).get('status'))}")

    def wait_routes(self, name: str, timeout: float = 20) -> dict[str, Any]:
        """Routes settled (the service may still report its failed latest revision as not Ready)."""
        return self.wait_ready(name, timeout, condition_type="RoutesReady")

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create ``body`` and wait until Ready=True."""
        response = self.create(body)
        assert response.status_code == 200, response.text
        svc = self.wait(body["metadata"]["name"])
        assert condition(svc, "Ready")["status"] == "True", svc["status"]
        return svc

    def create_service(
        self, name: str, image: str, revision: str, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A new service serving ``revision`` of ``image``, once Ready."""
        return self.deploy(service_body(name, image, revision, env=env))

    def replace_service(
        self, name: str, image: str, revision: str, traffic: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A PUT like another tool would make: new revision and a given traffic block."""
        svc = self.service(name)
        svc["spec"]["template"]["metadata"]["name"] = revision
        svc["spec"]["template"]["spec"]["containers"][0]["image"] = image
        svc["spec"]["traffic"] = traffic
        svc.pop("status", None)
        resp = self.put(svc)
        assert resp.status_code == 200, resp.text
        return self.wait_ready(name)


def api_path(project: str, rest: str = "") -> str:
    """A regex for API paths of ``project`` in either form the action uses: Knative-style
    (``namespaces/P``, at a regional endpoint) or by location (``projects/P/locations/R``, the form it
    uses through an endpoint override)."""
    name = re.escape(project)
    return rf"/(?:namespaces/{name}|projects/{name}/locations/[a-z0-9-]+)/{rest}"


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """One condition of an object's status, or {}."""
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def completed(read: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """An execution, read by ``read()`` until its Completed condition is set (``poll_pauses``);
    AssertionError once ``timeout`` s have passed without."""
    end = time.monotonic() + timeout
    pauses = poll_pauses()
    while condition(execution := read(), "Completed")["status"] == "Unknown":
        name = execution.get("metadata", {}).get("name")
        assert time.monotonic() < end, f"{name} did not finish: {execution.get('status')}"
        time.sleep(next(pauses))
    return execution


def service_body(
    name: str,
    image: str = "sample/hello",
    revision: str | None = None,
    traffic: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A minimal Service the way a client would write it."""
    template: dict[str, Any] = {"spec": {"containers": [{"image": image}]}}
    if revision:
        template["metadata"] = {"name": revision}
    if env:
        template["spec"]["containers"][0]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec: dict[str, Any] = {"template": template}
    if traffic is not None:
        spec["traffic"] = traffic
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": spec,
    }


def error_of(response: requests.Response) -> dict[str, Any]:
    """The Google error object of a failed response."""
    return response.json()["error"]


def routing(svc_or_traffic: dict[str, Any] | list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(revision, percent, tag) triples, sorted: what a user would compare."""
    entries = svc_or_traffic if isinstance(svc_or_traffic, list) else svc_or_traffic["status"]["traffic"]
    return sorted((e.get("revisionName", "LATEST"), e.get("percent", 0), e.get("tag", "")) for e in entries)


def spec_routing(svc: dict[str, Any]) -> list[tuple[str, int, str]]:
    return routing(svc["spec"]["traffic"])


def hit(url: str, n: int) -> dict[str, int]:
    """Send ``n`` requests to ``url`` and count the answering revisions."""
    counts: dict[str, int] = {}
    with loopback_session() as s:
        for _ in range(n):
            resp = s.get(url, timeout=10)
            key = resp.json().get("revision", "?") if resp.ok else f"HTTP {resp.status_code}"
            counts[key] = counts.get(key, 0) + 1
    return counts
