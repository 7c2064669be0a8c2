"""The discovery-document walker and Cloud Run's semantic rules, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudrun_emulator.schema import SchemaError, check_service, check_traffic, load_document, validate


def errors(body: Any, schema: str = "Service", root: str = "service") -> list[str]:
    """Descriptions of every violation (empty when the body is valid)."""
    try:
        validate(body, schema, root)
    except SchemaError as exc:
        return [v.description for v in exc.violations]
    return []


def test_document_comes_from_the_installed_client() -> None:
    document = load_document()
    assert document["name"] == "run" and document["version"] == "v1"
    assert "Service" in document["schemas"]


def test_unknown_names_at_every_depth() -> None:
    assert errors({"x": 1}) == [
        "Invalid JSON payload received. Unknown name \"x\" at 'service': Cannot find field."
    ]
    body = {"spec": {"template": {"spec": {"containers": [{"image": "a"}, {"img": "b"}]}}}}
    assert errors(body) == [
        'Invalid JSON payload received. Unknown name "img" at '
        "'service.spec.template.spec.containers[1]': Cannot find field."
    ]


def test_top_level_unknown_without_root() -> None:
    assert errors({"x": 1}, "SetIamPolicyRequest", "") == [
        'Invalid JSON payload received. Unknown name "x": Cannot find field.'
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"metadata": {"generation": "abc"}},
            "Invalid value at 'service.metadata.generation' (TYPE_INT32), \"abc\"",
        ),
        (
            {"metadata": {"generation": 2**31}},
            "Invalid value at 'service.metadata.generation' (TYPE_INT32), 2147483648",
        ),
        ({"metadata": {"name": 5}}, "Invalid value at 'service.metadata.name' (TYPE_STRING), 5"),
        (
            {"metadata": {"labels": {"a": True}}},
            "Invalid value at 'service.metadata.labels[a]' (TYPE_STRING), true",
        ),
        (
            {"metadata": "x"},
            "Invalid value at 'service.metadata' (type.googleapis.com/google.cloud.run.v1.ObjectMeta), \"x\"",
        ),
        (
            {"spec": {"traffic": [{"latestRevision": "yes"}]}},
            "Invalid value at 'service.spec.traffic[0].latestRevision' (TYPE_BOOL), \"yes\"",
        ),
    ],
)
def test_type_errors(body: dict[str, Any], message: str) -> None:
    assert errors(body) == [message]


def test_proto3_leniency_is_normalised() -> None:
    body = {"metadata": {"generation": "7", "name": None}, "spec": {"traffic": [{"percent": 50.0}]}}
    assert validate(body, "Service", "service") == {
        "metadata": {"generation": 7},
        "spec": {"traffic": [{"percent": 50}]},
    }


def test_all_violations_are_reported_together() -> None:
    assert len(errors({"a": 1, "spec": {"b": 2, "traffic": [{"percent": "x"}]}})) == 3


@given(st.integers())
def test_int32_bounds(value: int) -> None:
    ok = -(2**31) <= value < 2**31
    assert (errors({"spec": {"traffic": [{"percent": value}]}}) == []) == ok


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_string_maps_take_any_key(labels: dict[str, str]) -> None:
    assert errors({"metadata": {"labels": labels, "annotations": labels}}) == []


def fields(problems: list[Any]) -> list[str]:
    return [p.field for p in problems]


def test_traffic_semantics() -> None:
    assert check_traffic([{"latestRevision": True, "percent": 100}], "svc") == []
    assert fields(check_traffic([{"revisionName": "svc-a", "percent": 60}], "svc")) == ["spec.traffic"]
    assert fields(check_traffic([{"percent": 100}], "svc")) == ["spec.traffic[0]"]
    pair: list[dict[str, Any]] = [
        {"latestRevision": True, "percent": 100, "tag": "a"},
        {"revisionName": "svc-a", "tag": "a"},
    ]
    assert fields(check_traffic(pair, "svc")) == ["spec.traffic[1].tag"]


@given(st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=5))
def test_percent_sum_must_be_100(percents: list[int]) -> None:
    traffic = [{"revisionName": f"svc-{i}", "percent": p} for i, p in enumerate(percents)]
    assert (check_traffic(traffic, "svc") == []) == (sum(percents) == 100)


def test_service_semantics() -> None:
    good = {"metadata": {"name": "svc"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}
    assert check_service(good, "svc") == []
    bad = {
        "metadata": {"name": "svc", "annotations": {"run.googleapis.com/ingress": "everyone"}},
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/maxScale": "ten"}},
                "spec": {
                    "timeoutSeconds": 4000,
                    "containers": [{"image": "a", "ports": [{"containerPort": 0}]}],
                },
            }
        },
    }
    assert fields(check_service(bad, "svc")) == [
        "metadata.annotations[run.googleapis.com/ingress]",
        "spec.template.metadata.annotations[autoscaling.knative.dev/maxScale]",
        "spec.template.spec.timeoutSeconds",
        "spec.template.spec.containers[0].ports[0].containerPort",
    ]
