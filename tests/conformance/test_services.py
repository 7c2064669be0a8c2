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

from cloudrun_emulator.store import project_number
from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud


def routing(pairs: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, str]]:
    """Percent per revision and tag -> revision, from update-traffic's output (read from status)."""
    shares = {
        p["revisionName"]: int(p["statusPercent"]) for p in pairs if p["statusPercent"] not in ("", "-", "0")
    }
    tagged = {t["tag"]: p["revisionName"] for p in pairs for t in p["tags"] if t["inStatus"]}
    return shares, tagged


def tag_url(pairs: list[dict[str, Any]], tag: str) -> str:
    return next(t["url"] for p in pairs for t in p["tags"] if t["tag"] == tag)


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
    assert svc["metadata"]["name"] == "one" and svc["metadata"]["namespace"] == project_number(gc.project)
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
    pairs = gc.run("run", "services", "update-traffic", "app", "--to-revisions", f"{v1}=70,{v2}=30")
    assert routing(pairs) == ({v1: 70, v2: 30}, {"green": v2})
    url = pairs[0]["serviceUrl"]
    served = {requests.get(url, timeout=5).json()["revision"] for _ in range(40)}
    assert served == {v1, v2}

    pairs = gc.run("run", "services", "update-traffic", "app", "--to-tags", "green=100")
    assert routing(pairs) == ({v2: 100}, {"green": v2})
    assert requests.get(url, timeout=5).json()["revision"] == v2

    pairs = gc.run("run", "services", "update-traffic", "app", "--to-revisions", f"{v1}=100")
    assert routing(pairs) == ({v1: 100}, {"green": v2})
    pairs = gc.run("run", "services", "update-traffic", "app", "--to-latest")
    assert routing(pairs) == ({v2: 100}, {"green": v2})
    assert [p["key"] for p in pairs if p["statusPercent"] == "100"] == ["LATEST"]
    assert requests.get(url, timeout=5).json()["revision"] == v2


def test_update_set_and_remove_tags(gc: Gcloud, two: tuple[str, str]) -> None:
    v1, v2 = two
    pairs = gc.run("run", "services", "update-traffic", "app", "--update-tags", f"blue={v1}")
    assert routing(pairs) == ({v1: 100}, {"blue": v1, "green": v2})
    blue = tag_url(pairs, "blue")
    assert requests.get(blue, timeout=5).json()["revision"] == v1
    pairs = gc.run("run", "services", "update-traffic", "app", "--set-tags", f"canary={v2}")  # replaces all
    assert routing(pairs) == ({v1: 100}, {"canary": v2})
    with pytest.raises(requests.ConnectionError):
        requests.get(blue, timeout=5)  # a removed tag's URL stops answering
    pairs = gc.run("run", "services", "update-traffic", "app", "--remove-tags", "canary")
    assert routing(pairs) == ({v1: 100}, {})
    bad = gc.call("run", "services", "update-traffic", "app", "--set-tags", "x=app-nope")
    assert bad.returncode == 1
    assert "spec.traffic[1].revisionName: Revision 'app-nope' does not exist." in bad.stderr
    assert bad.stderr.count("revisionName") == 1


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
