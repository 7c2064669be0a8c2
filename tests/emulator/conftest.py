"""Shared fixtures: one in-process emulator per module, a fresh namespace (project) per test."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator

READY_DELAY = 0.15
_ids = itertools.count()


class Api:
    """A tiny client bound to one namespace, so tests read like the calls they make."""

    def __init__(self, base: str, project: str) -> None:
        self.base = base
        self.project = project
        self.ns = f"{base}/apis/serving.knative.dev/v1/namespaces/{project}"
        self.http = requests.Session()

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
        url = f"{self.base}/v1/projects/{self.project}/locations/us-central1/services/{service}:{verb}"
        if body is None:
            return self.http.get(url, timeout=10)
        return self.http.post(url, json=body, timeout=10)

    def wait(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll until the current generation is observed and Ready is decided."""
        deadline = time.monotonic() + timeout
        while True:
            service = self.get(name).json()
            status = service.get("status", {})
            ready = condition(service, "Ready")
            fresh = status.get("observedGeneration") == service["metadata"]["generation"]
            if fresh and ready.get("status") in ("True", "False"):
                return service
            assert time.monotonic() < deadline, f"{name} never became ready: {status}"
            time.sleep(0.05)

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create and wait until Ready=True."""
        response = self.create(body)
        assert response.status_code == 200, response.text
        service = self.wait(body["metadata"]["name"])
        assert condition(service, "Ready")["status"] == "True", service["status"]
        return service


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """One condition of an object's status, or {}."""
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


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


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, ready_delay=READY_DELAY, start_timeout=5.0) as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The module's emulator with no faults, an empty log and the default delay."""
    emulator.faults.clear()
    emulator.log.clear()
    emulator.set_ready_delay(READY_DELAY)
    yield emulator
    emulator.faults.clear()


@pytest.fixture
def api(emu: Emulator) -> Api:
    """A client on a namespace no other test uses."""
    return Api(emu.url, f"project-{next(_ids)}")
