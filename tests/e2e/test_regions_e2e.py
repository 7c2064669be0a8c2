"""One endpoint override, several regions: each region's rollout reaches that region's own service.

Through ``api_endpoint`` the action addresses services by location, so the reusable workflow's
regions, run one after the other through one endpoint, each end with their own candidate at 100 %
and their own revisions (they once all hit one service: the second region re-promoted the first
region's revision and said it had "no traffic").
"""

from __future__ import annotations

from pathlib import Path

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, routing
from tests.helpers import Jobs, inputs


def test_two_regions_through_one_endpoint(emulator: Emulator, project: str, tmp_path: Path) -> None:
    regions = {
        "europe-west1": Api(emulator.url, project, "europe-west1"),
        "us-central1": Api(emulator.url, project),
    }
    for region, api in regions.items():
        api.create_service("web", "sample/hello:v1", f"web-{region}-v1")
    for region in regions:
        result = harness.run(
            inputs(
                emulator,
                project,
                region=region,
                service="web",
                image="sample/hello:v2",
                suffix="r2",
                steps="50,100",
            ),
            tmp_path=tmp_path / region,
        )
        assert result.returncode == 0 and result.outputs["result"] == "promoted", result.log
        assert "tagged 'canary' with no traffic" in result.log, result.log
    for region, api in regions.items():
        svc = api.wait_ready("web")
        assert routing(svc) == [("web-r2", 100, "canary")], region
        assert svc["metadata"]["labels"]["cloud.googleapis.com/location"] == region
        assert api.revisions("web") == sorted([f"web-{region}-v1", "web-r2"]), region
    assert (
        regions["europe-west1"].service("web")["metadata"]["uid"]
        != regions["us-central1"].service("web")["metadata"]["uid"]
    )


def test_each_regions_migration_job_runs_in_that_region_through_one_endpoint(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Jobs have no location path in v1: through an address (an emulator, an IP endpoint) the action
    names the region in the Host header, so each region's ``pre_job`` is that region's own job (they
    once shared one job in the default region)."""
    regions = ("europe-west1", "us-east1")
    for region in regions:
        Api(emulator.url, project, region).create_service("web", "sample/hello:v1", f"web-{region}-v1")
        result = harness.run(
            inputs(
                emulator,
                project,
                region=region,
                service="web",
                image="sample/hello:v2",
                suffix="r2",
                steps="100",
                pre_job="migrate",
                job_image="sample/job",
                job_env_vars=f"WHERE={region}",
            ),
            tmp_path=tmp_path / region,
        )
        assert result.returncode == 0 and result.outputs["result"] == "promoted", result.log
    for region in regions:
        jobs = Jobs(emulator.url, project, region)
        job = jobs.job("migrate")
        assert job["metadata"]["labels"]["cloud.googleapis.com/location"] == region
        container = job["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "WHERE", "value": region} in container["env"], region
        (execution,) = jobs.executions("migrate")
        assert execution["metadata"]["labels"]["cloud.googleapis.com/location"] == region
        assert execution["status"]["succeededCount"] == 1, execution["status"]
    default = Jobs(emulator.url, project)
    assert default.executions("migrate") == []  # nothing landed in the default region


def test_a_candidate_that_already_serves_is_not_called_no_traffic(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """The candidate is a revision from before (same name and settings) that serves everything."""
    api = Api(emulator.url, project)
    first = harness.run(
        inputs(
            emulator,
            project,
            region="us-central1",
            service="web",
            image="sample/hello:v2",
            suffix="s1",
            steps="100",
        ),
        tmp_path=tmp_path / "1",
    )
    assert first.returncode == 0, first.log
    again = harness.run(
        inputs(
            emulator,
            project,
            region="us-central1",
            service="web",
            image="sample/hello:v2",
            suffix="s1",
            steps="100",
        ),
        tmp_path=tmp_path / "2",
    )
    assert "with no traffic" not in again.stdout, again.log
    assert "web-s1 tagged 'canary', already serving 100 % before this run" in again.stdout, again.log
    assert routing(api.wait_ready("web")) == [("web-s1", 100, "canary")]
