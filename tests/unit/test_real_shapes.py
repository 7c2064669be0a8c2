"""Pure tests of the knative and analysis code on bodies shaped as Google documents them
(tests/data/, each checked against the discovery documents first)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from deployer import analysis, client, knative
from deployer.errors import RevisionFailed, RolloutFailed
from deployer.readiness import service_readiness
from deployer.settings import AnalysisSettings, Config, RevisionSettings
from deployer.traffic import Target
from tests.schema import conform

DATA = Path(__file__).parent.parent / "data"


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def discovery(name: str) -> dict[str, Any]:
    docs = resources.files("googleapiclient") / "discovery_cache" / "documents" / name
    return json.loads(docs.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "document", "schema"),
    [
        ("service-default-probe.json", "run.v1.json", "Service"),
        ("service-sidecars.json", "run.v1.json", "Service"),
        ("service-configuration-failed.json", "run.v1.json", "Service"),
        ("revision-health-check-failed.json", "run.v1.json", "Revision"),
        ("iam-policy-conditions.json", "run.v1.json", "Policy"),
        ("timeseries-page-1.json", "monitoring.v3.json", "ListTimeSeriesResponse"),
        ("timeseries-page-2.json", "monitoring.v3.json", "ListTimeSeriesResponse"),
    ],
)
def test_data_files_conform_to_googles_discovery_documents(name: str, document: str, schema: str) -> None:
    schemas = discovery(document)["schemas"]
    assert conform(load(name), {"$ref": schema}, schemas, "$") == []
    assert name in (DATA / "README.md").read_text(encoding="utf-8")  # each names its public source


# ---- probes follow the port -----------------------------------------------------------------


def template_of(name: str) -> dict[str, Any]:
    return copy.deepcopy(load(name)["spec"]["template"])


def test_port_change_moves_the_default_startup_probe() -> None:
    base = template_of("service-default-probe.json")
    config = Config(service="hello", image="sample/hello:2", revision=RevisionSettings(port=9000))

    (container,) = knative.new_template(base, config, "hello-2")["spec"]["containers"]

    assert container["ports"] == [{"name": "http1", "containerPort": 9000}]
    assert container["startupProbe"] == {
        "timeoutSeconds": 240,
        "periodSeconds": 240,
        "failureThreshold": 1,
        "tcpSocket": {"port": 9000},
    }


def test_port_change_moves_every_probe_on_the_old_port_and_no_other() -> None:
    container = {
        "image": "x",
        "startupProbe": {"grpc": {"port": 8080, "service": "up"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8081}},
    }
    knative.set_port(container, 9000)  # no ports: the old port is Cloud Run's default, 8080
    assert container["startupProbe"] == {"grpc": {"port": 9000, "service": "up"}}
    assert container["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": 8081}}  # own port

    sidecars = template_of("service-sidecars.json")["spec"]["containers"]
    app = sidecars[1]
    knative.set_port(app, 3000)
    assert app["startupProbe"]["tcpSocket"] == {"port": 3000}
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 3000}


def test_a_probe_without_a_port_is_left_to_follow_the_container_port() -> None:
    container = {"ports": [{"containerPort": 8080}], "startupProbe": {"tcpSocket": {}}}
    knative.set_port(container, 9000)
    assert container["startupProbe"] == {"tcpSocket": {}}


# ---- sidecars ---------------------------------------------------------------------------------


def test_inputs_go_to_the_ingress_container_and_the_sidecar_is_untouched() -> None:
    base = template_of("service-sidecars.json")
    config = Config(
        service="shop",
        image="us-docker.pkg.dev/p/app/shop:2",
        env_vars={"LEVEL": "debug"},
        revision=RevisionSettings(cpu="2", memory="1Gi", port=9000),
    )

    collector, app = knative.new_template(base, config, "shop-2")["spec"]["containers"]

    assert collector == base["spec"]["containers"][0]
    assert app["image"] == "us-docker.pkg.dev/p/app/shop:2"
    assert {"name": "LEVEL", "value": "debug"} in app["env"]
    assert app["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert app["ports"] == [{"name": "http1", "containerPort": 9000}]


def test_the_container_input_names_the_container_to_deploy() -> None:
    base = template_of("service-sidecars.json")
    config = Config(service="shop", image="otel/collector:0.99", container="collector")

    collector, app = knative.new_template(base, config, "shop-3")["spec"]["containers"]

    assert collector["image"] == "otel/collector:0.99"
    assert app == base["spec"]["containers"][1]


def test_unknown_container_or_no_single_ingress_container_is_an_error_naming_them() -> None:
    base = template_of("service-sidecars.json")
    with pytest.raises(knative.TemplateError, match=r"no container named 'web'.*'collector', 'app'"):
        knative.new_template(base, Config(service="shop", image="x", container="web"), "shop-4")
    base["spec"]["containers"][0]["ports"] = [{"containerPort": 4317}]
    with pytest.raises(knative.TemplateError, match="2 of them declare ports"):
        knative.new_template(base, Config(service="shop", image="x"), "shop-4")


# ---- what a metadata file loses, what we write ---------------------------------------------


def test_export_strips_what_gcloud_export_strips_and_server_annotations() -> None:
    described = load("service-default-probe.json")

    out = knative.exported(described)

    assert out is not None and "status" not in out
    meta = out["metadata"]
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "selfLink"):
        assert key not in meta
    assert meta["annotations"] == {"run.googleapis.com/ingress": "all"}
    assert "labels" not in meta or meta["labels"] == {}
    template_annotations = out["spec"]["template"]["metadata"]["annotations"]
    assert template_annotations == {
        "autoscaling.knative.dev/maxScale": "100",
        "run.googleapis.com/startup-cpu-boost": "true",
    }
    assert described["metadata"]["uid"]  # the input is untouched


def test_a_service_from_a_metadata_file_is_created_in_our_project_with_our_annotations() -> None:
    described = load("service-default-probe.json")
    config = Config(service="hello", image="sample/hello:3", metadata=described)
    template = knative.new_template(knative.exported(described)["spec"]["template"], config, "hello-3")  # type: ignore[index]

    body = knative.service_body(
        None,
        config,
        template,
        (Target("hello-3", 100),),
        labels={},
        annotations=knative.client_annotations(),
        namespace="my-project",
    )

    meta = body["metadata"]
    assert meta["namespace"] == "my-project"
    assert not {"uid", "resourceVersion", "generation", "selfLink", "creationTimestamp"} & set(meta)
    assert meta["annotations"]["run.googleapis.com/client-name"] == "run-canary"
    assert "run.googleapis.com/operation-id" not in meta["annotations"]
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    assert annotations[knative.USER_IMAGE_ANNOTATION] == "sample/hello:3"
    assert annotations[knative.CLIENT_NAME_ANNOTATION] == "run-canary"
    assert (
        annotations[knative.CLIENT_VERSION_ANNOTATION]
        == knative.client_annotations()[knative.CLIENT_VERSION_ANNOTATION]
    )


# ---- failed conditions ----------------------------------------------------------------------


def test_failed_conditions_read_with_their_reason_and_message() -> None:
    service = load("service-configuration-failed.json")
    configs = knative.condition(service, "ConfigurationsReady")
    assert (configs.status, configs.reason) == ("False", "ContainerMissing")
    assert configs.describe().startswith(
        "ConfigurationsReady=False (ContainerMissing): Revision 'hello-00004-bad'"
    )
    assert knative.is_fresh(service, knative.generation(service))

    revision = load("revision-health-check-failed.json")
    ready = knative.condition(revision, "Ready")
    assert (ready.status, ready.reason) == ("False", "HealthCheckContainerError")
    assert "PORT=9000" in ready.message


# ---- IAM v3 ---------------------------------------------------------------------------------


def test_conditional_bindings_compare_apart_from_plain_ones() -> None:
    policy = load("iam-policy-conditions.json")
    dropped = {
        **policy,
        "bindings": [{k: v for k, v in b.items() if k != "condition"} for b in policy["bindings"]],
    }
    assert client._bindings(policy) != client._bindings(dropped)
    assert client._bindings(policy) == client._bindings(copy.deepcopy(policy))


# ---- Cloud Monitoring pages -----------------------------------------------------------------


def test_pages_are_read_and_counted_across_the_next_page_token() -> None:
    first = analysis.series_page(load("timeseries-page-1.json"))
    last = analysis.series_page(load("timeseries-page-2.json"))

    assert first.next_token and not last.next_token
    counts = analysis.count_by_class(first.series + last.series)
    assert counts == {"2xx": 70, "5xx": 30}
    metrics = analysis.Metrics(sum(counts.values()), counts["5xx"], None, None)
    verdict = analysis.judge(AnalysisSettings(max_error_rate=5), metrics, 0)
    assert verdict.ok is False and verdict.detail == "error rate 30.0 % of 100 requests > max 5 %"


def test_point_interval_ends_parse_as_rfc3339() -> None:
    point = load("timeseries-page-1.json")["timeSeries"][0]["points"][0]
    end = analysis.parse_rfc3339(point["interval"]["endTime"])
    assert end == analysis.parse_rfc3339("2026-10-01T10:01:00.000000000Z")
    assert analysis.parse_rfc3339("yesterday") is None


def test_a_body_not_shaped_as_documented_is_refused() -> None:
    with pytest.raises(analysis.MonitoringError):
        analysis.series_page({"timeSeries": {}})
    with pytest.raises(analysis.MonitoringError):
        analysis.series_page({"timeSeries": [], "nextPageToken": 3})
    assert analysis.series_page({}) == analysis.SeriesPage([], "")


# ---- readiness as gcloud's poller judges it ---------------------------------------------------


class Revisions:
    """Stands in for the client: only ``get_revision`` is asked during readiness."""

    def __init__(self, revisions: dict[str, dict[str, Any]]) -> None:
        self.revisions = revisions

    def get_revision(self, name: str) -> dict[str, Any] | None:
        return self.revisions.get(name)


def readiness(
    service: dict[str, Any], candidate: str, revisions: dict[str, dict[str, Any]]
) -> tuple[bool, str]:
    return service_readiness(service, candidate, Revisions(revisions), "hello")


def test_a_candidate_that_was_never_created_fails_at_once_with_the_reason() -> None:
    service = load("service-configuration-failed.json")
    with pytest.raises(
        RevisionFailed,
        match=r"hello-00004-bad was never created: ConfigurationsReady=False \(ContainerMissing\)",
    ):
        readiness(service, "hello-00004-bad", {})


def test_a_failed_candidate_reports_its_own_reason() -> None:
    service = load("service-configuration-failed.json")
    revision = load("revision-health-check-failed.json")
    with pytest.raises(RevisionFailed, match="HealthCheckContainerError: The user-provided container"):
        readiness(service, "hello-00004-bad", {"hello-00004-bad": revision})


def test_a_traffic_change_fails_on_its_routes_not_on_a_failed_latest_revision() -> None:
    service = load("service-configuration-failed.json")
    # After a rollback the failed latest revision keeps ConfigurationsReady (and Ready) False while
    # the restored routes are ready: the traffic change itself succeeded.
    assert readiness(service, "", {}) == (True, "RoutesReady=True")
    service["status"]["conditions"][2] = {
        "type": "RoutesReady",
        "status": "False",
        "reason": "RevisionFailed",
        "message": "Revision 'hello-00004-bad' is not ready.",
    }
    with pytest.raises(RolloutFailed, match=r"RoutesReady=False \(RevisionFailed\)"):
        readiness(service, "", {})
    service["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "gone"},
        {"type": "ConfigurationsReady", "status": "True"},
        {"type": "RoutesReady", "status": "Unknown"},
    ]
    with pytest.raises(RolloutFailed, match=r"Ready=False \(RevisionMissing\): gone"):
        readiness(service, "", {})
    ready = load("service-default-probe.json")
    assert readiness(ready, "", {}) == (True, "RoutesReady=True")


def test_after_a_deploy_any_false_service_condition_fails_with_its_reason() -> None:
    service = load("service-configuration-failed.json")
    service["status"]["latestReadyRevisionName"] = "hello-00004-bad"  # settled, but then failed
    revision = load("revision-health-check-failed.json")
    revision["status"]["conditions"][0] = {"type": "Ready", "status": "True"}
    service["status"]["conditions"][1] = {"type": "ConfigurationsReady", "status": "True"}
    service["status"]["conditions"][0]["reason"] = "RoutesNotReady"
    with pytest.raises(RolloutFailed, match=r"service hello failed: Ready=False \(RoutesNotReady\)"):
        readiness(service, "hello-00004-bad", {"hello-00004-bad": revision})
