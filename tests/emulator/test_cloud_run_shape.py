"""What gcloud found divergent from Cloud Run, pinned at the API level (no gcloud needed).

Each test names the public document the emulator now follows; the gcloud conformance suite
(tests/conformance) checks the same behaviour through the real CLI.
"""

from __future__ import annotations

import copy

import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.store import same_bytes
from tests.cloudrun import Api, error_of, service_body


def test_lists_carry_metadata(api: Api) -> None:
    """ListMeta on every list (https://cloud.google.com/run/docs/reference/rest/v1/ListMeta)."""
    for kind in ("services", "revisions", "routes", "configurations"):
        listed = api.http.get(f"{api.ns}/{kind}", timeout=10).json()
        assert listed["metadata"]["resourceVersion"], kind
        assert "continue" not in listed["metadata"]
    api.deploy(service_body("a"))
    api.deploy(service_body("b"))
    first = api.http.get(f"{api.ns}/services", params={"limit": "1"}, timeout=10).json()
    assert first["metadata"]["continue"] and len(first["items"]) == 1


def test_unchanged_template_with_empty_values_is_not_a_new_configuration(api: Api) -> None:
    """proto3: empty == absent. gcloud sends ``labels: {}``, ``name: ""``, ``nodeSelector: {}``."""
    created = api.deploy(service_body("same", revision="same-v1"))
    sent = copy.deepcopy(created)
    sent.pop("status")
    template = sent["spec"]["template"]
    template["metadata"]["labels"] = {}
    template["spec"]["nodeSelector"] = {}
    template["spec"]["containers"][0]["name"] = ""
    del template["spec"]["containers"][0]["startupProbe"]  # a server default, filled in again
    replaced = api.put(sent)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["metadata"]["generation"] == created["metadata"]["generation"]
    assert replaced.json()["status"]["latestCreatedRevisionName"] == "same-v1"
    template["spec"]["containers"][0]["image"] = "sample/hello:other"
    sent["metadata"]["resourceVersion"] = replaced.json()["metadata"]["resourceVersion"]
    conflict = api.put(sent)
    assert conflict.status_code == 409 and error_of(conflict)["status"] == "ALREADY_EXISTS"


def test_test_iam_permissions_answers_before_the_service_exists(api: Api) -> None:
    """https://cloud.google.com/run/docs/reference/rest/v1/projects.locations.services/testIamPermissions."""
    wanted = {"permissions": ["run.services.setIamPolicy", "run.services.get"]}
    answer = api.iam("not-yet", "testIamPermissions", wanted)
    assert answer.status_code == 200, answer.text
    assert answer.json() == wanted
    wild = api.iam("not-yet", "testIamPermissions", {"permissions": ["run.*"]})
    assert wild.status_code == 400 and "wildcards" in error_of(wild)["message"]


def test_location_label_and_default_probe(api: Api, emu: Emulator) -> None:
    """https://cloud.google.com/run/docs/configuring/healthchecks: TCP startup probe by default."""
    svc = api.deploy(service_body("loc"))
    assert svc["metadata"]["labels"] == {"cloud.googleapis.com/location": "us-central1"}
    probe = svc["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe == {
        "tcpSocket": {"port": 8080},
        "timeoutSeconds": 240,
        "periodSeconds": 240,
        "failureThreshold": 1,
    }
    revision = api.revision(svc["status"]["latestCreatedRevisionName"]).json()
    assert revision["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    for kind in ("routes", "configurations"):
        view = api.http.get(f"{api.ns}/{kind}/loc", timeout=10).json()
        assert view["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    # The region comes from the path, or from the regional host name as gcloud addresses it.
    regional = f"{emu.url}/v1/projects/{api.project}/locations/europe-west1/services"
    assert requests.post(regional, json=service_body("eu"), timeout=10).status_code == 200
    europe = Api(emu.url, api.project, "europe-west1")
    assert europe.get("eu").json()["metadata"]["labels"]["cloud.googleapis.com/location"] == "europe-west1"
    assert api.get("eu").status_code == 404  # a service lives in one region
    by_host = requests.post(
        f"{api.ns}/services",
        json=service_body("asia"),
        headers={"Host": "asia-northeast1-localhost"},
        timeout=10,
    )
    assert by_host.json()["metadata"]["labels"]["cloud.googleapis.com/location"] == "asia-northeast1"


def test_configured_probe_keeps_its_settings_and_gets_the_port(api: Api) -> None:
    body = service_body("probe")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 9000}]
    container["startupProbe"] = {"httpGet": {"path": "/ready"}, "periodSeconds": 3}
    svc = api.deploy(body)
    probe = svc["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe == {"httpGet": {"path": "/ready", "port": 9000}, "periodSeconds": 3}


def test_sidecars_need_exactly_one_ingress_container(api: Api) -> None:
    """https://cloud.google.com/run/docs/deploying#sidecars: one container declares the port."""
    body = service_body("side", env={"ROLE": "app"})
    app = body["spec"]["template"]["spec"]["containers"][0]
    app.update(name="app", ports=[{"containerPort": 8080}])
    body["spec"]["template"]["spec"]["containers"].append({"name": "agent", "image": "sample/slow"})
    svc = api.deploy(body)
    served = requests.get(svc["status"]["url"], timeout=5).json()
    assert served["image"] == "sample/hello" and served["env"] == {"ROLE": "app"}
    agent = svc["spec"]["template"]["spec"]["containers"][1]
    assert "ports" not in agent and "startupProbe" not in agent

    for ports in ([], [{"containerPort": 8080}, {"containerPort": 8081}]):
        bad = service_body("bad")
        bad["spec"]["template"]["spec"]["containers"] = [
            {"name": f"c{i}", "image": "sample/hello", **({"ports": [p]} if p else {})}
            for i, p in enumerate(ports or [None, None])
        ]
        refused = api.create(bad)
        assert refused.status_code == 400
        assert "exactly one container must declare a port" in error_of(refused)["message"]
    dup = service_body("dup")
    dup["spec"]["template"]["spec"]["containers"] = [
        {"name": "x", "image": "sample/hello", "ports": [{"containerPort": 8080}]},
        {"name": "x", "image": "sample/slow"},
    ]
    assert "duplicate container name 'x'" in error_of(api.create(dup))["message"]
    eleven = service_body("many")
    eleven["spec"]["template"]["spec"]["containers"] = [{"image": "sample/hello"}] * 11
    assert "between 1 and 10 containers" in error_of(api.create(eleven))["message"]


def test_iam_etag_accepted_in_either_base64_alphabet(api: Api) -> None:
    """proto3 JSON bytes: standard or URL-safe base64 (https://protobuf.dev/programming-guides/proto3/#json)."""
    assert same_bytes("8jjd_XDw2BA=", "8jjd/XDw2BA=") and same_bytes("a-8", "a+8=")
    assert not same_bytes("AAAA", "AAAB") and not same_bytes("%%%", "AAAA")
    api.deploy(service_body("etag"))
    etag = api.iam("etag", "getIamPolicy").json()["etag"]
    url_safe = etag.replace("+", "-").replace("/", "_").rstrip("=")
    policy = {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}], "etag": url_safe}
    assert api.iam("etag", "setIamPolicy", {"policy": policy}).status_code == 200


def test_project_lookup_for_gcloud_replace(emu: Emulator) -> None:
    """Cloud Resource Manager projects.get (https://cloud.google.com/resource-manager/reference/rest/v1/projects/get)."""
    project = requests.get(f"{emu.url}/v1/projects/my-proj", timeout=10).json()
    assert project["projectId"] == "my-proj" and project["lifecycleState"] == "ACTIVE"
    assert project["projectNumber"].isdigit() and len(project["projectNumber"]) == 12
    assert requests.get(f"{emu.url}/v1/projects/my-proj", timeout=10).json() == project


def test_field_violations_do_not_repeat_the_field(api: Api) -> None:
    """google.rpc.BadRequest descriptions (https://cloud.google.com/apis/design/errors#error_details)."""
    bad = service_body("viol", traffic=[{"revisionName": "viol-nope", "percent": 100}])
    error = error_of(api.create(bad))
    (violation,) = error["details"][0]["fieldViolations"]
    assert violation == {
        "field": "spec.traffic[0].revisionName",
        "description": "Revision 'viol-nope' does not exist.",
    }
    assert error["message"] == "spec.traffic[0].revisionName: Revision 'viol-nope' does not exist."


def test_container_dependencies_name_containers_without_loops(api: Api) -> None:
    """https://cloud.google.com/run/docs/configuring/services/containers#container-ordering."""
    body = service_body("order")
    body["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": "sample/hello", "ports": [{"containerPort": 8080}]},
        {"name": "agent", "image": "sample/slow"},
    ]
    key = "run.googleapis.com/container-dependencies"
    for value, problem in (
        ('{"app": ["db"]}', "no container named 'db'"),
        ('{"app": ["agent"], "agent": ["app"]}', "must not form a cycle"),
        ('{"app": ["app"]}', "must not form a cycle"),
        ('["app"]', "must be a JSON object"),
    ):
        body["spec"]["template"]["metadata"] = {"annotations": {key: value}}
        refused = api.create(body)
        assert refused.status_code == 400 and problem in error_of(refused)["message"], value
    body["spec"]["template"]["metadata"] = {"annotations": {key: '{"app": ["agent"]}'}}
    assert api.create(body).status_code == 200
