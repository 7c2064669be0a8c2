"""`gcloud run deploy` against the emulator, checked against Cloud Run's documented behaviour.

References: https://cloud.google.com/run/docs/deploying (deploy, sidecars),
https://cloud.google.com/run/docs/rollouts-rollbacks-traffic-migration (--no-traffic, --tag),
https://cloud.google.com/run/docs/configuring/healthchecks (the default startup probe).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj["status"]["conditions"]}


def test_deploy_creates_a_ready_service_that_answers(gc: Gcloud) -> None:
    """Default flags: gcloud first asks testIamPermissions (to offer --allow-unauthenticated)."""
    svc = gc.run("run", "deploy", "hello", "--image", "sample/hello")
    assert conditions(svc) == {"Ready": "True", "ConfigurationsReady": "True", "RoutesReady": "True"}
    revision = svc["status"]["latestReadyRevisionName"]
    assert revision.startswith("hello-00001-")
    assert svc["status"]["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": revision}]
    assert requests.get(svc["status"]["url"], timeout=5).json()["revision"] == revision


def test_deployed_service_carries_what_cloud_run_stores(gc: Gcloud) -> None:
    """Location label, gcloud's annotations and nonce, CPU boost, and the default startup probe."""
    gc.run("run", "deploy", "hello", "--image", "sample/hello")
    svc = gc.run("run", "services", "describe", "hello")
    assert svc["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    assert svc["metadata"]["annotations"]["run.googleapis.com/client-name"] == "gcloud"
    template = svc["spec"]["template"]
    assert template["metadata"]["annotations"]["run.googleapis.com/startup-cpu-boost"] == "True"
    assert "client.knative.dev/nonce" in template["metadata"]["labels"]
    (container,) = template["spec"]["containers"]
    assert container["ports"] == [{"containerPort": 8080, "name": "http1"}]
    assert container["resources"]["limits"] == {"cpu": "1000m", "memory": "512Mi"}
    assert container["startupProbe"] == {
        "tcpSocket": {"port": 8080},
        "timeoutSeconds": 240,
        "periodSeconds": 240,
        "failureThreshold": 1,
    }
    assert template["spec"]["containerConcurrency"] == 80
    assert template["spec"]["timeoutSeconds"] == 300
    revision = gc.run("run", "revisions", "describe", svc["status"]["latestReadyRevisionName"])
    assert revision["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    assert revision["spec"]["containers"][0]["startupProbe"]["tcpSocket"] == {"port": 8080}


def test_deploy_flags_land_in_the_template(gc: Gcloud) -> None:
    svc = gc.run(
        "run", "deploy", "web", "--image", "sample/hello", "--port", "9000",
        "--set-env-vars", "A=1,B=two", "--cpu", "2", "--memory", "1Gi",
        "--min-instances", "1", "--max-instances", "5", "--allow-unauthenticated",
    )  # fmt: skip
    template = svc["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/minScale"] == "1"
    assert annotations["autoscaling.knative.dev/maxScale"] == "5"
    (container,) = template["spec"]["containers"]
    assert container["ports"] == [{"containerPort": 9000, "name": "http1"}]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert container["startupProbe"]["tcpSocket"] == {"port": 9000}  # the probe follows the port
    body = requests.get(svc["status"]["url"], timeout=5).json()
    assert body["env"] == {"A": "1", "B": "two"}
    policy = gc.run("run", "services", "get-iam-policy", "web")
    assert {"role": "roles/run.invoker", "members": ["allUsers"]} in policy["bindings"]


def test_deploy_no_traffic_tag_then_update_traffic_to_the_tag(gc: Gcloud) -> None:
    """gcloud sends the unchanged template (same revision name) back: not a new revision, no 409."""
    first = gc.run("run", "deploy", "app", "--image", "sample/hello:v1")["status"]["latestReadyRevisionName"]
    svc = gc.run("run", "deploy", "app", "--image", "sample/hello:v2", "--no-traffic", "--tag", "green")
    second = svc["status"]["latestCreatedRevisionName"]
    assert second != first
    assert svc["status"]["traffic"][0] == {"percent": 100, "revisionName": first}
    green = svc["status"]["traffic"][1]
    assert (green["revisionName"], green["tag"], green.get("percent")) == (second, "green", None)
    assert requests.get(green["url"], timeout=5).json()["revision"] == second
    assert requests.get(svc["status"]["url"], timeout=5).json()["revision"] == first

    pairs = gc.run("run", "services", "update-traffic", "app", "--to-tags", "green=10")
    assert {p["revisionName"]: p["statusPercent"] for p in pairs} == {first: "90", second: "10"}
    revisions = gc.run("run", "revisions", "list", "--service", "app")
    assert sorted(r["metadata"]["name"] for r in revisions) == sorted([first, second])


def test_deploy_sidecars_with_one_ingress_container(gc: Gcloud) -> None:
    svc = gc.run(
        "run", "deploy", "side",
        "--container", "app", "--image", "sample/hello", "--port", "8080", "--set-env-vars", "ROLE=app",
        "--depends-on", "agent",
        "--container", "agent", "--image", "sample/slow",
    )  # fmt: skip
    app, agent = svc["spec"]["template"]["spec"]["containers"]
    assert (app["name"], agent["name"]) == ("app", "agent")
    assert app["ports"] == [{"containerPort": 8080, "name": "http1"}]
    assert app["startupProbe"]["tcpSocket"] == {"port": 8080}
    assert "ports" not in agent and "startupProbe" not in agent  # sidecars get neither
    dependencies = svc["spec"]["template"]["metadata"]["annotations"][
        "run.googleapis.com/container-dependencies"
    ]
    assert json.loads(dependencies) == {"app": ["agent"]}
    assert requests.get(svc["status"]["url"], timeout=5).json()["env"] == {"ROLE": "app"}


def test_deploy_to_another_region_is_labelled_with_it(gc: Gcloud) -> None:
    """gcloud addresses europe-west1-<host>: the service lives in, and is labelled with, that region."""
    svc = gc.run("run", "deploy", "eu", "--image", "sample/hello", "--region", "europe-west1")
    assert svc["metadata"]["labels"]["cloud.googleapis.com/location"] == "europe-west1"
    listed = gc.text("run", "services", "list", "--region", "europe-west1", "--format", "value(name,region)")
    assert listed.split() == ["eu", "europe-west1"]


def test_one_name_in_two_regions_is_two_services(gc: Gcloud) -> None:
    """A service name is per project and region: `gcloud run deploy web --region` twice makes two
    services, each with its own revisions and URL (issue 25; docs/cloud-run-facts.md fact 19)."""
    us = gc.run("run", "deploy", "web", "--image", "sample/hello:v1", "--region", "us-central1")
    eu = gc.run("run", "deploy", "web", "--image", "sample/hello:v2", "--region", "europe-west1")
    assert us["status"]["url"] != eu["status"]["url"]
    for region, image in (("us-central1", "sample/hello:v1"), ("europe-west1", "sample/hello:v2")):
        revisions = gc.text(
            "run", "revisions", "list", "--service", "web", "--region", region, "--format", "value(name)"
        ).split()
        assert len(revisions) == 1, (region, revisions)
        described = gc.run("run", "services", "describe", "web", "--region", region)
        assert described["spec"]["template"]["spec"]["containers"][0]["image"] == image
        assert requests.get(described["status"]["url"], timeout=5).json()["image"] == image


def test_update_secrets_from_another_project_writes_an_alias_the_emulator_resolves(gc: Gcloud) -> None:
    """gcloud's secrets_mapping: an alias in secretKeyRef.name, `alias:projects/N/secrets/S` on the
    template's run.googleapis.com/secrets annotation (run.v1.json SecretKeySelector.name)."""
    gc.run("run", "deploy", "vault", "--image", "sample/hello")
    svc = gc.run(
        "run",
        "deploy",
        "vault",
        "--image",
        "sample/hello",
        "--update-secrets",
        "DB=projects/123456789/secrets/billing:latest,OWN=own:2",
    )
    template = svc["spec"]["template"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in template["spec"]["containers"][0]["env"]}
    assert env["OWN"] == {"name": "own", "key": "2"}
    alias = env["DB"]["name"]
    assert alias.startswith("billi-") and env["DB"]["key"] == "latest"
    annotation = template["metadata"]["annotations"]["run.googleapis.com/secrets"]
    assert annotation == f"{alias}:projects/123456789/secrets/billing"
    served = requests.get(svc["status"]["url"], timeout=5).json()["env"]
    assert served["DB"] == "secret:projects/123456789/secrets/billing:latest"
    described = gc.run("run", "services", "describe", "vault")  # gcloud parses the annotation back
    assert (
        described["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/secrets"] == annotation
    )
