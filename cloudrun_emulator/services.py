"""Services: what the user wrote plus what the control plane made of it, and their wire form (with the
Route and Configuration Knative derives from each)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from cloudrun_emulator.conditions import StoredCondition
from cloudrun_emulator.iam import new_etag
from cloudrun_emulator.projects import DEFAULT_REGION, same_project, scope_project
from cloudrun_emulator.schema import Violation
from cloudrun_emulator.wire import API_VERSION, NS_PREFIX, now_iso, prune

PRINCIPAL = "user@emulator.local"


IMMUTABLE_ANNOTATIONS = ("serving.knative.dev/creator", "serving.knative.dev/lastModifier")


SERVICE_LABEL = "serving.knative.dev/service"


CONDITION_TYPES = ("Ready", "ConfigurationsReady", "RoutesReady")


@dataclass
class Service:
    """A service: what the user wrote plus what the control plane has made of it."""

    namespace: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]
    seq: int
    region: str = DEFAULT_REGION
    generation: int = 1
    observed_generation: int = 0
    changed_at: float = 0.0
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)
    resource_version: str = ""
    latest_created: str | None = None
    latest_ready: str | None = None  # moves forward only, or back to an explicitly named revision
    conditions: dict[str, StoredCondition] = field(
        default_factory=lambda: {t: StoredCondition(t) for t in CONDITION_TYPES}
    )
    traffic: list[dict[str, Any]] = field(default_factory=list)
    routed: tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]] | None = None
    url: str | None = None
    tag_urls: dict[str, str] = field(default_factory=dict)
    tags_born: dict[str, int] = field(default_factory=dict)  # tag -> creation order (quotas.tag_cleanup)
    policy: dict[str, Any] = field(default_factory=lambda: {"version": 1, "bindings": []})
    etag: str = field(default_factory=lambda: new_etag())


@dataclass
class Change:
    """What a create or replace will do, worked out before anything is written."""

    service: Service
    new_revision: str | None
    template_changed: bool
    bumped: bool
    reused: str | None = None  # an existing revision the template names (a "BYO name" rollback)


def check_namespace(ns: str, body: dict[str, Any]) -> list[Violation]:
    """metadata.namespace, when given, must be the one in the URL."""
    given = body.get("metadata", {}).get("namespace")
    if given and not same_project(given, ns):
        text = f"metadata.namespace: '{given}' does not match the project in the URL"
        return [Violation("metadata.namespace", text)]
    return []


def check_annotations(body: dict[str, Any], current: Service | None) -> list[Violation]:
    """serving.knative.dev/creator and lastModifier belong to the server."""
    given = body.get("metadata", {}).get("annotations", {})
    problems = []
    for key in IMMUTABLE_ANNOTATIONS:
        expected = current.annotations.get(key) if current else None
        value = given.get(key)
        if (current is None and value not in (None, PRINCIPAL)) or (current and value != expected):
            field_name = f"metadata.annotations[{key}]"
            text = f"{field_name}: annotation value is immutable (expected {expected!r}, got {value!r})"
            problems.append(Violation(field_name, text))
    return problems


def metadata(service: Service, kind: str) -> dict[str, Any]:
    """Object metadata shared by the service and its route/configuration views."""
    return {
        "name": service.name,
        "namespace": scope_project(service.namespace),
        "selfLink": f"{NS_PREFIX}/{scope_project(service.namespace)}/{kind}/{service.name}",
        "uid": service.uid,
        "resourceVersion": service.resource_version,
        "generation": service.generation,
        "creationTimestamp": service.created,
        "labels": dict(service.labels),
        "annotations": dict(service.annotations),
    }


def render_service(service: Service, latest_ready: str | None) -> dict[str, Any]:
    """The Service object on the wire (``latest_ready``: Knative's latestReadyRevisionName)."""
    status = {
        "observedGeneration": service.observed_generation,
        "conditions": [c.to_json() for c in service.conditions.values()],
        "latestCreatedRevisionName": service.latest_created,
        "latestReadyRevisionName": latest_ready,
        "url": service.url,
        "address": {"url": service.url},
        "traffic": copy.deepcopy(service.traffic),
    }
    return prune(
        {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": metadata(service, "services"),
            "spec": copy.deepcopy(service.spec),
            "status": status,
        }
    )


def render_view(service: Service, kind: str, latest_ready: str | None) -> dict[str, Any]:
    """The Route or Configuration Knative derives from a Service."""
    meta = metadata(service, kind)
    meta["labels"] = {**service.labels, SERVICE_LABEL: service.name}
    if kind == "routes":
        condition = service.conditions["RoutesReady"]
        spec: dict[str, Any] = {"traffic": copy.deepcopy(service.spec["traffic"])}
        status: dict[str, Any] = {
            "traffic": copy.deepcopy(service.traffic),
            "url": service.url,
            "address": {"url": service.url},
        }
    else:
        condition = service.conditions["ConfigurationsReady"]
        spec = {"template": copy.deepcopy(service.spec["template"])}
        status = {
            "latestCreatedRevisionName": service.latest_created,
            "latestReadyRevisionName": latest_ready,
        }
    ready = {**condition.to_json(), "type": "Ready"}
    status.update({"observedGeneration": service.observed_generation, "conditions": [ready]})
    kind_name = "Route" if kind == "routes" else "Configuration"
    return prune(
        {"apiVersion": API_VERSION, "kind": kind_name, "metadata": meta, "spec": spec, "status": status}
    )
