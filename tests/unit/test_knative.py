"""The template we PUT is the current one plus the inputs, and nothing else changes."""

from __future__ import annotations

from typing import Any

from deployer import knative
from deployer.settings import Config, RevisionSettings, SecretRef, UpdateStrategy
from deployer.traffic import Target

CURRENT: dict[str, Any] = {
    "metadata": {"name": "svc-00001-abc", "annotations": {"autoscaling.knative.dev/maxScale": "100"}},
    "spec": {
        "containerConcurrency": 80,
        "containers": [
            {
                "image": "old:1",
                "env": [
                    {"name": "KEEP", "value": "1"},
                    {"name": "CHANGE", "value": "old"},
                    {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "1"}}},
                ],
                "ports": [{"name": "h2c", "containerPort": 8080}],
            }
        ],
    },
}


def test_new_template_merges_env_and_applies_settings() -> None:
    config = Config(
        service="svc",
        image="new:2",
        env_vars={"CHANGE": "new", "ADD": "a,b=c"},
        secrets={"API_KEY": SecretRef("api", "3")},
        revision=RevisionSettings(cpu="2", memory="1Gi", port=9000, min_instances=1, cpu_throttling=False),
    )
    tpl = knative.new_template(CURRENT, config, "svc-abc1234-1")
    container = tpl["spec"]["containers"][0]
    assert tpl["metadata"]["name"] == "svc-abc1234-1"
    assert container["image"] == "new:2"
    assert container["env"] == [
        {"name": "KEEP", "value": "1"},
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "1"}}},
        {"name": "CHANGE", "value": "new"},
        {"name": "ADD", "value": "a,b=c"},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "api", "key": "3"}}},
    ]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert container["ports"] == [{"name": "h2c", "containerPort": 9000}]
    assert tpl["metadata"]["annotations"] == {
        "autoscaling.knative.dev/maxScale": "100",
        "autoscaling.knative.dev/minScale": "1",
        "run.googleapis.com/cpu-throttling": "false",
        **knative.client_annotations(),
        knative.USER_IMAGE_ANNOTATION: "new:2",
    }
    assert tpl["spec"]["containerConcurrency"] == 80  # unset input: kept
    assert CURRENT["spec"]["containers"][0]["image"] == "old:1"  # the input object is untouched


def test_overwrite_strategies_drop_what_the_inputs_do_not_name() -> None:
    config = Config(
        service="svc",
        image="new:2",
        env_vars={"ONLY": "x"},
        env_vars_update_strategy=UpdateStrategy.OVERWRITE,
        secrets_update_strategy=UpdateStrategy.OVERWRITE,
    )
    env = knative.new_template(CURRENT, config, "svc-x")["spec"]["containers"][0]["env"]
    assert env == [{"name": "ONLY", "value": "x"}]


def test_same_inputs_give_the_same_template_so_the_revision_is_reused() -> None:
    config = Config(service="svc", image="old:1")
    ours = knative.new_template(CURRENT, config, "svc-00002-us")  # what our last deploy wrote
    assert knative.same_template(knative.new_template(ours, config, "svc-other-name"), ours)
    assert not knative.same_template(knative.new_template(ours, Config(service="svc", image="x"), "n"), ours)


def test_template_diff_never_shows_env_values() -> None:
    config = Config(service="svc", image="new:2", env_vars={"CHANGE": "s3cr3t-value"})
    diff = "\n".join(knative.template_diff(CURRENT, knative.new_template(CURRENT, config, "svc-2")))
    assert "s3cr3t-value" not in diff and "old" not in diff.replace("old:1", "")
    assert "+      value: (hidden, changed)" in diff
    assert "-    image: old:1" in diff and "+    image: new:2" in diff


def test_service_body_keeps_server_metadata_and_sets_ours() -> None:
    current = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": "svc",
            "resourceVersion": "rv-7",
            "annotations": {"serving.knative.dev/creator": "someone", "STALE": "x"},
            "labels": {"team": "a"},
        },
        "spec": {"template": CURRENT, "traffic": []},
        "status": {"url": "http://x"},
    }
    body = knative.service_body(
        current,
        Config(service="svc", image="new:2"),
        CURRENT,
        (Target("svc-00001-abc", 100),),
        labels={"managed-by": "github-actions"},
        annotations={"STALE": None, "run-canary.dev/rollout": "{}"},
    )
    assert "status" not in body
    assert body["metadata"]["resourceVersion"] == "rv-7"
    assert body["metadata"]["annotations"] == {
        "serving.knative.dev/creator": "someone",
        "run-canary.dev/rollout": "{}",
    }
    assert body["metadata"]["labels"] == {"team": "a", "managed-by": "github-actions"}
    assert body["spec"]["traffic"] == [{"revisionName": "svc-00001-abc", "percent": 100}]
