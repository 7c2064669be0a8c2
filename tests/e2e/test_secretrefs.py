"""Secrets of another project: an alias and the run.googleapis.com/secrets annotation, as gcloud writes
them; a same-project path shortened to the name; the emulator holding templates to the documented form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudrun_emulator import Emulator
from deployer import knative, secretrefs
from deployer.jobs import spec
from deployer.settings import Config, JobSettings, SecretRef
from devtools import harness
from tests.cloudrun import Api, error_of, service_body
from tests.config import cfg, problems
from tests.helpers import Jobs

FOREIGN = SecretRef("billing", "latest", "123456789")
ALIAS = secretrefs.key_ref_name(FOREIGN, {})


def test_inputs_keep_other_projects_by_number_and_shorten_their_own() -> None:
    loaded = cfg(
        project_id="my-project",
        secrets="A=projects/123456789/secrets/billing:3\nB=projects/my-project/secrets/own:latest\nC=plain",
    )
    assert loaded.secrets == {
        "A": SecretRef("billing", "3", "123456789"),
        "B": SecretRef("own", "latest"),
        "C": SecretRef("plain", "latest"),
    }
    jobs = cfg(
        project_id="my-project", pre_job="migrate", job_secrets="B=projects/my-project/secrets/own/versions/2"
    ).jobs
    assert jobs.secrets == {"B": SecretRef("own", "2")}


def test_the_inputs_description_shows_the_form_of_another_projects_secret() -> None:
    declared = harness.action_metadata()["inputs"]
    for name in ("secrets", "job_secrets"):
        described = " ".join(declared[name]["description"].split())
        assert "ENV=projects/NUMBER/secrets/NAME:VERSION" in described, name
        assert "an ID is refused" in described and "shortened to the name" in described, name


def test_another_project_by_id_is_refused_with_the_way_to_its_number() -> None:
    (message,) = problems(project_id="my-project", secrets="DB=projects/other-project/secrets/db:latest")
    assert message.startswith("input 'secrets': DB: the secret is in project 'other-project'")
    assert "projects/PROJECT_NUMBER/secrets/db:latest" in message
    assert "gcloud projects describe other-project" in message
    assert "p1" in problems(secrets="X=projects/p1/secrets/billing:latest")[0]


def test_template_gets_an_alias_and_the_annotation_and_reuses_it() -> None:
    config = Config(
        service="web", image="sample/hello", secrets={"DB": FOREIGN, "KEY": SecretRef("key", "2")}
    )
    tpl = knative.new_template(None, config, "web-1")
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in tpl["spec"]["containers"][0]["env"]}
    assert env == {"DB": {"name": ALIAS, "key": "latest"}, "KEY": {"name": "key", "key": "2"}}
    annotations = tpl["metadata"]["annotations"]
    assert annotations[secretrefs.ANNOTATION] == f"{ALIAS}:projects/123456789/secrets/billing"
    again = knative.new_template(tpl, config, "web-2")  # same alias, same template: the revision is reused
    assert knative.same_template(tpl, again)
    gcloud_made = {
        **tpl,
        "metadata": {"annotations": {secretrefs.ANNOTATION: "billi-1b2c:projects/123456789/secrets/billing"}},
    }
    reused = knative.new_template(gcloud_made, config, "web-3")
    assert reused["spec"]["containers"][0]["env"][-2]["valueFrom"]["secretKeyRef"]["name"] == "billi-1b2c"


def test_unused_aliases_are_pruned_as_gcloud_does() -> None:
    base = {
        "metadata": {
            "annotations": {secretrefs.ANNOTATION: "old-1:projects/1/secrets/old,keep:projects/2/secrets/k"}
        },
        "spec": {
            "containers": [
                {
                    "image": "x",
                    "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "keep", "key": "1"}}}],
                }
            ]
        },
    }
    tpl = knative.new_template(base, Config(service="web"), "web-1")
    assert tpl["metadata"]["annotations"][secretrefs.ANNOTATION] == "keep:projects/2/secrets/k"


def test_job_body_puts_the_alias_on_the_execution_template() -> None:
    body = spec.job_body(
        None, "migrate", JobSettings(secrets={"DB": FOREIGN}), "sample/job", labels={}, annotations={}
    )
    execution = body["spec"]["template"]
    assert execution["metadata"]["annotations"] == {
        secretrefs.ANNOTATION: f"{ALIAS}:projects/123456789/secrets/billing"
    }
    (env,) = execution["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": ALIAS, "key": "latest"}


def _with_secret(name: str, annotation: str | None = None) -> dict[str, Any]:
    body = service_body("web", "sample/hello")
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": name, "key": "latest"}}}
    ]
    if annotation is not None:
        body["spec"]["template"]["metadata"] = {"annotations": {secretrefs.ANNOTATION: annotation}}
    return body


@pytest.mark.parametrize(
    ("name", "annotation", "field"),
    [
        (
            "projects/123/secrets/db",
            None,
            "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name",
        ),
        (
            "db",
            "db:projects/my-project/secrets/db",
            f"spec.template.metadata.annotations[{secretrefs.ANNOTATION}]",
        ),
        ("db", "db=projects/1/secrets/db", f"spec.template.metadata.annotations[{secretrefs.ANNOTATION}]"),
    ],
)
def test_emulator_refuses_what_cloud_run_documents_as_invalid(
    emulator: Emulator, project: str, name: str, annotation: str | None, field: str
) -> None:
    response = Api(emulator.url, project).create(_with_secret(name, annotation))
    assert response.status_code == 400, response.text
    assert field in [v["field"] for v in error_of(response)["details"][0]["fieldViolations"]]


def test_action_deploys_a_secret_of_another_project_and_the_revision_gets_it(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emulator.url, project)
    api.create_service("vault", "sample/hello", "vault-v1")
    inputs = {
        "api_endpoint": emulator.url,
        "project_id": project,
        "service": "vault",
        "image": "sample/hello:v2",
        "steps": "100",
        "wait_timeout": "30s",
        "secrets": f"DB=projects/123456789/secrets/billing:latest\nOWN=projects/{project}/secrets/own:2",
    }
    result = harness.run(inputs, tmp_path=tmp_path)
    assert result.returncode == 0, result.log
    template = api.service("vault")["spec"]["template"]
    env = {
        e["name"]: e.get("valueFrom", {}).get("secretKeyRef")
        for e in template["spec"]["containers"][0]["env"]
    }
    assert env["OWN"] == {"name": "own", "key": "2"}
    assert env["DB"] == {"name": ALIAS, "key": "latest"}
    assert (
        template["metadata"]["annotations"][secretrefs.ANNOTATION]
        == f"{ALIAS}:projects/123456789/secrets/billing"
    )
    served = requests.get(result.outputs["url"], timeout=10).json()["env"]  # aliases resolved
    assert (served["DB"], served["OWN"]) == (
        "secret:projects/123456789/secrets/billing:latest",
        "secret:own:2",
    )


def test_action_runs_a_job_with_a_secret_of_another_project_and_the_task_gets_it(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    value = "secret:projects/123456789/secrets/billing:latest"  # what the emulator resolves it to
    inputs = {
        "api_endpoint": emulator.url,
        "project_id": project,
        "mode": "job",
        "job": "settle",
        "image": "sample/job",
        "job_max_retries": "0",
        "job_secrets": "DB=projects/123456789/secrets/billing:latest",
        "job_command": json.dumps(["/bin/sh", "-c", f'test "$DB" = "{value}"']),  # exits 1 otherwise
    }
    result = harness.run(inputs, tmp_path=tmp_path, timeout=60)
    assert result.returncode == 0, result.log
    assert result.outputs["job_result"] == "succeeded"
    job = Jobs(emulator.url, project).job("settle")
    execution = job["spec"]["template"]
    (env,) = [e for e in execution["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "DB"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": ALIAS, "key": "latest"}
    assert (
        execution["metadata"]["annotations"][secretrefs.ANNOTATION]
        == f"{ALIAS}:projects/123456789/secrets/billing"
    )
