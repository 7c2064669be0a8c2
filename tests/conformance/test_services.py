"""`gcloud run services describe|list|update|update-traffic|replace|delete` against the emulator.

References: https://cloud.google.com/run/docs/rollouts-rollbacks-traffic-migration (traffic, tags),
https://cloud.google.com/run/docs/reference/yaml/v1 and
https://cloud.google.com/run/docs/deploying#yaml (export and replace),
https://cloud.google.com/run/docs/managing/services (list, describe, delete).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud


def percents(svc: dict[str, Any]) -> dict[str, int]:
    """Percent of traffic per revision in status.traffic (gcloud keeps tags on 0 % entries)."""
    out: dict[str, int] = {}
    for target in svc["status"]["traffic"]:
        if target.get("percent"):
            out[target["revisionName"]] = out.get(target["revisionName"], 0) + target["percent"]
    return out


def tags(svc: dict[str, Any]) -> dict[str, str]:
    """Tag -> revision in status.traffic."""
    return {t["tag"]: t["revisionName"] for t in svc["status"]["traffic"] if t.get("tag")}


@pytest.fixture
def two(gc: Gcloud) -> tuple[str, str]:
    """Service `app`: v1 serving 100 %, v2 deployed without traffic and tagged `green`."""
    gc.run("run", "deploy", "app", "--image", "sample/hello:v1", "--revision-suffix", "v1")
    gc.run(
        "run",
        "deploy",
        "app",
        "--image",
        "sample/hello:v2",
        "--revision-suffix",
        "v2",
        "--no-traffic",
        "--tag",
        "green",
    )
    return "app-v1", "app-v2"


def test_describe_and_list(gc: Gcloud) -> None:
    gc.run("run", "deploy", "one", "--image", "sample/hello")
    gc.run("run", "deploy", "two", "--image", "sample/hello")
    listed = gc.run("run", "services", "list")
    assert sorted(s["metadata"]["name"] for s in listed) == ["one", "two"]
    table = gc.text("run", "services", "list", "--format", "table(metadata.name,region)")
    assert table.split() == ["NAME", "REGION", "one", "us-central1", "two", "us-central1"]
    svc = gc.run("run", "services", "describe", "one")
    assert svc["metadata"]["name"] == "one" and svc["metadata"]["namespace"] == gc.project
    missing = gc.call("run", "services", "describe", "nope")
    assert missing.returncode == 1 and "Cannot find service [nope]" in missing.stderr


def test_update_env_vars_makes_a_new_revision_pinned_by_digest(gc: Gcloud) -> None:
    first = gc.run("run", "deploy", "env", "--image", "sample/hello", "--set-env-vars", "A=1")
    image_digest = gc.run("run", "revisions", "describe", first["status"]["latestReadyRevisionName"])[
        "status"
    ]["imageDigest"]
    svc = gc.run("run", "services", "update", "env", "--update-env-vars", "B=2")
    assert svc["status"]["latestReadyRevisionName"] != first["status"]["latestReadyRevisionName"]
    (container,) = svc["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert container["image"] == image_digest  # gcloud pins the running digest on update
    assert requests.get(svc["status"]["url"], timeout=5).json()["env"] == {"A": "1", "B": "2"}
    svc = gc.run("run", "services", "update", "env", "--remove-env-vars", "A", "--memory", "256Mi")
    (container,) = svc["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "B", "value": "2"}]
    assert container["resources"]["limits"]["memory"] == "256Mi"


def test_update_traffic_to_revisions_to_tags_to_latest(gc: Gcloud, two: tuple[str, str]) -> None:
    v1, v2 = two
    gc.run("run", "services", "update-traffic", "app", "--to-revisions", f"{v1}=70,{v2}=30")
    svc = gc.run("run", "services", "describe", "app")
    assert (percents(svc), tags(svc)) == ({v1: 70, v2: 30}, {"green": v2})
    counts: dict[str, int] = {}
    for _ in range(40):
        served = requests.get(svc["status"]["url"], timeout=5).json()["revision"]
        counts[served] = counts.get(served, 0) + 1
    assert set(counts) == {v1, v2}

    gc.run("run", "services", "update-traffic", "app", "--to-tags", "green=100")
    svc = gc.run("run", "services", "describe", "app")
    assert (percents(svc), tags(svc)) == ({v2: 100}, {"green": v2})

    gc.run("run", "services", "update-traffic", "app", "--to-revisions", f"{v1}=100")
    gc.run("run", "services", "update-traffic", "app", "--to-latest")
    svc = gc.run("run", "services", "describe", "app")
    assert svc["spec"]["traffic"][0] == {"latestRevision": True, "percent": 100}
    assert (percents(svc), tags(svc)) == ({v2: 100}, {"green": v2})
    assert requests.get(svc["status"]["url"], timeout=5).json()["revision"] == v2


def test_update_set_and_remove_tags(gc: Gcloud, two: tuple[str, str]) -> None:
    v1, v2 = two
    gc.run("run", "services", "update-traffic", "app", "--update-tags", f"blue={v1}")
    svc = gc.run("run", "services", "describe", "app")
    assert (percents(svc), tags(svc)) == ({v1: 100}, {"blue": v1, "green": v2})
    blue = next(t["url"] for t in svc["status"]["traffic"] if t.get("tag") == "blue")
    assert requests.get(blue, timeout=5).json()["revision"] == v1
    gc.run("run", "services", "update-traffic", "app", "--set-tags", f"canary={v2}")  # replaces all tags
    svc = gc.run("run", "services", "describe", "app")
    assert (percents(svc), tags(svc)) == ({v1: 100}, {"canary": v2})
    gc.run("run", "services", "update-traffic", "app", "--remove-tags", "canary")
    svc = gc.run("run", "services", "describe", "app")
    assert (percents(svc), tags(svc)) == ({v1: 100}, {})
    with pytest.raises(requests.ConnectionError):
        requests.get(blue, timeout=5)  # a removed tag's URL stops answering
    bad = gc.call("run", "services", "update-traffic", "app", "--set-tags", "x=app-nope")
    assert bad.returncode == 1 and "app-nope" in bad.stderr


def test_export_then_replace_round_trip(gc: Gcloud, tmp_path: Path) -> None:
    gc.run("run", "deploy", "web", "--image", "sample/hello:v1")
    exported = gc.text("run", "services", "describe", "web", "--format", "export")
    doc = yaml.safe_load(exported)
    assert "status" not in doc and "resourceVersion" not in doc["metadata"]
    assert doc["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    path = tmp_path / "web.yaml"
    path.write_text(exported)
    before = gc.run("run", "revisions", "list", "--service", "web")
    gc.run("run", "services", "replace", str(path))  # unchanged: no new revision
    assert len(gc.run("run", "revisions", "list", "--service", "web")) == len(before) == 1

    doc["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:v2"
    doc["spec"]["template"]["metadata"]["labels"]["client.knative.dev/nonce"] = "round2"
    path.write_text(yaml.safe_dump(doc))
    svc = gc.run("run", "services", "replace", str(path))
    assert len(gc.run("run", "revisions", "list", "--service", "web")) == 2
    assert svc["spec"]["template"]["spec"]["containers"][0]["image"] == "sample/hello:v2"
    assert requests.get(svc["status"]["url"], timeout=5).json()["image"] == "sample/hello:v2"


def test_replace_refuses_two_ingress_containers(gc: Gcloud, tmp_path: Path) -> None:
    """Cloud Run: exactly one container declares the port (https://cloud.google.com/run/docs/deploying#sidecars)."""
    container = {"image": "sample/hello", "ports": [{"containerPort": 8080}]}
    doc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "dual"},
        "spec": {
            "template": {"spec": {"containers": [{**container, "name": "a"}, {**container, "name": "b"}]}}
        },
    }
    path = tmp_path / "dual.yaml"
    path.write_text(yaml.safe_dump(doc))
    refused = gc.call("run", "services", "replace", str(path))
    assert refused.returncode == 1
    assert "exactly one container must declare a port" in refused.stderr
    assert gc.call("run", "services", "describe", "dual").returncode == 1  # nothing was written


def test_delete(gc: Gcloud) -> None:
    svc = gc.run("run", "deploy", "gone", "--image", "sample/hello")
    gc.run("run", "services", "delete", "gone")
    assert gc.run("run", "services", "list") in (None, [])
    assert gc.call("run", "services", "describe", "gone").returncode == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(svc["status"]["url"], timeout=5)
