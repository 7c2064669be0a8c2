"""The emulator's jobs API as a client drives it: create, replace, run and wait for executions, and
read their tasks (``Jobs``); a Job body (``job_body``) and a shell command for its container
(``shell``). The operator's read-only view for the end-to-end suites is ``tests.helpers.Jobs``."""

from __future__ import annotations

from typing import Any

import requests

from tests.cloudrun import completed

JOB_IMAGE = "us-docker.pkg.dev/cloudrun/container/job"


class Jobs:
    def __init__(self, base: str, project: str) -> None:
        self.ns = f"{base}/apis/run.googleapis.com/v1/namespaces/{project}"
        self.project = project

    def create(self, body: dict[str, Any], **params: str) -> requests.Response:
        return requests.post(f"{self.ns}/jobs", json=body, params=params, timeout=10)

    def put(self, body: dict[str, Any]) -> requests.Response:
        return requests.put(f"{self.ns}/jobs/{body['metadata']['name']}", json=body, timeout=10)

    def get(self, name: str) -> dict[str, Any]:
        resp = requests.get(f"{self.ns}/jobs/{name}", timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def run(self, name: str, overrides: dict[str, Any] | None = None) -> requests.Response:
        body = {"overrides": overrides} if overrides else {}
        return requests.post(f"{self.ns}/jobs/{name}:run", json=body, timeout=10)

    def execution(self, name: str) -> dict[str, Any]:
        return requests.get(f"{self.ns}/executions/{name}", timeout=10).json()

    def tasks(self, execution: str) -> list[dict[str, Any]]:
        params = {"labelSelector": f"run.googleapis.com/execution={execution}"}
        items = requests.get(f"{self.ns}/tasks", params=params, timeout=10).json()["items"]
        return sorted(items, key=lambda t: t["status"].get("index", 0))

    def finished(self, name: str, timeout: float = 30) -> dict[str, Any]:
        return completed(lambda: self.execution(name), timeout)

    def execute(self, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self.run(name, overrides)
        assert resp.status_code == 200, resp.text
        return self.finished(resp.json()["metadata"]["name"])


def job_body(name: str, *, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"image": spec.pop("image", JOB_IMAGE)}
    if command:
        container["command"] = command
    if "env" in spec:
        container["env"] = [{"name": k, "value": v} for k, v in spec.pop("env").items()]
    task: dict[str, Any] = {"containers": [container]}
    task.update({k: spec.pop(k) for k in ("maxRetries", "timeoutSeconds") if k in spec})
    return {
        "apiVersion": "run.googleapis.com/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {**spec, "template": {"spec": task}}}},
    }


def shell(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]
