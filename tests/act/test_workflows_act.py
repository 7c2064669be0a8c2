"""The action and the organisation's workflows run by act (an independent runner) against the emulator.

Offline and on loopback (devtools/act.py): the action's image built the project's way, stand-ins for
actions/checkout and google-github-actions/auth, workflows with ``queue: max`` removed (act 0.2.89
refuses it). Every test asserts what the emulator holds afterwards (traffic, tags, the rollout record,
job executions), after act has also run the post steps.

The full rollout runs as act runs by default, the steps in a job container; the others run the steps
on this machine as a GitHub-hosted runner does (``on_host``), the action still in its container: the
same workflows and step engine for about a third of the CPU (a job container costs several
``docker cp`` a step, each a new dockerd process).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cloudrun_emulator import Emulator
from deployer.state import STATE_ANNOTATION
from devtools import act, harness
from tests.cloudrun import Api, api_path, routing
from tests.container.image import Image

pytestmark = [pytest.mark.long, pytest.mark.timeout(600)]

CHECKOUT = next(
    ref
    for ref in act.PINNED.findall((act.ROOT / ".github" / "workflows" / "manual.yml").read_text())
    if ref.startswith("actions/checkout@")
)
FAST = {"step_interval": "1s", "wait_timeout": "60s", "smoke_timeout": "10s"}
ENDPOINT = "${{ vars.CLOUD_RUN_API_ENDPOINT }}"
SA = "deployer@act.iam.gserviceaccount.com"
WIP = "projects/1/locations/global/workloadIdentityPools/act/providers/act"


def rehearse(tmp_path: Path, rehearsal: act.Rehearsal) -> tuple[str, int]:
    """Run act; its log and exit code (the wall time is printed for the report)."""
    print(f"steps {'on the host' if rehearsal.on_host else 'in a job container'}")
    started = time.monotonic()
    done = act.run(rehearsal, tmp_path, timeout=420)
    print(f"act {rehearsal.workflow} ({rehearsal.event}): {time.monotonic() - started:.1f} s wall")
    return done.stdout + done.stderr, done.returncode


def action_workflow(project: str, **with_: str) -> str:
    """A workflow that runs this repository's action once (``uses: ./``) against the emulator."""
    step = {"service": "web", "region": "us-central1", "project_id": project, "api_endpoint": ENDPOINT}
    workflow = {
        "name": "rehearsal",
        "on": "workflow_dispatch",
        "permissions": {"contents": "read"},
        "jobs": {
            "deploy": {
                "runs-on": "ubuntu-latest",
                "steps": [
                    {"uses": CHECKOUT, "with": {"persist-credentials": False}},
                    {"id": "canary", "uses": "./", "with": {**step, **FAST, **with_}},
                    {"run": 'echo "result=${{ steps.canary.outputs.result }}"'},
                ],
            }
        },
    }
    return yaml.safe_dump(workflow, sort_keys=False)


def caller(workflow: str, with_: dict[str, Any]) -> str:
    """A caller of one of the reusable workflows, with the permissions they need."""
    return yaml.safe_dump(
        {
            "name": "caller",
            "on": "workflow_dispatch",
            "permissions": {"contents": "read", "id-token": "write"},
            "jobs": {"call": {"uses": f"./.github/workflows/{workflow}", "with": with_}},
        },
        sort_keys=False,
    )


def manual_inputs(mode: str) -> dict[str, str]:
    return {"service": "web", "region": "us-central1", "mode": mode, "environment": "production"}


def own(emu: Emulator) -> dict[str, str]:
    return {"CLOUD_RUN_API_ENDPOINT": emu.url}


def record(svc: dict[str, Any]) -> str | None:
    return (svc["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)


def share(body: dict[str, Any], revision: str) -> int:
    return sum(
        e.get("percent", 0) for e in body["spec"].get("traffic", []) if e.get("revisionName") == revision
    )


def writes(emu: Emulator, project: str, region: str | None = None, since: int = 0) -> list[dict[str, Any]]:
    """Accepted service writes of ``project`` (in ``region``, when given; from the ``since``-th request
    on), in order."""
    where = f"projects/{project}/locations/{region}/" if region else None
    return [
        r
        for r in emu.requests()[since:]
        if r["method"] in ("PUT", "POST")
        and re.search(api_path(project, "services"), r["path"])
        and (where is None or where in r["path"])
        and r["status"] == 200
    ]


def candidate_of(api: Api, service: str = "web") -> str:
    return str(api.service(service)["status"]["latestCreatedRevisionName"])


# ---- the action (issue 23: under act too) ---------------------------------------------------------


def test_full_rollout_under_act(act_image: Image, emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    api.create_service("web", "sample/hello:v1", "web-v1")
    seen = len(emulator.requests())
    log, code = rehearse(
        tmp_path,
        act.Rehearsal(
            "rehearsal.yml",
            variables=own(emulator),
            extra_workflows={
                "rehearsal.yml": action_workflow(project, image="sample/hello:v2", steps="50,100")
            },
        ),
    )
    assert code == 0, log
    assert "result=promoted" in log and "Run Post ./" in log, log
    candidate = candidate_of(api)
    svc = api.wait_ready("web")
    assert routing(svc) == [(candidate, 100, "canary")]
    assert record(svc) is None
    assert api.revisions("web") == sorted(["web-v1", candidate])
    # Through the endpoint override, every service write addressed the region by location.
    ours = writes(emulator, project, since=seen)
    assert len(ours) >= 3 and all("/locations/us-central1/services" in w["path"] for w in ours)


def test_canary_failing_after_traffic_moved_is_rolled_back_under_act(
    act_image: Image, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("web", "sample/hello:v1", "web-v1")
    before = [(r, p) for r, p, _ in routing(api.service("web"))]
    workflow = action_workflow(
        project, image="sample/hello:v2", steps="10,50,100", check_command='[ "$STEP" -lt 50 ]'
    )
    log, code = rehearse(
        tmp_path,
        act.Rehearsal(
            "rehearsal.yml",
            variables=own(emulator),
            extra_workflows={"rehearsal.yml": workflow},
            on_host=True,
        ),
    )
    assert code != 0, log
    assert "rolled_back" in log, log
    candidate = candidate_of(api)
    shares = [share(w["body"], candidate) for w in writes(emulator, project)[1:]]
    assert 50 in shares and shares[-1] == 0, shares  # traffic moved, then back
    svc = api.wait_ready("web")
    assert [(r, p) for r, p, _ in routing(svc) if p] == [e for e in before if e[1]]
    assert record(svc) is None


def test_pause_survives_the_job_and_manual_promote_finishes_it_under_act(
    act_image: Image, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("web", "sample/hello:v1", "web-v1")
    workflow = action_workflow(project, image="sample/hello:v2", steps="10,50")
    log, code = rehearse(
        tmp_path / "pause",
        act.Rehearsal(
            "rehearsal.yml",
            variables=own(emulator),
            extra_workflows={"rehearsal.yml": workflow},
            on_host=True,
        ),
    )
    assert code == 0 and "result=paused" in log and "Run Post ./" in log, log
    candidate = candidate_of(api)
    svc = api.wait_ready("web")
    assert share(svc, candidate) == 50 and record(svc), "the post step undid the pause"

    log, code = rehearse(
        tmp_path / "promote",
        act.Rehearsal(
            "manual.yml",
            variables={**own(emulator), "GCP_PROJECT_ID": project},
            inputs={
                "service": "web",
                "region": "us-central1",
                "mode": "promote",
                "environment": "production",
            },
            on_host=True,
        ),
    )
    assert code == 0, log
    svc = api.wait_ready("web")
    assert share(svc, candidate) == 100 and record(svc) is None


# ---- the organisation's workflows (issue 27) ------------------------------------------------------


def test_reusable_deploy_two_regions_through_one_endpoint_under_act(
    act_image: Image, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    europe, us = Api(emulator.url, project, "europe-west1"), Api(emulator.url, project, "us-central1")
    europe.create_service("web", "sample/hello:v1", "web-eu-v1")
    us.create_service("web", "sample/hello:v1", "web-us-v1")
    with_ = {
        "service": "web",
        "image": "sample/hello:v2",
        "regions": "europe-west1, us-central1",
        "project_id": project,
        "workload_identity_provider": WIP,
        "service_account": SA,
        "steps": "50,100",
        "step_interval": "1s",
        "api_endpoint": ENDPOINT,
    }
    log, code = rehearse(
        tmp_path,
        act.Rehearsal(
            "caller.yml",
            variables=own(emulator),
            extra_workflows={"caller.yml": caller("deploy.yml", with_)},
            on_host=True,
        ),
    )
    assert code == 0, log
    # act leaves job.workflow_repository/workflow_sha empty: the fallback names the caller's own commit.
    assert re.search(rf"checkout stand-in: {act.REPOSITORY}@[0-9a-f]{{40}} from the local tree", log), log
    for api, old in ((europe, "web-eu-v1"), (us, "web-us-v1")):
        candidate = candidate_of(api)
        svc = api.wait_ready("web")
        assert routing(svc) == [(candidate, 100, "canary")], api.region
        assert record(svc) is None
        assert api.revisions("web") == sorted([old, candidate]), api.region
    assert europe.service("web")["metadata"]["uid"] != us.service("web")["metadata"]["uid"]
    # The first region alone, then the others.
    eu_writes, us_writes = writes(emulator, project, "europe-west1"), writes(emulator, project, "us-central1")
    assert len(eu_writes) >= 3 and len(us_writes) >= 3
    assert max(w["time"] for w in eu_writes) < min(w["time"] for w in us_writes)


def test_migrate_deploy_with_a_failing_migration_moves_no_traffic_under_act(
    act_image: Image, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("web", "sample/hello:v1", "web-v1")
    with_ = {
        "service": "web",
        "image": "sample/hello:v2",
        "region": "us-central1",
        "project_id": project,
        "workload_identity_provider": WIP,
        "service_account": SA,
        "migration_job": "web-migrate",
        "migration_command": '["sh", "-c", "echo migrating; exit 3"]',
        "steps": "50,100",
        "step_interval": "1s",
        "api_endpoint": ENDPOINT,
    }
    log, code = rehearse(
        tmp_path,
        act.Rehearsal(
            "caller.yml",
            variables=own(emulator),
            extra_workflows={"caller.yml": caller("migrate-deploy.yml", with_)},
            on_host=True,
        ),
    )
    assert code != 0, log
    (candidate,) = [r for r in api.revisions("web") if r != "web-v1"]  # deployed, never served
    assert all(share(w["body"], candidate) == 0 for w in writes(emulator, project)), "traffic moved"
    svc = api.wait_ready("web")
    assert [(r, p) for r, p, _ in routing(svc) if p] == [("web-v1", 100)]
    assert record(svc) is None
    runs = f"{emulator.url}/apis/run.googleapis.com/v1/namespaces/{project}"
    executions = requests.get(
        f"{runs}/executions", params={"labelSelector": "run.googleapis.com/job=web-migrate"}, timeout=10
    ).json()["items"]
    assert len(executions) == 1
    assert executions[0]["status"].get("failedCount") == 1, executions[0]["status"]
    tasks = requests.get(
        f"{runs}/tasks",
        params={"labelSelector": f"run.googleapis.com/execution={executions[0]['metadata']['name']}"},
        timeout=10,
    ).json()["items"]
    assert [t["status"]["lastAttemptResult"]["exitCode"] for t in tasks] == [3]


def test_manual_rollback_after_a_killed_run_under_act(
    act_image: Image, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("web", "sample/hello:v1", "web-v1")
    inputs = {
        "api_endpoint": emulator.url,
        "project_id": project,
        "region": "us-central1",
        "service": "web",
        "image": "sample/hello:v2",
        "steps": "10,100",
        "step_interval": "60s",
    }
    with harness.start(inputs, tmp_path=tmp_path / "killed") as running:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            svc = api.service("web")
            if record(svc) and any(t.get("percent") == 10 for t in svc["spec"]["traffic"]):
                break
            time.sleep(0.2)
        running.kill()
        running.wait()
    assert record(api.service("web")), "the killed run left its rollout"
    log, code = rehearse(
        tmp_path / "rollback",
        act.Rehearsal(
            "manual.yml",
            variables={**own(emulator), "GCP_PROJECT_ID": project},
            inputs={
                "service": "web",
                "region": "us-central1",
                "mode": "rollback",
                "environment": "production",
            },
            on_host=True,
        ),
    )
    assert code == 0, log
    svc = api.wait_ready("web")
    assert [(r, p) for r, p, _ in routing(svc) if p] == [("web-v1", 100)]
    assert record(svc) is None


def test_preview_opened_closed_and_forks_skipped_under_act(
    act_image: Image, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("web-preview", "sample/hello:v1", "web-preview-v1")
    variables = {
        **own(emulator),
        "PREVIEW_SERVICE": "web-preview",
        "PREVIEW_PROJECT_ID": project,
        "PREVIEW_SERVICE_ACCOUNT": SA,
        "PREVIEW_RUNTIME_SERVICE_ACCOUNT": f"preview-runtime@{project}.iam.gserviceaccount.com",
        "GCP_WORKLOAD_IDENTITY_PROVIDER": WIP,
        "IMAGE_REPOSITORY": "sample/hello",
    }

    def event(action: str, repo: str = act.REPOSITORY) -> dict[str, Any]:
        payload = harness.pull_request_event(7, head_sha="0123456789abcdef0123456789abcdef01234567")
        payload["action"] = action
        payload["pull_request"]["head"]["repo"]["full_name"] = repo
        payload["repository"]["full_name"] = act.REPOSITORY
        return payload

    log, code = rehearse(
        tmp_path / "opened",
        act.Rehearsal("preview.yml", "pull_request", event("opened"), variables, on_host=True),
    )
    assert code == 0, log
    svc = api.wait_ready("web-preview")
    tagged = [(r, p) for r, p, t in routing(svc) if t == "pr-7"]
    assert len(tagged) == 1 and tagged[0][1] == 0 and tagged[0][0].startswith("web-preview-pr7-0123456")
    assert [(r, p) for r, p, _ in routing(svc) if p] == [("web-preview-v1", 100)]

    log, code = rehearse(
        tmp_path / "closed",
        act.Rehearsal("preview.yml", "pull_request", event("closed"), variables, on_host=True),
    )
    assert code == 0, log
    assert "Removed tag pr-7" in log, log
    svc = api.wait_ready("web-preview")
    assert "pr-7" not in [t for _, _, t in routing(svc)]
    assert [(r, p) for r, p, _ in routing(svc) if p] == [("web-preview-v1", 100)]

    seen = len(emulator.requests())
    log, code = rehearse(
        tmp_path / "fork",
        act.Rehearsal(
            "preview.yml", "pull_request", event("opened", "someone/fork"), variables, on_host=True
        ),
    )
    assert code == 0, log
    log, code = rehearse(
        tmp_path / "fork-closed",
        act.Rehearsal(
            "preview.yml", "pull_request", event("closed", "someone/fork"), variables, on_host=True
        ),
    )
    assert code == 0, log
    assert not [r for r in emulator.requests()[seen:] if f"/{project}/" in r["path"]], "a fork's run wrote"
