"""The region survives any base URL: services, revisions and IAM by location through an override;
jobs at the override's regional form, as gcloud derives it."""

from __future__ import annotations

import pytest
import requests

from deployer.client import CloudRun, regional_endpoint, regional_host


def test_regional_endpoint_prefixes_a_host_name_like_gcloud() -> None:
    assert regional_endpoint("https://run-psc.p.googleapis.com", "europe-west1") == (
        "https://europe-west1-run-psc.p.googleapis.com"
    )
    assert (
        regional_endpoint("https://run.example:8443/base", "us-east1")
        == "https://us-east1-run.example:8443/base"
    )


def test_an_address_or_localhost_has_no_regional_form() -> None:
    for base in ("http://127.0.0.1:8080", "http://[::1]:9000", "http://localhost:8080"):
        assert regional_endpoint(base, "europe-west1") == base


def test_an_address_or_localhost_names_the_region_in_the_host_header() -> None:
    assert regional_host("http://127.0.0.1:8080", "europe-west1") == "europe-west1-127.0.0.1:8080"
    assert regional_host("http://localhost:8080/", "us-east1") == "us-east1-localhost:8080"
    assert regional_host("https://run-psc.p.googleapis.com", "us-east1") is None


def test_job_calls_through_an_address_carry_the_regional_host(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, str] | None]] = []

    def request(method: str, url: str, **kwargs: object) -> requests.Response:
        seen.append((url, kwargs.get("headers")))  # type: ignore[arg-type]
        resp = requests.Response()
        resp.status_code, resp._content = 200, b"{}"
        return resp

    session = requests.Session()
    monkeypatch.setattr(session, "request", request)
    client = CloudRun(session, region="europe-west1", project="p", api_endpoint="http://127.0.0.1:1")
    client.get_job("m")
    client.get_service("web")
    assert seen == [
        (
            "http://127.0.0.1:1/apis/run.googleapis.com/v1/namespaces/p/jobs/m",
            {"Host": "europe-west1-127.0.0.1:1"},
        ),
        ("http://127.0.0.1:1/v1/projects/p/locations/europe-west1/services/web", None),
    ]


def test_urls_through_an_override_carry_the_region() -> None:
    client = CloudRun(
        requests.Session(), region="europe-west1", project="p", api_endpoint="http://127.0.0.1:1/"
    )
    assert (
        client._ns("services", "web")
        == "http://127.0.0.1:1/v1/projects/p/locations/europe-west1/services/web"
    )
    assert client._ns("revisions") == "http://127.0.0.1:1/v1/projects/p/locations/europe-west1/revisions"
    assert client._iam("web", "getIamPolicy") == (
        "http://127.0.0.1:1/v1/projects/p/locations/europe-west1/services/web:getIamPolicy"
    )
    psc = CloudRun(
        requests.Session(), region="europe-west1", project="p", api_endpoint="https://run-x.p.googleapis.com"
    )
    assert psc._run_ns("jobs", "m") == (
        "https://europe-west1-run-x.p.googleapis.com/apis/run.googleapis.com/v1/namespaces/p/jobs/m"
    )


def test_without_an_override_the_regional_endpoint_is_used() -> None:
    client = CloudRun(requests.Session(), region="europe-west1", project="p")
    assert client._ns("services", "web") == (
        "https://europe-west1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services/web"
    )
    assert client._run_ns("jobs") == (
        "https://europe-west1-run.googleapis.com/apis/run.googleapis.com/v1/namespaces/p/jobs"
    )
