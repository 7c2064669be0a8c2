"""The emulator's Admin API over real HTTP: each test proves one rule of docs/cloud-run-v1.md."""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.store import project_number
from tests.cloudrun import Api, condition, error_of, service_body


def bad_request(response: requests.Response, field: str) -> dict[str, Any]:
    """Assert a Google-shaped 400 naming ``field``; return the error."""
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["code"] == 400
    violations = error["details"][0]["fieldViolations"]
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert field in [v["field"] for v in violations], violations
    return error


def fetch(url: str) -> dict[str, Any]:
    """GET a revision's sample app through a loopback URL."""
    return requests.get(url, timeout=5).json()


# ---- CRUD -------------------------------------------------------------------------------------


def test_create_get_list_replace_delete(api: Api) -> None:
    created = api.create(service_body("web")).json()
    meta = created["metadata"]
    number = project_number(api.project)  # Cloud Run answers with the project number
    assert meta["generation"] == 1 and meta["namespace"] == number
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    assert meta["selfLink"].endswith(f"/namespaces/{number}/services/web")
    assert meta["annotations"]["serving.knative.dev/creator"]
    service = api.wait("web")
    assert api.http.get(f"{api.ns}/services").json()["items"][0]["metadata"]["name"] == "web"

    service["metadata"]["labels"] = {"team": "a"}
    replaced = api.put(service)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["metadata"]["generation"] == 2

    deleted = api.delete("web")
    assert deleted.status_code == 200
    assert deleted.json()["kind"] == "Status" and deleted.json()["status"] == "Success"
    assert deleted.json()["details"]["name"] == "web"
    assert api.get("web").status_code == 404
    revisions = api.http.get(
        f"{api.ns}/revisions", params={"labelSelector": "serving.knative.dev/service=web"}
    )
    assert revisions.json().get("items", []) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(service["status"]["url"], timeout=2)


def test_list_selector_limit_continue(api: Api) -> None:
    for i in range(3):
        body = service_body(f"svc-{i}")
        body["metadata"]["labels"] = {"tier": "odd" if i % 2 else "even"}
        assert api.create(body).status_code == 200
    listing = api.http.get(f"{api.ns}/services").json()
    assert [s["metadata"]["name"] for s in listing["items"]] == ["svc-2", "svc-1", "svc-0"]
    even = api.http.get(f"{api.ns}/services", params={"labelSelector": "tier=even"}).json()
    assert [s["metadata"]["name"] for s in even["items"]] == ["svc-2", "svc-0"]
    first = api.http.get(f"{api.ns}/services", params={"limit": "2"}).json()
    assert len(first["items"]) == 2
    token = first["metadata"]["continue"]
    rest = api.http.get(f"{api.ns}/services", params={"limit": "2", "continue": token}).json()
    assert [s["metadata"]["name"] for s in rest["items"]] == ["svc-0"]
    assert "continue" not in rest.get("metadata", {})


def test_namespaces_are_independent(emu: Emulator) -> None:
    one, two = Api(emu.url, "iso-one"), Api(emu.url, "iso-two")
    assert one.create(service_body("same")).status_code == 200
    assert two.get("same").status_code == 404
    assert two.create(service_body("same", image="sample/hello:v2")).status_code == 200
    assert one.get("same").json()["spec"]["template"]["spec"]["containers"][0]["image"] == "sample/hello"


def test_duplicate_create_is_409(api: Api) -> None:
    assert api.create(service_body("dup")).status_code == 200
    response = api.create(service_body("dup"))
    assert response.status_code == 409
    assert error_of(response)["status"] == "ALREADY_EXISTS"


def test_missing_objects_are_404(api: Api) -> None:
    for response in (
        api.get("nope"),
        api.put(service_body("nope")),
        api.delete("nope"),
        api.revision("nope-00001-abc"),
        api.http.get(f"{api.ns}/routes/nope"),
        api.http.get(f"{api.ns}/configurations/nope"),
        api.iam("nope", "getIamPolicy"),
    ):
        assert response.status_code == 404, response.text
        assert error_of(response)["status"] == "NOT_FOUND"
        assert error_of(response)["code"] == 404


# ---- strict parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "where", "name"),
    [
        (lambda b: b["spec"]["traffic"][0].update(foo=1), "service.spec.traffic[0]", "foo"),
        (lambda b: b.update(extra=True), "service", "extra"),
        (lambda b: b["spec"].update(x="y"), "service.spec", "x"),
        (
            lambda b: b["spec"]["template"]["spec"]["containers"][0].update(imagee="a"),
            "service.spec.template.spec.containers[0]",
            "imagee",
        ),
    ],
)
def test_unknown_field_is_rejected_with_googles_message(api: Api, mutate: Any, where: str, name: str) -> None:
    body = service_body("strict", traffic=[{"latestRevision": True, "percent": 100}])
    mutate(body)
    response = api.create(body)
    error = bad_request(response, where)
    assert (
        error["message"]
        == f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    )
    assert api.get("strict").status_code == 404


@pytest.mark.parametrize(
    ("value", "shown"),
    [("abc", '"abc"'), (3_000_000_000, "3000000000"), (12.5, "12.5"), (True, "true")],
)
def test_wrong_type_is_rejected(api: Api, value: Any, shown: str) -> None:
    body = service_body("typed", traffic=[{"latestRevision": True, "percent": value}])
    error = bad_request(api.create(body), "service.spec.traffic[0].percent")
    assert error["message"] == f"Invalid value at 'service.spec.traffic[0].percent' (TYPE_INT32), {shown}"


def test_wrong_container_types(api: Api) -> None:
    body = service_body("typed")
    body["spec"]["template"]["spec"]["containers"] = {"image": "x"}
    bad_request(api.create(body), "service.spec.template.spec.containers")
    body = service_body("typed")
    body["metadata"]["labels"] = {"a": 1}
    bad_request(api.create(body), "service.metadata.labels[a]")


def test_maps_accept_any_key(api: Api) -> None:
    body = service_body("maps")
    body["metadata"]["annotations"] = {"example.com/anything": "x", "run.googleapis.com/ingress": "all"}
    body["metadata"]["labels"] = {"empty": ""}
    created = api.create(body)
    assert created.status_code == 200, created.text
    assert created.json()["metadata"]["labels"] == {
        "empty": "",
        "cloud.googleapis.com/location": "us-central1",
    }


# ---- semantic validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traffic", "field"),
    [
        ([{"latestRevision": True, "percent": 90}], "spec.traffic"),
        ([{"latestRevision": True, "percent": 100, "url": "http://x"}], "spec.traffic[0].url"),
        (
            [{"latestRevision": True, "percent": 100, "configurationName": "c"}],
            "spec.traffic[0].configurationName",
        ),
        (
            [{"latestRevision": True, "revisionName": "tr-a", "percent": 100}],
            "spec.traffic[0].latestRevision",
        ),
        (
            [{"latestRevision": True, "percent": 100, "tag": "a"}, {"latestRevision": True, "tag": "a"}],
            "spec.traffic[1].tag",
        ),
        ([{"latestRevision": True, "percent": 100, "tag": "Bad_Tag"}], "spec.traffic[0].tag"),
        ([{"latestRevision": True, "percent": 100, "tag": "t" * 45}], "spec.traffic[0].tag"),
        (
            [{"latestRevision": True, "percent": 101}, {"latestRevision": True, "percent": -1}],
            "spec.traffic[0].percent",
        ),
        ([{"revisionName": "tr-ghost", "percent": 100}], "spec.traffic[0].revisionName"),
    ],
)
def test_traffic_rules(api: Api, traffic: list[dict[str, Any]], field: str) -> None:
    bad_request(api.create(service_body("tr", traffic=traffic)), field)
    assert api.get("tr").status_code == 404


def test_tag_length_limit_counts_service_name(api: Api) -> None:
    ok = [{"latestRevision": True, "percent": 100, "tag": "t" * 44}]
    assert api.create(service_body("ab", traffic=ok)).status_code == 200


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("Bad_Name", "metadata.name"),
        ("1abc", "metadata.name"),
        ("abc-", "metadata.name"),
        ("a" * 64, "metadata.name"),
    ],
)
def test_service_names(api: Api, name: str, field: str) -> None:
    bad_request(api.create(service_body(name)), field)


@pytest.mark.parametrize("revision", ["other-v1", "rn-Bad", "rn-" + "x" * 61, "rn-"])
def test_bad_revision_name(api: Api, revision: str) -> None:
    bad_request(api.create(service_body("rn", revision=revision)), "spec.template.metadata.name")


def test_container_rules(api: Api) -> None:
    body = service_body("ctr")
    body["spec"]["template"]["spec"]["containers"].append({"image": "sample/hello"})
    bad_request(api.create(body), "spec.template.spec.containers")
    body = service_body("ctr")
    del body["spec"]["template"]["spec"]["containers"][0]["image"]
    bad_request(api.create(body), "spec.template.spec.containers[0].image")


def test_revision_name_reuse(api: Api) -> None:
    service = api.deploy(service_body("reuse", revision="reuse-one"))
    same = copy.deepcopy(service)
    assert api.put(same).status_code == 200
    names = [r["metadata"]["name"] for r in api.http.get(f"{api.ns}/revisions").json()["items"]]
    assert names == ["reuse-one"]
    changed = api.get("reuse").json()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:v2"
    response = api.put(changed)
    assert response.status_code == 409
    assert error_of(response)["status"] == "ALREADY_EXISTS"
    assert (
        error_of(response)["message"]
        == "Revision named 'reuse-one' with different configuration already exists."
    )


def test_stale_resource_version_is_aborted(api: Api) -> None:
    service = api.create(service_body("occ")).json()
    first = copy.deepcopy(service)
    first["metadata"]["labels"] = {"a": "1"}
    assert api.put(first).status_code == 200
    service["metadata"]["labels"] = {"b": "2"}
    response = api.put(service)
    assert response.status_code == 409
    assert error_of(response)["status"] == "ABORTED"
    del service["metadata"]["resourceVersion"]
    assert api.put(service).status_code == 200


def test_immutable_annotations(api: Api) -> None:
    service = api.create(service_body("imm")).json()
    changed = copy.deepcopy(service)
    changed["metadata"]["annotations"]["serving.knative.dev/creator"] = "mallory@example.com"
    bad_request(api.put(changed), "metadata.annotations[serving.knative.dev/creator]")
    removed = copy.deepcopy(service)
    del removed["metadata"]["annotations"]["serving.knative.dev/lastModifier"]
    bad_request(api.put(removed), "metadata.annotations[serving.knative.dev/lastModifier]")


# ---- control plane ----------------------------------------------------------------------------


def test_generation_and_observed_generation(api: Api) -> None:
    created = api.create(service_body("gen")).json()
    assert created["metadata"]["generation"] == 1
    assert "observedGeneration" not in created["status"]
    assert condition(created, "Ready")["status"] == "Unknown"
    service = api.wait("gen")
    assert service["status"]["observedGeneration"] == 1
    version = service["metadata"]["resourceVersion"]

    noop = api.put(service).json()
    assert noop["metadata"]["generation"] == 1
    assert noop["metadata"]["resourceVersion"] != version

    noop["metadata"]["annotations"]["example.com/note"] = "x"
    bumped = api.put(noop).json()
    assert bumped["metadata"]["generation"] == 2
    assert bumped["status"]["observedGeneration"] == 1
    assert api.wait("gen")["status"]["observedGeneration"] == 2


def test_conditions_go_unknown_then_true(api: Api) -> None:
    created = api.create(service_body("cond")).json()
    for kind in ("Ready", "ConfigurationsReady", "RoutesReady"):
        assert condition(created, kind)["status"] == "Unknown"
    service = api.wait("cond")
    for kind in ("Ready", "ConfigurationsReady", "RoutesReady"):
        assert condition(service, kind)["status"] == "True"
        assert condition(service, kind)["lastTransitionTime"]
    status = service["status"]
    revision = status["latestCreatedRevisionName"]
    assert revision.startswith("cond-00001-") and len(revision) == len("cond-00001-abc")
    assert status["latestReadyRevisionName"] == revision
    assert status["url"].startswith("http://127.0.0.1:") and status["address"]["url"] == status["url"]
    assert status["traffic"] == [{"revisionName": revision, "percent": 100, "latestRevision": True}]
    assert fetch(status["url"])["revision"] == revision

    rev = api.revision(revision).json()
    assert rev["kind"] == "Revision"
    labels = rev["metadata"]["labels"]
    assert labels["serving.knative.dev/service"] == "cond"
    assert labels["serving.knative.dev/configuration"] == "cond"
    assert labels["serving.knative.dev/configurationGeneration"] == "1"
    kinds = {c["type"]: c["status"] for c in rev["status"]["conditions"]}
    assert kinds == {
        "Ready": "True",
        "ResourcesAvailable": "True",
        "ContainerHealthy": "True",
        "Active": "True",
    }
    assert "@sha256:" in rev["status"]["imageDigest"] and rev["status"]["logUrl"]


def test_ready_waits_for_ready_delay(api: Api, emu: Emulator) -> None:
    emu.set_ready_delay(1.0)
    start = time.monotonic()
    api.create(service_body("slowready"))
    time.sleep(0.5)
    assert condition(api.get("slowready").json(), "Ready")["status"] == "Unknown"
    service = api.wait("slowready")
    assert condition(service, "Ready")["status"] == "True"
    assert time.monotonic() - start >= 1.0


def test_unknown_image_fails_with_container_missing(api: Api) -> None:
    first = api.deploy(service_body("miss"))
    good = first["status"]["latestReadyRevisionName"]
    first["spec"]["template"]["spec"]["containers"][0]["image"] = "gcr.io/nowhere/nothing:1"
    assert api.put(first).status_code == 200
    service = api.wait("miss")
    ready, config = condition(service, "Ready"), condition(service, "ConfigurationsReady")
    assert ready["status"] == "False" and ready["reason"] == "ContainerMissing" and ready["message"]
    assert config["status"] == "False" and config["reason"] == "ContainerMissing"
    assert condition(service, "RoutesReady")["status"] == "True"
    bad = service["status"]["latestCreatedRevisionName"]
    assert bad != good and service["status"]["latestReadyRevisionName"] == good
    assert service["status"]["traffic"][0]["revisionName"] == good
    revision = api.revision(bad).json()
    rev_ready = condition(revision, "Ready")
    assert rev_ready["status"] == "False" and rev_ready["reason"] == "ContainerMissing"
    assert fetch(service["status"]["url"])["revision"] == good


def test_first_revision_failing(api: Api) -> None:
    api.create(service_body("crash", image="sample/crash"))
    service = api.wait("crash")
    ready = condition(service, "Ready")
    assert ready["status"] == "False" and ready["reason"]
    assert condition(service, "RoutesReady")["status"] == "False"
    assert "latestReadyRevisionName" not in service["status"]


def test_canary_split_tags_and_rollback(api: Api) -> None:
    stable = api.deploy(service_body("can", revision="can-v1"))
    url = stable["status"]["url"]

    candidate = copy.deepcopy(stable)
    candidate["spec"]["template"]["metadata"]["name"] = "can-v2"
    candidate["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:2"
    candidate["spec"]["traffic"] = [
        {"revisionName": "can-v1", "percent": 90},
        {"revisionName": "can-v2", "percent": 10, "tag": "canary"},
    ]
    assert api.put(candidate).status_code == 200, "canary PUT"
    service = api.wait("can")
    assert condition(service, "Ready")["status"] == "True"
    traffic = service["status"]["traffic"]
    assert traffic[0] == {"revisionName": "can-v1", "percent": 90}
    assert traffic[1]["revisionName"] == "can-v2" and traffic[1]["percent"] == 10
    assert traffic[1]["tag"] == "canary" and traffic[1]["url"].startswith("http://127.0.0.1:")
    assert fetch(traffic[1]["url"])["revision"] == "can-v2"
    assert service["status"]["url"] == url
    with requests.Session() as session:  # a 90/10 split, measured over a few hundred real requests
        seen = [session.get(url, timeout=5).json()["revision"] for _ in range(300)]
    assert (seen.count("can-v1"), seen.count("can-v2")) == (270, 30)

    service["spec"]["traffic"] = [{"revisionName": "can-v1", "percent": 100}]
    assert api.put(service).status_code == 200
    rolled = api.wait("can")
    assert rolled["status"]["traffic"] == [{"revisionName": "can-v1", "percent": 100}]
    assert {fetch(url)["revision"] for _ in range(5)} == {"can-v1"}
    with pytest.raises(requests.ConnectionError):
        requests.get(traffic[1]["url"], timeout=2)


def test_latest_revision_follows_newest_ready(api: Api) -> None:
    service = api.deploy(
        service_body("follow", traffic=[{"latestRevision": True, "percent": 100, "tag": "live"}])
    )
    first = service["status"]["latestReadyRevisionName"]
    service["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "V", "value": "2"}]
    api.put(service)
    updated = api.wait("follow")
    second = updated["status"]["latestReadyRevisionName"]
    assert second != first and second.startswith("follow-00002-")
    entry = updated["status"]["traffic"][0]
    assert entry["revisionName"] == second and entry["latestRevision"] is True and entry["tag"] == "live"
    assert fetch(entry["url"])["revision"] == second
    assert fetch(updated["status"]["url"])["env"]["V"] == "2"


def test_routes_keep_previous_split_until_ready(api: Api, emu: Emulator) -> None:
    service = api.deploy(service_body("keep", revision="keep-a"))
    emu.set_ready_delay(0.8)
    service["spec"]["template"]["metadata"]["name"] = "keep-b"
    service["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:b"
    api.put(service)
    during = api.get("keep").json()
    assert during["status"]["traffic"][0]["revisionName"] == "keep-a"
    assert fetch(during["status"]["url"])["revision"] == "keep-a"
    assert api.wait("keep")["status"]["traffic"][0]["revisionName"] == "keep-b"


def test_traffic_pinned_to_failed_revision(api: Api) -> None:
    service = api.deploy(service_body("pin", revision="pin-good"))
    service["spec"]["template"]["metadata"]["name"] = "pin-bad"
    service["spec"]["template"]["spec"]["containers"][0]["image"] = "unknown/image"
    service["spec"]["traffic"] = [
        {"revisionName": "pin-good", "percent": 100},
        {"revisionName": "pin-bad", "tag": "candidate"},
    ]
    api.put(service)
    failed = api.wait("pin")
    routes = condition(failed, "RoutesReady")
    assert routes["status"] == "False" and routes["reason"] == "RevisionFailed"
    assert condition(failed, "Ready")["status"] == "False"
    assert [t["revisionName"] for t in failed["status"]["traffic"]] == ["pin-good"]  # previous split kept


def test_revision_delete(api: Api) -> None:
    service = api.deploy(service_body("rd", revision="rd-a"))
    service["spec"]["template"]["metadata"]["name"] = "rd-b"
    service["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:b"
    api.put(service)
    api.wait("rd")
    in_use = api.http.delete(f"{api.ns}/revisions/rd-b")
    assert in_use.status_code == 400 and error_of(in_use)["status"] == "FAILED_PRECONDITION"
    done = api.http.delete(f"{api.ns}/revisions/rd-a")
    assert done.status_code == 200 and done.json()["kind"] == "Status"
    assert api.revision("rd-a").status_code == 404
    listed = api.http.get(f"{api.ns}/revisions", params={"labelSelector": "serving.knative.dev/service=rd"})
    assert [r["metadata"]["name"] for r in listed.json()["items"]] == ["rd-b"]


def test_routes_and_configurations_views(api: Api) -> None:
    service = api.deploy(service_body("views"))
    route = api.http.get(f"{api.ns}/routes/views").json()
    assert route["kind"] == "Route" and route["status"]["url"] == service["status"]["url"]
    assert route["status"]["traffic"] == service["status"]["traffic"]
    assert condition(route, "Ready")["status"] == "True"
    config = api.http.get(f"{api.ns}/configurations/views").json()
    assert config["kind"] == "Configuration"
    assert config["status"]["latestReadyRevisionName"] == service["status"]["latestReadyRevisionName"]
    assert config["spec"]["template"] == service["spec"]["template"]
    assert len(api.http.get(f"{api.ns}/routes").json()["items"]) == 1
    assert len(api.http.get(f"{api.ns}/configurations").json()["items"]) == 1


def test_dry_run_writes_nothing(api: Api) -> None:
    preview = api.create(service_body("dry"), dryRun="all")
    assert preview.status_code == 200 and preview.json()["metadata"]["name"] == "dry"
    assert api.get("dry").status_code == 404
    bad_request(
        api.create(service_body("dry", traffic=[{"latestRevision": True, "percent": 5}]), dryRun="all"),
        "spec.traffic",
    )

    service = api.deploy(service_body("dry"))
    changed = copy.deepcopy(service)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:new"
    preview = api.put(changed, dryRun="all")
    assert preview.status_code == 200
    assert preview.json()["spec"]["template"]["spec"]["containers"][0]["image"] == "sample/hello:new"
    after = api.get("dry").json()
    assert after["metadata"]["resourceVersion"] == service["metadata"]["resourceVersion"]
    assert after["metadata"]["generation"] == 1
    assert len(api.http.get(f"{api.ns}/revisions").json()["items"]) == 1


# ---- IAM, locations, token --------------------------------------------------------------------


def test_iam_policy_etag(api: Api) -> None:
    api.create(service_body("iam"))
    policy = api.iam("iam", "getIamPolicy").json()
    assert base64.b64decode(policy["etag"])
    assert "bindings" not in policy
    policy["bindings"] = [{"role": "roles/run.invoker", "members": ["allUsers"]}]
    updated = api.iam("iam", "setIamPolicy", {"policy": policy})
    assert updated.status_code == 200, updated.text
    assert updated.json()["bindings"] == policy["bindings"]
    assert updated.json()["etag"] != policy["etag"]
    stale = api.iam("iam", "setIamPolicy", {"policy": policy})
    assert stale.status_code == 409 and error_of(stale)["status"] == "ABORTED"
    assert api.iam("iam", "getIamPolicy").json()["bindings"] == policy["bindings"]
    bad_request(api.iam("iam", "setIamPolicy", {"policy": {"bindings": [], "bogus": 1}}), "policy")
    bad_member = {"policy": {"bindings": [{"role": "roles/run.invoker", "members": ["nobody"]}]}}
    bad_request(api.iam("iam", "setIamPolicy", bad_member), "policy.bindings[0].members[0]")


def test_iam_in_the_service_region_and_locations(api: Api) -> None:
    api.create(service_body("anyregion"))
    url = f"{api.base}/v1/projects/{api.project}/locations/{{}}/services/anyregion:getIamPolicy"
    assert requests.get(url.format("us-central1"), timeout=5).status_code == 200
    assert requests.get(url.format("asia-south2"), timeout=5).status_code == 404  # no such service there
    regions = requests.get(f"{api.base}/v1/projects/{api.project}/locations", timeout=5).json()["locations"]
    assert "us-central1" in [r["locationId"] for r in regions]


def _jwt(claims: dict[str, Any]) -> str:
    parts = [{"alg": "RS256", "typ": "JWT"}, claims]
    encoded = [base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in parts]
    return ".".join([*encoded, "c2ln"])


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_token_endpoint(emu: Emulator) -> None:
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assertion = _jwt({"iss": "sa@p.iam.gserviceaccount.com", "target_audience": "http://aud"})
    answer = requests.post(
        f"{emu.url}/token", data={"grant_type": grant, "assertion": assertion}, timeout=5
    ).json()
    assert answer["access_token"].startswith("emu-access-") and answer["expires_in"] == 3600
    assert answer["token_type"] == "Bearer"
    header = json.loads(base64.urlsafe_b64decode(answer["id_token"].split(".")[0] + "=="))
    assert header == {"alg": "RS256", "typ": "JWT"}
    claims = _claims(answer["id_token"])
    assert claims["aud"] == "http://aud" and claims["iss"] == "emulator" and claims["exp"] > claims["iat"]
    plain = requests.post(
        f"{emu.url}/token", data={"grant_type": grant, "assertion": _jwt({"iss": "x"})}, timeout=5
    )
    assert "id_token" not in plain.json()
    refresh = requests.post(
        f"{emu.url}/token", data={"grant_type": "refresh_token", "refresh_token": "r"}, timeout=5
    )
    assert refresh.json()["access_token"].startswith("emu-access-")
    assert requests.post(f"{emu.url}/token", data={"grant_type": "password"}, timeout=5).status_code == 400
    assert emu.requests() == []


# ---- faults and request log -------------------------------------------------------------------


def test_fault_status_with_retry_after(api: Api, emu: Emulator) -> None:
    emu.faults.add(method="PUT", path=r"/services/", status=503, times=2, retry_after=2)
    api.create(service_body("flaky"))
    # Settled first: the revision becoming Ready changes the service's resourceVersion, and a PUT of
    # the object as created would then be refused as a conflict (409), faults or not.
    service = api.wait("flaky")
    for _ in range(2):
        response = api.put(service)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert error_of(response)["status"] == "UNAVAILABLE"
    assert api.put(service).status_code == 200
    statuses = [(e["method"], e["status"]) for e in emu.requests() if e["method"] != "GET"]
    assert statuses == [("POST", 200), ("PUT", 503), ("PUT", 503), ("PUT", 200)]
    entry = emu.requests()[0]
    assert entry["path"] == f"/apis/serving.knative.dev/v1/namespaces/{api.project}/services"
    assert entry["body"]["metadata"]["name"] == "flaky" and entry["query"] == {}
    assert isinstance(entry["time"], float)


def test_fault_quota(api: Api, emu: Emulator) -> None:
    emu.faults.add(method="GET", status=429)
    response = api.get("any")
    assert response.status_code == 429 and error_of(response)["status"] == "RESOURCE_EXHAUSTED"
    assert api.get("any").status_code == 404


def test_fault_reset_and_delay(api: Api, emu: Emulator) -> None:
    emu.faults.add(path=r"/services/reset$", action="reset")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api.ns}/services/reset", timeout=5)
    assert api.get("reset").status_code == 404
    emu.faults.add(path=r"/services/slow$", delay=0.4)
    start = time.monotonic()
    assert api.get("slow").status_code == 404
    assert time.monotonic() - start >= 0.4
    emu.faults.add(path=r"/services/hang$", action="hang", delay=0.3)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api.ns}/services/hang", timeout=5)


def test_fault_control_endpoints(api: Api, emu: Emulator) -> None:
    base = emu.url
    rule = requests.post(
        f"{base}/_emulator/faults", json={"method": "GET", "path": "/services/x", "status": 500}, timeout=5
    )
    assert rule.status_code == 200
    assert api.get("x").status_code == 500
    requests.post(f"{base}/_emulator/faults", json={"status": 503, "times": 5}, timeout=5)
    assert requests.delete(f"{base}/_emulator/faults", timeout=5).status_code == 200
    assert api.get("x").status_code == 404
    bad = requests.post(f"{base}/_emulator/faults", json={"action": "explode"}, timeout=5)
    assert bad.status_code == 400
    log = requests.get(f"{base}/_emulator/requests", timeout=5).json()
    assert [e["status"] for e in log] == [500, 404]
    requests.delete(f"{base}/_emulator/requests", timeout=5)
    assert requests.get(f"{base}/_emulator/requests", timeout=5).json() == []
    config = requests.post(f"{base}/_emulator/config", json={"ready_delay": 0.05}, timeout=5).json()
    assert config["ready_delay"] == 0.05 and emu.store.ready_delay == 0.05
    # Cloud Monitoring's timing defaults to Google's (60 s sampling, 180 s lag) and can be scaled down.
    assert (config["metric_sampling"], config["metric_lag"]) == (60.0, 180.0)
    scaled = {"metric_sampling": 1, "metric_lag": 3, "monitoring_page_size": 2}
    config = requests.post(f"{base}/_emulator/config", json=scaled, timeout=5).json()
    assert (config["metric_sampling"], config["metric_lag"], config["monitoring_page_size"]) == (1, 3, 2)
    refused = requests.post(f"{base}/_emulator/config", json={"metric_lag": -1, "ready_delay": 9}, timeout=5)
    assert refused.status_code == 400 and "metric_lag" in refused.text and emu.store.ready_delay == 0.05


def test_error_shape_for_bad_json(api: Api) -> None:
    response = api.http.post(f"{api.ns}/services", data=b"{not json", timeout=5)
    assert response.status_code == 400
    assert error_of(response)["message"].startswith("Invalid JSON payload received.")


def test_template_naming_an_existing_revision_makes_it_the_latest_again(api: Api) -> None:
    """Knative's "rollback to a BYO revision name" (knative/serving e2e rollback_byo_test): writing
    back the template of an older revision under its name creates nothing, makes that revision the
    latest created and ready one again (latestRevision entries follow it) and the service Ready."""
    service = api.deploy(
        service_body("byo", revision="byo-good", traffic=[{"latestRevision": True, "percent": 100}])
    )
    good_template = copy.deepcopy(service["spec"]["template"])
    service["spec"]["template"]["metadata"]["name"] = "byo-bad"
    service["spec"]["template"]["spec"]["containers"][0]["image"] = "unknown/image"
    api.put(service)
    failed = api.wait("byo")
    assert failed["status"]["latestCreatedRevisionName"] == "byo-bad"
    assert condition(failed, "Ready")["status"] == "False"
    failed["spec"]["template"] = good_template
    assert api.put(failed).status_code == 200
    back = api.wait("byo")
    assert back["status"]["latestCreatedRevisionName"] == "byo-good"
    assert back["status"]["latestReadyRevisionName"] == "byo-good"
    assert condition(back, "Ready")["status"] == "True"
    assert back["status"]["traffic"][0]["revisionName"] == "byo-good"
    listed = api.http.get(f"{api.ns}/revisions", params={"labelSelector": "serving.knative.dev/service=byo"})
    assert sorted(r["metadata"]["name"] for r in listed.json()["items"]) == ["byo-bad", "byo-good"]


def test_latest_ready_goes_back_to_a_named_older_revision_even_if_a_newer_one_is_ready(api: Api) -> None:
    """latestReadyRevisionName is not "the newest Ready revision": after the template names an older
    revision again, latestRevision traffic follows that one, not the newer healthy revision."""
    service = api.deploy(
        service_body("back", revision="back-a", traffic=[{"latestRevision": True, "percent": 100}])
    )
    template_a = copy.deepcopy(service["spec"]["template"])
    service["spec"]["template"]["metadata"]["name"] = "back-b"
    service["spec"]["template"]["spec"]["containers"][0]["image"] = "sample/hello:b"
    api.put(service)
    newer = api.wait("back")
    assert newer["status"]["latestReadyRevisionName"] == "back-b"
    newer["spec"]["template"] = template_a
    api.put(newer)
    back = api.wait("back")
    assert back["status"]["latestReadyRevisionName"] == "back-a"
    assert fetch(back["status"]["url"])["revision"] == "back-a"
