"""`gcloud run deploy` against the emulator, checked against Cloud Run's documented behaviour."""

from __future__ import annotations

import requests

from tests.gcloud import Gcloud


def test_deploy_creates_a_ready_service_that_answers(gc: Gcloud) -> None:
    svc = gc.run("run", "deploy", "hello", "--image", "sample/hello")
    ready = {c["type"]: c["status"] for c in svc["status"]["conditions"]}
    assert ready == {"Ready": "True", "ConfigurationsReady": "True", "RoutesReady": "True"}
    revision = svc["status"]["latestReadyRevisionName"]
    assert revision.startswith("hello-00001-")
    assert requests.get(svc["status"]["url"], timeout=5).json()["revision"] == revision
