"""Regions and project numbers: a Cloud Run name is unique per project AND region.

``gcloud run deploy web --region europe-west1`` and ``--region us-central1`` make two services, each
with its own revisions, URLs and IAM policy; answers name the project by its number
(``metadata.namespace``), while requests may name it by ID or number.
"""

from __future__ import annotations

import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.store import project_number
from tests.cloudrun import Api, hit, service_body


def test_one_name_in_two_regions_is_two_services(api: Api, emu: Emulator) -> None:
    europe = Api(emu.url, api.project, "europe-west1")
    us = api.deploy(service_body("web", revision="web-us"))
    eu = europe.deploy(service_body("web", "sample/hello:v2", revision="web-eu"))

    assert us["metadata"]["uid"] != eu["metadata"]["uid"]
    assert us["metadata"]["labels"]["cloud.googleapis.com/location"] == "us-central1"
    assert eu["metadata"]["labels"]["cloud.googleapis.com/location"] == "europe-west1"
    assert api.revisions("web") == ["web-us"] and europe.revisions("web") == ["web-eu"]
    assert europe.revision("web-us").status_code == 404
    # Each region serves its own revision at its own URL.
    assert us["status"]["url"] != eu["status"]["url"]
    assert set(hit(us["status"]["url"], 3)) == {"web-us"}
    assert set(hit(eu["status"]["url"], 3)) == {"web-eu"}

    # A write in one region leaves the other as it was.
    body = europe.service("web")
    body["spec"]["template"]["metadata"]["name"] = "web-eu-2"
    body["spec"]["traffic"] = [{"revisionName": "web-eu-2", "percent": 100}]
    assert europe.put(body).status_code == 200
    europe.wait("web")
    assert api.service("web")["status"]["traffic"][0]["revisionName"] == "web-us"

    # Deleting one region's service keeps the other's.
    assert europe.delete("web").status_code == 200
    assert api.get("web").status_code == 200


def test_the_same_revision_name_may_exist_in_two_regions(api: Api, emu: Emulator) -> None:
    """The action names revisions after the commit: two regions get the same name."""
    europe = Api(emu.url, api.project, "europe-west1")
    api.deploy(service_body("web", revision="web-abc1234"))
    eu = europe.deploy(service_body("web", revision="web-abc1234"))
    assert eu["status"]["latestReadyRevisionName"] == "web-abc1234"
    assert api.delete("web").status_code == 200
    assert europe.revision("web-abc1234").status_code == 200


def test_iam_policies_are_per_region(api: Api, emu: Emulator) -> None:
    europe = Api(emu.url, api.project, "europe-west1")
    api.deploy(service_body("web"))
    europe.deploy(service_body("web"))
    etag = europe.iam("web", "getIamPolicy").json()["etag"]
    public = {"policy": {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}], "etag": etag}}
    assert europe.iam("web", "setIamPolicy", public).status_code == 200
    assert europe.iam("web", "getIamPolicy").json()["bindings"][0]["members"] == ["allUsers"]
    assert "bindings" not in api.iam("web", "getIamPolicy").json()
    assert Api(emu.url, api.project, "asia-northeast1").iam("web", "getIamPolicy").status_code == 404


def test_answers_carry_the_project_number_and_requests_may_use_either(api: Api, emu: Emulator) -> None:
    number = project_number(api.project)
    svc = api.deploy(service_body("web", revision="web-1"))
    assert svc["metadata"]["namespace"] == number
    assert svc["metadata"]["selfLink"] == f"/apis/serving.knative.dev/v1/namespaces/{number}/services/web"
    revision = api.revision("web-1").json()
    assert revision["metadata"]["namespace"] == number
    by_number = Api(emu.url, number)
    assert by_number.service("web")["metadata"]["uid"] == svc["metadata"]["uid"]
    # A service read back (namespace = number) is written back to the URL that names the ID.
    svc["metadata"]["labels"]["team"] = "a"
    assert api.put(svc).status_code == 200
    # A body naming another project is refused, whichever form it uses.
    svc = api.service("web")
    svc["metadata"]["namespace"] = project_number("someone-else")
    refused = api.put(svc)
    assert refused.status_code == 400 and "metadata.namespace" in refused.text


def test_listing_every_region_with_a_dash(api: Api, emu: Emulator) -> None:
    """gcloud lists a project's services in every region at ``locations/-``."""
    Api(emu.url, api.project, "europe-west1").deploy(service_body("a"))
    api.deploy(service_body("b"))
    every = requests.get(f"{emu.url}/v1/projects/{api.project}/locations/-/services", timeout=10).json()
    regions = {i["metadata"]["labels"]["cloud.googleapis.com/location"] for i in every["items"]}
    assert regions == {"europe-west1", "us-central1"}
    assert [
        i["metadata"]["name"] for i in api.http.get(f"{api.ns}/services", timeout=10).json()["items"]
    ] == ["b"]
    refused = requests.post(
        f"{emu.url}/v1/projects/{api.project}/locations/-/services", json=service_body("c"), timeout=10
    )
    assert refused.status_code == 400
