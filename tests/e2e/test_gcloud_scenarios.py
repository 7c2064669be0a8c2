"""The action next to a real operator: gcloud creates the service, changes traffic mid-bake, and reads
the result back as a second, independent reader of what the action reports.

gcloud (tests/gcloud.py) runs against the session emulator; the action runs as the runner runs it
(tests/harness.py). After each scenario `gcloud run services describe` must agree with the action's
outputs: url, revision, traffic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from devtools import harness
from tests import gcloud
from tests.cloudrun import Api
from tests.e2e.cancellation import wait_until
from tests.helpers import inputs

pytestmark = pytest.mark.gcloud


@pytest.fixture
def gc(emulator: Emulator, project: str) -> gcloud.Gcloud:
    gcloud.require()
    return gcloud.Gcloud(emulator.url, project)


def traffic_of(entries: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(revision, percent, tag) triples, sorted, from status.traffic or the action's traffic output."""
    return sorted((e["revisionName"], e.get("percent", 0), e.get("tag", "")) for e in entries)


def assert_gcloud_agrees(gc: gcloud.Gcloud, service: str, outputs: dict[str, str]) -> dict[str, Any]:
    """gcloud's describe shows what the action reported: url, revision, traffic, once the last write
    is reconciled (the action does not wait for a promote that only drops 0 % entries: it changes no
    route, but status lists those entries until Cloud Run has observed it)."""
    Api(gc.base_url, gc.project, gc.region).wait_routes(service)
    svc = gc.run("run", "services", "describe", service)
    assert svc["status"]["url"] == outputs["url"]
    assert traffic_of(svc["status"]["traffic"]) == traffic_of(json.loads(outputs["traffic"]))
    served = {e["revisionName"] for e in svc["status"]["traffic"] if e.get("percent")}
    if outputs["result"] == "promoted":
        assert served == {outputs["revision"]}
        assert svc["status"]["latestReadyRevisionName"] == outputs["revision"]
    else:
        assert outputs["revision"] not in served
    revisions = {r["metadata"]["name"] for r in gc.run("run", "revisions", "list", "--service", service)}
    assert outputs["revision"] in revisions
    return svc


def test_service_created_by_gcloud_then_rolled_out_by_the_action(
    gc: gcloud.Gcloud, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    created = gc.run(
        "run", "deploy", "shop", "--image", "sample/hello:v1", "--set-env-vars", "TIER=gold",
        "--memory", "1Gi", "--max-instances", "7",
    )  # fmt: skip
    first = created["status"]["latestReadyRevisionName"]
    template = created["spec"]["template"]
    assert template["metadata"]["annotations"]["run.googleapis.com/startup-cpu-boost"] == "True"
    nonce = template["metadata"]["labels"]["client.knative.dev/nonce"]

    result = harness.run(
        inputs(emulator, project, service="shop", image="sample/hello:v2", steps="50,100"), tmp_path=tmp_path
    )
    assert result.returncode == 0, result.log
    out = result.outputs
    assert (out["result"], out["previous_revision"]) == ("promoted", first)
    svc = assert_gcloud_agrees(gc, "shop", out)
    template = svc["spec"]["template"]
    # What the operator set with gcloud survives the action's rollout.
    annotations = template["metadata"]["annotations"]
    assert annotations["run.googleapis.com/startup-cpu-boost"] == "True"
    assert annotations["autoscaling.knative.dev/maxScale"] == "7"
    (container,) = template["spec"]["containers"]
    assert container["image"] == "sample/hello:v2"
    assert {"name": "TIER", "value": "gold"} in container["env"]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert container["startupProbe"]["tcpSocket"] == {"port": 8080}
    assert template["metadata"]["labels"] == {"client.knative.dev/nonce": nonce}  # kept, harmless
    body = requests.get(out["url"], timeout=5).json()
    assert (body["revision"], body["env"]) == (out["revision"], {"TIER": "gold"})

    # The operator keeps using gcloud afterwards: gcloud finds the action's revision by its name and
    # pins its image digest; the action pinned traffic, so the new revision gets none until moved.
    digest = gc.run("run", "revisions", "describe", out["revision"])["status"]["imageDigest"]
    updated = gc.run("run", "services", "update", "shop", "--update-env-vars", "TIER=silver")
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == digest
    newest = updated["status"]["latestReadyRevisionName"]
    assert newest != out["revision"]
    assert requests.get(out["url"], timeout=5).json()["env"] == {"TIER": "gold"}
    gc.run("run", "services", "update-traffic", "shop", "--to-latest")
    after = requests.get(out["url"], timeout=5).json()
    assert (after["revision"], after["env"]) == (newest, {"TIER": "silver"})


def test_failed_rollout_reads_the_same_through_gcloud(
    gc: gcloud.Gcloud, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    first = gc.run("run", "deploy", "crashy", "--image", "sample/hello:v1")["status"][
        "latestReadyRevisionName"
    ]
    result = harness.run(
        inputs(emulator, project, service="crashy", image="sample/hello:v2", smoke_body="never-there"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.log
    out = result.outputs
    assert (out["result"], out["previous_revision"]) == ("rolled_back", first)
    svc = assert_gcloud_agrees(gc, "crashy", out)
    assert {e["revisionName"] for e in svc["status"]["traffic"] if e.get("percent")} == {first}


def test_operator_update_traffic_during_a_bake_is_kept(
    gc: gcloud.Gcloud, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """`gcloud run services update-traffic --to-revisions OLD=100` mid-bake: the operator wins."""
    old = gc.run("run", "deploy", "bake", "--image", "sample/hello:v1")["status"]["latestReadyRevisionName"]
    action = inputs(
        emulator, project, service="bake", image="sample/hello:v2", steps="10,100", step_interval="15s"
    )
    with harness.start(action, tmp_path=tmp_path) as running:
        running.wait_for_output(r"::group::10%25", timeout=60)
        # Once Cloud Run serves the 10 % step the action writes nothing until the bake ends (15 s):
        # gcloud's read and write do not race the action's own step write (a 409 for gcloud).
        api = Api(gc.base_url, gc.project, gc.region)
        wait_until(lambda: 10 in [e.get("percent") for e in api.wait_routes("bake")["status"]["traffic"]], 30)
        gc.run("run", "services", "update-traffic", "bake", "--to-revisions", f"{old}=100")
        result = running.wait(timeout=90)
    svc = gc.run("run", "services", "describe", "bake")
    served = {e["revisionName"]: e["percent"] for e in svc["status"]["traffic"] if e.get("percent")}
    assert served == {old: 100}, svc["status"]["traffic"]
    assert result.returncode != 0, result.log
    assert result.outputs.get("result") != "promoted", result.log
    assert_gcloud_agrees(gc, "bake", result.outputs)
