"""The workflows run on GitHub as written and keep their safety promises.

- actionlint accepts every workflow and every workflow snippet of the README and docs, and rejects
  what GitHub rejects (a bare ``uses: $/``);
- every ``uses:`` is local, pinned by a full commit SHA, or an image digest;
- the reusable workflow runs with the caller's permissions and runs the action of its own commit;
- previews use their own service, identity and environment, one concurrency group with cleanup,
  the PR head commit, and the cleanup step really removes the tag (run against the emulator);
- manual promote/rollback runs are queued in a group no deploy can cancel them from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cloudrun_emulator import Emulator
from devtools import harness
from tests import workflow_lint
from tests.cloudrun import Api

WORKFLOWS = harness.ROOT / ".github" / "workflows"


def load(name: str) -> dict[Any, Any]:
    # PyYAML reads the key `on` as True; these tests never look at it.
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


BAD_WORKFLOW = """\
name: bad
on: workflow_dispatch
permissions: {}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: $/
        with:
          service: my-service
"""


def write_workflow(root: Path, name: str, text: str) -> Path:
    directory = root / ".github" / "workflows"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --- linting ----------------------------------------------------------------------------------


def test_actionlint_accepts_every_workflow() -> None:
    result = workflow_lint.actionlint(workflow_lint.WORKFLOWS, cwd=harness.ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_bare_self_repository_reference(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, "bad.yml", BAD_WORKFLOW)
    result = workflow_lint.actionlint([path], cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"$/"' in result.stdout and "[action]" in result.stdout


def test_actionlint_checks_run_scripts_with_shellcheck(tmp_path: Path) -> None:
    # The dev requirements put shellcheck beside actionlint: scripts in `run:` are checked too.
    text = BAD_WORKFLOW.replace("      - uses: $/\n        with:\n          service: my-service\n", "")
    text += "      - run: for f in $(ls *.txt); do echo $f; done\n"
    path = write_workflow(tmp_path, "script.yml", text)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [workflow_lint.actionlint_binary(), "-no-color", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "shellcheck" in result.stdout, result.stdout + result.stderr


def test_every_uses_is_local_pinned_or_a_digest() -> None:
    documents = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in workflow_lint.WORKFLOWS}
    documents["action.yml"] = harness.action_metadata()
    found = 0
    for name, document in documents.items():
        assert workflow_lint.pinning_problems(document) == [], name
        found += len(list(workflow_lint.uses_values(document)))
    assert found >= 10  # the walk really sees the steps


def test_pinning_rule_rejects_bare_self_reference_tags_and_short_shas() -> None:
    bad = yaml.safe_load(BAD_WORKFLOW)
    assert len(workflow_lint.pinning_problems(bad)) == 1
    for value in (
        "$/",
        "$/.",
        "actions/checkout@v7",
        "actions/checkout@3d3c42e",
        "actions/checkout@main",
        "docker://ghcr.io/run-canary/run-canary:v1",
        "./../elsewhere",
        "run-canary/run-canary@v1",
    ):
        document = {"jobs": {"j": {"steps": [{"uses": value}]}}}
        assert workflow_lint.pinning_problems(document), value
    for value in (
        "./",
        "./.run-canary",
        "$/.github/actions/x",
        "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",
        "docker://ghcr.io/run-canary/run-canary@sha256:" + "a" * 64,
    ):
        document = {"jobs": {"j": {"steps": [{"uses": value}]}}}
        assert workflow_lint.pinning_problems(document) == [], value
    called = {"jobs": {"j": {"uses": "octo/repo/.github/workflows/x.yml@main"}}}
    assert workflow_lint.pinning_problems(called)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for document in workflow_lint.DOCUMENTS:
        for line, text in workflow_lint.workflow_snippets(document):
            found.append((f"{document.relative_to(harness.ROOT)}:{line}", text))
    return found


def test_the_readme_has_workflow_snippets() -> None:
    where = [w for w, _ in _snippets() if w.startswith("README.md")]
    assert len(where) >= 2, where


@pytest.mark.parametrize(("where", "text"), _snippets(), ids=[w for w, _ in _snippets()])
def test_documented_workflow_snippets_lint_clean(where: str, text: str, tmp_path: Path) -> None:
    path = write_workflow(tmp_path, "snippet.yml", text)
    result = workflow_lint.actionlint([path], cwd=tmp_path)
    assert result.returncode == 0, f"{where}\n{result.stdout}{result.stderr}"
    document = yaml.safe_load(text)
    assert workflow_lint.pinning_problems(document, allow_own_published=True) == [], where


# --- the reusable workflow --------------------------------------------------------------------


def _action_jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Jobs with a step that runs this repository's action (a local `uses:`)."""
    return {
        job_id: job
        for job_id, job in workflow["jobs"].items()
        if any(str(s.get("uses", "")).startswith("./") for s in steps_of(job))
    }


def test_reusable_workflow_takes_the_callers_permissions() -> None:
    workflow = load("deploy.yml")
    jobs = _action_jobs(workflow)
    assert set(jobs) == {"first-region", "other-regions"}
    # A called workflow's job asking for more than the caller grants fails at start-up: the
    # deploying jobs ask for nothing, and nothing above them narrows the caller's grant.
    assert "permissions" not in workflow
    for job_id, job in jobs.items():
        assert "permissions" not in job, job_id
    # No job at all asks for a write permission (the region parser asks for none).
    for job_id, job in workflow["jobs"].items():
        assert job.get("permissions", {}) == {}, job_id
    # The token reaches the action only when the caller opted in to a feature that needs it.
    for job in jobs.values():
        canary = next(s for s in steps_of(job) if s.get("id") == "canary")
        token = canary["with"]["github_token"]
        assert "inputs.github_deployments" in token and "inputs.pr_comment" in token, token
        assert "inputs.github_deployments" in canary["with"]["environment"]
    inputs = workflow[True]["workflow_call"]["inputs"]
    for name in ("github_deployments", "pr_comment"):
        assert inputs[name]["type"] == "boolean" and inputs[name]["default"] is False


def test_reusable_workflow_runs_the_action_of_its_own_commit() -> None:
    for job_id, job in _action_jobs(load("deploy.yml")).items():
        steps = steps_of(job)
        canary_index = next(i for i, s in enumerate(steps) if s.get("id") == "canary")
        path = steps[canary_index]["uses"].removeprefix("./")
        assert path and not path.startswith("/"), job_id
        checkouts = [
            s
            for s in steps[:canary_index]
            if str(s.get("uses", "")).startswith("actions/checkout@") and s["with"].get("path") == path
        ]
        assert len(checkouts) == 1, job_id
        given = checkouts[0]["with"]
        # job.workflow_* first: GitHub always sets them, so there the fallback (for act, which leaves
        # them empty) never applies.
        assert given["repository"] == "${{ job.workflow_repository || github.repository }}"
        assert given["ref"] == "${{ job.workflow_sha || github.sha }}"
        assert given["persist-credentials"] is False


def _canary_steps(name: str) -> list[dict[str, Any]]:
    """Every step of a workflow that runs the action (``uses: ./`` or a checked-out copy)."""
    return [
        s
        for job in load(name)["jobs"].values()
        for s in steps_of(job)
        if str(s.get("uses", "")).startswith("./")
    ]


def test_every_workflow_passes_the_endpoints_to_the_action() -> None:
    """Without them no workflow can be pointed at a Private Service Connect endpoint or an emulator."""
    for name in ("deploy.yml", "migrate-deploy.yml"):
        inputs = load(name)[True]["workflow_call"]["inputs"]
        steps = _canary_steps(name)
        assert steps, name
        for key in ("api_endpoint", "monitoring_endpoint"):
            assert inputs[key] == {"description": inputs[key]["description"], "type": "string", "default": ""}
            assert all(s["with"][key] == f"${{{{ inputs.{key} }}}}" for s in steps), name
    for name in ("manual.yml", "preview.yml"):
        steps = _canary_steps(name)
        assert steps, name
        for step in steps:
            assert step["with"]["api_endpoint"] == "${{ vars.CLOUD_RUN_API_ENDPOINT }}", name
            assert step["with"]["monitoring_endpoint"] == "${{ vars.CLOUD_MONITORING_ENDPOINT }}", name


def test_preview_cleanup_reads_the_endpoint_the_previews_use() -> None:
    cleanup = load("preview.yml")["jobs"]["cleanup"]
    step = next(s for s in steps_of(cleanup) if "API_ENDPOINT" in s.get("env", {}))
    assert step["env"]["API_ENDPOINT"] == "${{ vars.CLOUD_RUN_API_ENDPOINT }}"
    assert "/locations/{env['REGION']}" in step["run"]  # keeps the region through an override


def test_reusable_workflow_serialises_each_region() -> None:
    workflow = load("deploy.yml")
    for job_id, job in _action_jobs(workflow).items():
        group = job["concurrency"]["group"]
        assert group.startswith("deploy-${{ inputs.service }}-"), job_id
        assert job["concurrency"]["cancel-in-progress"] is False


# --- manual promote / rollback ----------------------------------------------------------------


def test_manual_runs_queue_in_their_own_group() -> None:
    job = load("manual.yml")["jobs"]["run"]
    concurrency = job["concurrency"]
    # Not the deploys' group, where a newer deploy would cancel a pending rollback.
    assert not concurrency["group"].startswith("deploy-")
    assert "inputs.service" in concurrency["group"] and "inputs.region" in concurrency["group"]
    assert concurrency["queue"] == "max" and concurrency["cancel-in-progress"] is False
    assert any(s.get("uses") == "./" for s in steps_of(job))


# --- previews ---------------------------------------------------------------------------------


def test_previews_use_their_own_service_identity_and_environment() -> None:
    workflow = load("preview.yml")
    text = (WORKFLOWS / "preview.yml").read_text(encoding="utf-8")
    jobs = workflow["jobs"]
    assert set(jobs) == {"preview", "cleanup"}
    for job_id, job in jobs.items():
        environment = job["environment"]
        name = environment["name"] if isinstance(environment, dict) else environment
        assert name == "preview", job_id
        auth = next(s for s in steps_of(job) if "google-github-actions/auth@" in str(s.get("uses")))
        assert auth["with"]["service_account"] == "${{ vars.PREVIEW_SERVICE_ACCOUNT }}", job_id
        assert "head.repo.full_name == github.repository" in job["if"], job_id  # no forks
    # Nothing in the file names the production service, account or project.
    for production in ("vars.CLOUD_RUN_SERVICE", "vars.GCP_SERVICE_ACCOUNT", "vars.GCP_PROJECT_ID"):
        assert production not in text, production
    preview = next(s for s in steps_of(jobs["preview"]) if s.get("id") == "preview")["with"]
    assert preview["service"] == "${{ vars.PREVIEW_SERVICE }}"
    assert preview["steps"] == "0"
    assert preview["tag"] == "pr-${{ github.event.pull_request.number }}"
    assert preview["service_account"] == "${{ vars.PREVIEW_RUNTIME_SERVICE_ACCOUNT }}"


def test_previews_and_their_cleanup_share_one_queued_group() -> None:
    jobs = load("preview.yml")["jobs"]
    groups = {job_id: job["concurrency"] for job_id, job in jobs.items()}
    assert groups["preview"] == groups["cleanup"]
    assert groups["preview"]["group"].startswith("deploy-${{ vars.PREVIEW_SERVICE }}-")
    assert groups["preview"]["queue"] == "max" and groups["preview"]["cancel-in-progress"] is False
    types = load("preview.yml")[True]["pull_request"]["types"]
    assert types == ["opened", "synchronize", "reopened", "closed"]
    assert jobs["preview"]["if"].startswith("github.event.action != 'closed'")
    assert jobs["cleanup"]["if"].startswith("github.event.action == 'closed'")


def test_preview_names_the_revision_after_the_head_commit(tmp_path: Path) -> None:
    job = load("preview.yml")["jobs"]["preview"]
    step = next(s for s in steps_of(job) if s.get("id") == "name")
    assert step["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    preview = next(s for s in steps_of(job) if s.get("id") == "preview")["with"]
    assert preview["suffix"] == "${{ steps.name.outputs.suffix }}"
    assert preview["image"].endswith(":${{ github.event.pull_request.head.sha }}")
    # Run the step's script as the runner would (bash) and read its output.
    output = tmp_path / "output"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GITHUB_OUTPUT": str(output),
        "PR_NUMBER": "42",
        "HEAD_SHA": "0123456789abcdef0123456789abcdef01234567",
        "RUN_ATTEMPT": "2",
    }
    subprocess.run(["bash", "-e", "-c", step["run"]], env=env, check=True, timeout=10)
    assert output.read_text() == "suffix=pr42-0123456-2\n"


def _cleanup_script() -> str:
    job = load("preview.yml")["jobs"]["cleanup"]
    step = next(s for s in steps_of(job) if s.get("shell") == "python")
    return str(step["run"])


def run_cleanup(emu: Emulator, project: str, service: str, tag: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ACCESS_TOKEN": "ya29.test-token",
        "PROJECT": project,
        "REGION": "us-central1",
        "SERVICE": service,
        "TAG": tag,
        "API_ENDPOINT": emu.url,
    }
    return subprocess.run(
        [sys.executable, "-c", _cleanup_script()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _deploy_preview(emu: Emulator, project: str, tmp_path: Path, service: str, number: int) -> None:
    inputs = {
        "service": service,
        "image": f"sample/hello:pr{number}",
        "project_id": project,
        "api_endpoint": emu.url,
        "steps": "0",
        "tag": f"pr-{number}",
        "suffix": f"pr{number}",
        "smoke_timeout": "10s",
    }
    result = harness.run(inputs, tmp_path=tmp_path / f"pr{number}")
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "deployed"


def _tags(api: Api, service: str) -> dict[str, dict[str, Any]]:
    return {t["tag"]: t for t in api.service(service)["spec"]["traffic"] if t.get("tag")}


def test_cleanup_removes_only_the_closed_prs_tag(emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emulator.url, project)
    api.create_service("previews", "sample/hello", "previews-base")
    _deploy_preview(emulator, project, tmp_path, "previews", 7)
    _deploy_preview(emulator, project, tmp_path, "previews", 8)
    before = api.service("previews")
    assert {"pr-7", "pr-8"} <= set(_tags(api, "previews"))

    result = run_cleanup(emulator, project, "previews", "pr-7")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Removed tag pr-7" in result.stdout
    after = api.service("previews")
    assert "pr-7" not in _tags(api, "previews") and "pr-8" in _tags(api, "previews")
    # Everything else is as it was: the other entries, the template (no new revision).
    expected = [t for t in before["spec"]["traffic"] if t.get("tag") != "pr-7"]
    assert after["spec"]["traffic"] == expected
    assert after["spec"]["template"] == before["spec"]["template"]
    assert sum(t.get("percent", 0) for t in after["spec"]["traffic"]) == 100
    api.wait_ready("previews")

    again = run_cleanup(emulator, project, "previews", "pr-7")
    assert again.returncode == 0 and "nothing to remove" in again.stdout
    missing = run_cleanup(emulator, project, "no-such-service", "pr-7")
    assert missing.returncode == 0 and "does not exist" in missing.stdout


def test_cleanup_rereads_after_a_conflict(own_emulator: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(own_emulator.url, project)
    api.create_service("previews", "sample/hello", "previews-base")
    _deploy_preview(own_emulator, project, tmp_path, "previews", 9)
    own_emulator.faults.add(method="PUT", path=r"/services/previews$", status=409, times=1)
    result = run_cleanup(own_emulator, project, "previews", "pr-9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reading it again" in result.stdout
    assert "pr-9" not in _tags(api, "previews")
    puts = [r for r in own_emulator.requests() if r["method"] == "PUT"]
    assert [r["status"] for r in puts[-2:]] == [409, 200]


def test_cleanup_refuses_a_tag_with_traffic_or_an_unfinished_rollout(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("pr-shared-svc", "sample/hello", "pr-shared-svc-base")
    # A tag that serves traffic is not a preview's: refuse.
    api.replace_service(
        "pr-shared-svc",
        "sample/hello:v2",
        "pr-shared-svc-two",
        [
            {"revisionName": "pr-shared-svc-base", "percent": 50},
            {"revisionName": "pr-shared-svc-two", "percent": 50, "tag": "pr-3"},
        ],
    )
    served = run_cleanup(emulator, project, "pr-shared-svc", "pr-3")
    assert served.returncode == 1 and "serves traffic" in served.stderr, served.stdout + served.stderr
    assert "pr-3" in _tags(api, "pr-shared-svc")
    # An unfinished rollout recorded on the service: its record would put the tag back; wait.
    svc = api.service("pr-shared-svc")
    svc["metadata"].setdefault("annotations", {})["run-canary.dev/rollout"] = json.dumps({"candidate": "x"})
    svc.pop("status", None)
    resp = requests.put(f"{api.ns}/services/pr-shared-svc", json=svc, timeout=10)
    assert resp.status_code == 200, resp.text
    busy = run_cleanup(emulator, project, "pr-shared-svc", "pr-3")
    assert busy.returncode == 1 and "unfinished" in busy.stderr, busy.stdout + busy.stderr
