"""Test helpers that talk to the emulator the way an operator would: plain HTTP, Cloud Run paths."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

FLAKY_APP = Path(__file__).parent / "apps" / "flaky.py"
TEST_IMAGES = {"test/flaky": [sys.executable, str(FLAKY_APP)]}


class Api:
    """The Admin API v1 of one project on the emulator."""

    def __init__(self, base: str, project: str):
        self.base = base.rstrip("/")
        self.ns = f"{self.base}/apis/serving.knative.dev/v1/namespaces/{project}"
        self.project = project

    def service(self, name: str) -> dict[str, Any]:
        resp = requests.get(f"{self.ns}/services/{name}", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def exists(self, name: str) -> bool:
        return requests.get(f"{self.ns}/services/{name}", timeout=10).status_code == 200

    def revisions(self, service: str) -> list[str]:
        resp = requests.get(
            f"{self.ns}/revisions",
            params={"labelSelector": f"serving.knative.dev/service={service}"},
            timeout=10,
        )
        resp.raise_for_status()
        return sorted(r["metadata"]["name"] for r in resp.json().get("items", []))

    def create(
        self, name: str, image: str, revision: str, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        container: dict[str, Any] = {"image": image}
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        body = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {"metadata": {"name": revision}, "spec": {"containers": [container]}}},
        }
        resp = requests.post(f"{self.ns}/services", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        return self.wait_ready(name)

    def deploy(self, name: str, image: str, revision: str, traffic: list[dict[str, Any]]) -> dict[str, Any]:
        """A PUT like another tool would make: new revision and a given traffic block."""
        svc = self.service(name)
        svc["spec"]["template"]["metadata"]["name"] = revision
        svc["spec"]["template"]["spec"]["containers"][0]["image"] = image
        svc["spec"]["traffic"] = traffic
        svc.pop("status", None)
        resp = requests.put(f"{self.ns}/services/{name}", json=svc, timeout=10)
        assert resp.status_code == 200, resp.text
        return self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 20, condition: str = "Ready") -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            svc = self.service(name)
            status = svc.get("status", {})
            fresh = status.get("observedGeneration") == svc["metadata"]["generation"]
            ready = {c["type"]: c["status"] for c in status.get("conditions", [])}
            if fresh and ready.get(condition) == "True":
                return svc
            time.sleep(0.05)
        raise AssertionError(f"{name} not ready: {json.dumps(self.service(name).get('status'))}")

    def wait_routes(self, name: str, timeout: float = 20) -> dict[str, Any]:
        """Routes settled (the service may still report its failed latest revision as not Ready)."""
        return self.wait_ready(name, timeout, condition="RoutesReady")


def routing(svc_or_traffic: dict[str, Any] | list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(revision, percent, tag) triples, sorted: what a user would compare."""
    entries = svc_or_traffic if isinstance(svc_or_traffic, list) else svc_or_traffic["status"]["traffic"]
    return sorted((e.get("revisionName", "LATEST"), e.get("percent", 0), e.get("tag", "")) for e in entries)


def spec_routing(svc: dict[str, Any]) -> list[tuple[str, int, str]]:
    return routing(svc["spec"]["traffic"])


def hit(url: str, n: int) -> dict[str, int]:
    """Send ``n`` requests to ``url`` and count the answering revisions."""
    counts: dict[str, int] = {}
    with requests.Session() as s:
        for _ in range(n):
            resp = s.get(url, timeout=10)
            key = resp.json().get("revision", "?") if resp.ok else f"HTTP {resp.status_code}"
            counts[key] = counts.get(key, 0) + 1
    return counts
