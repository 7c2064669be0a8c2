"""Cases real Cloud Run has and a naive client gets wrong, end to end against the emulator:
the default startup probe and a port change, sidecars, configuration failures, metric lag."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from cloudrun_emulator.store import project_number
from devtools import harness
from tests.cloudrun import METRIC_LAG, METRIC_SAMPLING, Api, routing
from tests.helpers import FAST, load, target

# The 10 % steps here bake 1 s: busier users (up to 100 requests a second) give the candidate some ten
# requests in a step, enough for a 30 % error rate to show even on a loaded machine.
BUSY = 0.03

DATA = Path(__file__).parent.parent / "data"


def put(api: Api, svc: dict[str, Any]) -> requests.Response:
    return api.put({k: svc[k] for k in ("apiVersion", "kind", "metadata", "spec")})


def template_container(svc: dict[str, Any], index: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = svc["spec"]["template"]["spec"]["containers"][index]
    return container


# ---- the default startup probe and a port change --------------------------------------------


def test_a_port_change_that_leaves_the_probe_behind_fails_the_revision(
    emulator: Emulator, project: str
) -> None:
    """The emulator as Cloud Run: a template keeps its default probe on 8080 when only ports change."""
    api = Api(emulator.url, project)
    svc = api.create_service("stale", "sample/hello:v1", "stale-v1")
    assert template_container(svc)["startupProbe"]["tcpSocket"] == {"port": 8080}
    svc["spec"]["template"]["metadata"]["name"] = "stale-v2"
    template_container(svc)["ports"] = [{"name": "http1", "containerPort": 9000}]
    assert put(api, svc).status_code == 200
    revision = requests.get(f"{api.ns}/revisions/stale-v2", timeout=10).json()
    deadline = time.monotonic() + 10
    while revision["status"]["conditions"][0]["status"] == "Unknown" and time.monotonic() < deadline:
        time.sleep(0.1)
        revision = requests.get(f"{api.ns}/revisions/stale-v2", timeout=10).json()
    ready = revision["status"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == (
        "Ready",
        "False",
        "HealthCheckContainerError",
    )
    assert "PORT=9000" in ready["message"]


def test_port_change_on_a_service_with_the_default_probe_promotes(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("ported", "sample/hello:v1", "ported-v1")
    result = harness.run(
        target(
            emulator, project, service="ported", image="sample/hello:v2", suffix="v2", port="9000", **FAST
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"
    container = template_container(api.service("ported"))
    assert container["ports"] == [{"name": "http1", "containerPort": 9000}]
    assert container["startupProbe"]["tcpSocket"] == {"port": 9000}
    assert requests.get(result.outputs["url"], timeout=5).json()["revision"] == "ported-v2"


def test_a_gcloud_described_service_as_metadata_file_is_created_in_our_project(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """A ``services describe`` body (uid, resourceVersion, operation-id, another project's
    namespace...) works as the metadata file: stripped as ``--format export`` strips it."""
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True)
    shutil.copy(DATA / "service-default-probe.json", workspace / "service.yaml")  # JSON is YAML
    result = harness.run(
        target(
            emulator, project, service="hello", image="sample/hello:v5", metadata="service.yaml", port="9090"
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    svc = Api(emulator.url, project).service("hello")
    assert svc["metadata"]["namespace"] == project_number(project)  # Cloud Run answers with the number
    annotations = svc["metadata"]["annotations"]
    assert annotations["run.googleapis.com/client-name"] == "run-canary"
    assert "run.googleapis.com/operation-id" not in annotations
    template = svc["spec"]["template"]
    assert template["metadata"]["annotations"]["client.knative.dev/user-image"] == "sample/hello:v5"
    assert template["metadata"]["annotations"]["run.googleapis.com/client-name"] == "run-canary"
    assert template_container(svc)["startupProbe"]["tcpSocket"] == {"port": 9090}


# ---- sidecars -------------------------------------------------------------------------------


def create_sidecar_service(api: Api, name: str) -> dict[str, Any]:
    body = json.loads((DATA / "service-sidecars.json").read_text(encoding="utf-8"))
    body["metadata"] = {"name": name}
    body["spec"]["template"]["metadata"]["name"] = f"{name}-v1"
    resp = requests.post(f"{api.ns}/services", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return api.wait_ready(name)


def test_sidecar_keeps_its_image_and_the_ingress_container_gets_the_new_one(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    before = create_sidecar_service(api, "shop")
    sidecar = template_container(before, 0)
    result = harness.run(
        target(
            emulator,
            project,
            service="shop",
            image="sample/hello:v2",
            suffix="v2",
            env_vars="LEVEL=debug",
            **FAST,
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    svc = api.service("shop")
    collector, app = svc["spec"]["template"]["spec"]["containers"]
    assert collector == sidecar
    assert app["name"] == "app" and app["image"] == "sample/hello:v2"
    assert {"name": "LEVEL", "value": "debug"} in app["env"]
    answer = requests.get(result.outputs["url"], timeout=5).json()
    assert (answer["revision"], answer["image"]) == ("shop-v2", "sample/hello:v2")


def test_an_unknown_container_input_fails_before_any_write(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    create_sidecar_service(api, "named")
    writes_before = len([r for r in emulator.requests() if r["method"] == "PUT"])
    result = harness.run(
        target(emulator, project, service="named", image="sample/hello:v2", container="web", **FAST),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1
    assert "no container named 'web'" in result.log and "'collector', 'app'" in result.log
    assert len([r for r in emulator.requests() if r["method"] == "PUT"]) == writes_before
    assert routing(api.service("named")) == [("named-v1", 100, "")]


# ---- configuration failures -----------------------------------------------------------------


def test_a_configuration_failure_fails_within_seconds_with_cloud_runs_reason(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("noimg", "sample/hello:v1", "noimg-v1")
    started = time.monotonic()
    result = harness.run(  # default wait_timeout: 10 minutes
        target(emulator, project, service="noimg", image="us-docker.pkg.dev/p/app/missing:1", suffix="v2"),
        tmp_path=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.outputs["result"] == "rolled_back", result.log
    assert "ContainerMissing" in result.log
    assert "Image 'us-docker.pkg.dev/p/app/missing:1' not found." in result.log
    assert elapsed < 30, elapsed  # seconds, not the 10 minutes of wait_timeout
    assert routing(api.wait_routes("noimg")) == [("noimg-v1", 100, "")]


# ---- metric lag -----------------------------------------------------------------------------


@pytest.mark.long
def test_a_30_percent_5xx_canary_is_rolled_back_with_default_timing(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Default steps (10,50,100), step_interval (60s) and on_inconclusive; the emulator samples and
    lags like Cloud Monitoring, scaled 1/60 (see tests/cloudrun.py). The candidate must never get
    past its first step."""
    assert (METRIC_SAMPLING, METRIC_LAG) == (1.0, 3.0)
    api = Api(emulator.url, project)
    svc = api.create_service("lagged", "sample/hello:v1", "lagged-v1")
    args = target(
        emulator,
        project,
        service="lagged",
        image="sample/error",
        suffix="v2",
        env_vars="ERROR_RATE=0.3",
        max_error_rate="5",
        smoke_path="/healthz",  # healthy to a probe: only real traffic shows the errors
    )
    with load(svc["status"]["url"], BUSY):
        result = harness.run(args, tmp_path=tmp_path)
    assert result.returncode == 1
    assert result.outputs["result"] == "rolled_back", result.log
    assert "check failed at 10%: metrics: error rate" in result.log
    written = [
        json.loads(json.dumps(r["body"]))["spec"]["traffic"]
        for r in emulator.requests()
        if r["method"] == "PUT" and "/services/lagged" in r["path"] and r["status"] == 200
    ]
    assert (
        max(t.get("percent", 0) for block in written for t in block if t.get("revisionName") == "lagged-v2")
        == 10
    )
    assert routing(api.wait_routes("lagged")) == [("lagged-v1", 100, ""), ("lagged-v2", 0, "canary")]


def test_a_30_percent_5xx_canary_is_rolled_back_when_the_bake_is_shorter_than_the_lag(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Google's timing and the action's defaults, both scaled by 1/60: 1 s windows, 3 s lag, a 1 s
    bake (the default 60 s). Nothing of the bake is visible while it bakes; the step is judged once
    Cloud Monitoring holds its requests, and fails (before this, it passed as "inconclusive")."""
    api = Api(emulator.url, project)
    svc = api.create_service("scaled", "sample/hello:v1", "scaled-v1")
    args = target(
        emulator,
        project,
        service="scaled",
        image="sample/error",
        suffix="v2",
        env_vars="ERROR_RATE=0.3",
        max_error_rate="5",
        smoke_path="/healthz",
        step_interval=f"{60 * METRIC_SAMPLING / 60:g}s",
    )
    with load(svc["status"]["url"], BUSY):
        result = harness.run(args, tmp_path=tmp_path)
    assert result.outputs["result"] == "rolled_back", result.log
    # Nothing of the bake is visible while it bakes: no round judges it before the data is in (the
    # round at the bake's very end is the final verdict, taken once Cloud Monitoring holds the bake).
    assert "10%: waiting up to" in result.log
    assert "10% round 1: metrics FAILED" not in result.log.split("10%: waiting up to")[0]
    # At 10 % a handful of requests may all succeed by chance (0.7^4 is 24 %): then 50 % judges it.
    assert re.search(r"check failed at (10|50)%: metrics: error rate", result.log), result.log
    assert routing(api.wait_routes("scaled")) == [("scaled-v1", 100, ""), ("scaled-v2", 0, "canary")]


def test_a_step_is_judged_on_its_own_requests_after_the_ingestion_lag(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """A bake shorter than the lag sees none of its requests while it bakes: the final verdict
    waits until Cloud Monitoring holds a point past the bake, then counts the step's requests."""
    api = Api(emulator.url, project)
    svc = api.create_service("judged", "sample/hello:v1", "judged-v1")
    args = target(
        emulator,
        project,
        service="judged",
        image="sample/hello:v2",
        suffix="v2",
        steps="50,100",
        step_interval="1s",  # shorter than the 3 s (scaled) lag
        max_error_rate="5",
        min_requests="5",
        wait_timeout="30s",
    )
    with load(svc["status"]["url"], BUSY):
        result = harness.run(args, tmp_path=tmp_path)
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted"
    assert "waiting up to 240s for Cloud Monitoring" in result.log
    assert "metrics ok: error rate 0.0 % of" in result.summary


# ---- IAM policy version 3 -------------------------------------------------------------------


def iam_url(emu: Emulator, project: str, service: str, verb: str) -> str:
    return f"{emu.url}/v1/projects/{project}/locations/us-central1/services/{service}:{verb}"


def test_allow_unauthenticated_keeps_conditional_bindings(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("guarded", "sample/hello:v1", "guarded-v1")
    policy = json.loads((DATA / "iam-policy-conditions.json").read_text(encoding="utf-8"))
    current = requests.get(iam_url(emulator, project, "guarded", "getIamPolicy"), timeout=10).json()
    policy["etag"] = current["etag"]
    written = requests.post(
        iam_url(emulator, project, "guarded", "setIamPolicy"), json={"policy": policy}, timeout=10
    )
    assert written.status_code == 200, written.text
    v1 = requests.get(iam_url(emulator, project, "guarded", "getIamPolicy"), timeout=10).json()
    assert v1["version"] == 1 and any(
        "_withcond_" in b["role"] for b in v1["bindings"]
    )  # what a v1 reader sees

    result = harness.run(
        target(
            emulator,
            project,
            service="guarded",
            image="sample/hello:v2",
            allow_unauthenticated="true",
            **FAST,
        ),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.log
    v3 = requests.get(
        iam_url(emulator, project, "guarded", "getIamPolicy"),
        params={"options.requestedPolicyVersion": "3"},
        timeout=10,
    ).json()
    assert v3["version"] == 3
    conditional = [b for b in v3["bindings"] if "condition" in b]
    assert conditional == [policy["bindings"][1]]
    members = {m for b in v3["bindings"] if "condition" not in b for m in b["members"]}
    assert members == {"allUsers", "serviceAccount:frontend@my-project.iam.gserviceaccount.com"}


# ---- Cloud Monitoring pages -----------------------------------------------------------------


def test_the_analysis_follows_next_page_tokens(own_emulator: Emulator, project: str) -> None:
    """The server cuts a page after one series: the 2xx and 5xx counts arrive on two pages."""
    from deployer.analysis import Analysis
    from deployer.settings import AnalysisSettings

    own_emulator.configure({"metric_sampling": 0.2, "metric_lag": 0.2, "monitoring_page_size": 1})
    api = Api(own_emulator.url, project)
    svc = api.create_service("paged", "sample/error", "paged-v1", env={"ERROR_RATE": "0.5"})
    statuses = [requests.get(svc["status"]["url"], timeout=5).status_code for _ in range(40)]
    time.sleep(0.6)  # ingested
    checker = Analysis(
        AnalysisSettings(max_error_rate=5),
        session=requests.Session(),
        project=project,
        region="us-central1",
        service="paged",
        monitoring_endpoint=own_emulator.url,
    )
    metrics = checker.fetch_metrics("paged-v1", time.time() - 60, time.time())
    assert (metrics.requests, metrics.errors) == (40, statuses.count(500))
    assert 0 < metrics.errors < 40
    counts = [
        r["query"]
        for r in own_emulator.requests()
        if r["path"].endswith("/timeSeries") and "request_count" in r["query"]["filter"]
    ]
    assert len(counts) == 2 and "pageToken" not in counts[0] and counts[1]["pageToken"]


def test_a_manual_rollback_after_a_failed_configuration_succeeds(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """A failed latest revision keeps ConfigurationsReady False; moving traffic still works.

    The action's own failed deploy puts the template back (so the service is Ready again); a failed
    revision someone else created stays latest, and a manual rollback must still succeed beside it."""
    api = Api(emulator.url, project)
    api.create_service("after", "sample/hello:v1", "after-v1")
    failed = harness.run(
        target(
            emulator, project, service="after", image="us-docker.pkg.dev/p/app/missing:2", suffix="v2", **FAST
        ),
        tmp_path=tmp_path / "deploy",
    )
    assert failed.outputs["result"] == "rolled_back", failed.log
    restored = next(
        c for c in api.service("after")["status"]["conditions"] if c["type"] == "ConfigurationsReady"
    )
    assert restored["status"] == "True"  # the template is back on after-v1
    # Another tool deploys a broken revision with the traffic pinned where it is.
    svc = api.service("after")
    svc.pop("status")
    svc["spec"]["template"]["metadata"]["name"] = "after-v3"
    svc["spec"]["template"]["spec"]["containers"][0]["image"] = "us-docker.pkg.dev/p/app/missing:3"
    svc["spec"]["traffic"] = [{"revisionName": "after-v1", "percent": 100}]
    assert api.put(svc).status_code == 200
    api.wait_routes("after")
    back = harness.run(
        target(emulator, project, service="after", mode="rollback", rollback_to="after-v1", **FAST),
        tmp_path=tmp_path / "rollback",
    )
    assert back.returncode == 0, back.log
    assert back.outputs["result"] == "rolled_back"
    svc = api.service("after")
    configs = next(c for c in svc["status"]["conditions"] if c["type"] == "ConfigurationsReady")
    assert (configs["status"], configs["reason"]) == ("False", "ContainerMissing")  # as Cloud Run keeps it
    assert routing(svc) == [("after-v1", 100, "")]
