"""Revisions: one immutable template each, why it cannot start (probes), its env, conditions and wire form."""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudrun_emulator import secretrefs
from cloudrun_emulator.conditions import StoredCondition
from cloudrun_emulator.defaults import ingress_container
from cloudrun_emulator.projects import DEFAULT_REGION, LOCATION_LABEL, scope_project
from cloudrun_emulator.services import IMMUTABLE_ANNOTATIONS, PRINCIPAL, SERVICE_LABEL, Service
from cloudrun_emulator.wire import API_VERSION, NS_PREFIX, now_iso, prune


@dataclass
class Revision:
    """One immutable revision and its readiness."""

    namespace: str
    name: str
    service: str
    generation: int
    template: dict[str, Any]
    seq: int
    created_at: float
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)
    resource_version: str = ""
    ready: StoredCondition = field(default_factory=lambda: StoredCondition("Ready"))


PROBE_ACTIONS = ("tcpSocket", "httpGet", "grpc")


LISTEN_FAILED = (
    "The user-provided container failed to start and listen on the port defined provided by the "
    "PORT={port} environment variable within the allocated timeout. This can happen when the container "
    "port is misconfigured or if the timeout is too short. The health check timeout can be extended. "
    "Logs for this revision might contain more information."
)


PROBE_FAILED = (
    "The user-provided container failed the configured {kind} probe checks. "
    "Logs for this revision might contain more information."
)


def probe_problem(template: Mapping[str, Any]) -> str | None:
    """Why the ingress container's startup or liveness probe can never pass, in Cloud Run's words.

    The container listens on its ``containerPort`` (the PORT it is given); a probe aimed at any other
    port finds nothing listening there. A probe action without a port checks the container port.
    """
    container = ingress_container(template)
    port = ((container.get("ports") or [{}])[0]).get("containerPort", 8080)
    for kind in ("startupProbe", "livenessProbe"):
        probe = container.get(kind) or {}
        for action in PROBE_ACTIONS:
            target = probe.get(action)
            if isinstance(target, dict) and target.get("port", port) != port:
                if kind == "startupProbe" and action == "tcpSocket":
                    return LISTEN_FAILED.format(port=port)
                return PROBE_FAILED.format(kind=kind.removesuffix("Probe"))
    return None


def revision_env(
    container: Mapping[str, Any], annotations: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Env for the data plane: literal values (the last of a name wins), secrets as
    ``secret:<name>:<key>``, an alias of the ``run.googleapis.com/secrets`` annotation resolved."""
    env = {}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        env[var["name"]] = (
            f"secret:{secretrefs.resolve(ref.get('name', ''), annotations or {})}:{ref.get('key', '')}"
            if ref
            else var.get("value", "")
        )
    return env


def revision_conditions(ready: StoredCondition, serving: bool) -> list[dict[str, Any]]:
    """Ready plus the sub-conditions Cloud Run shows, consistent with Ready."""
    missing = ready.reason == "ContainerMissing"
    resources = StoredCondition("ResourcesAvailable")
    health = StoredCondition("ContainerHealthy")
    if ready.status == "True":
        resources.set("True")
        health.set("True")
    elif ready.status == "False":
        (resources if missing else health).set("False", ready.reason, ready.message)
        if not missing:
            resources.set("True")
    active = StoredCondition("Active")
    if serving:
        active.set("True")
    else:
        active.set("False", "Reserve", "Revision is not receiving traffic.")
    for condition in (resources, health, active):
        condition.last_transition = ready.last_transition
    return [ready.to_json(), resources.to_json(), health.to_json(), active.to_json()]


def image_digest(image: str) -> str:
    """A stable fake digest: the same reference always resolves the same way."""
    if "@sha256:" in image:
        return image
    base = image.split("@", 1)[0]
    colon = base.rfind(":")
    if colon > base.rfind("/"):
        base = base[:colon]
    return f"{base}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def log_url(revision: Revision) -> str:
    """Where Cloud Run would point for the revision's logs."""
    return (
        "https://console.cloud.google.com/logs/viewer?project="
        f"{scope_project(revision.namespace)}&resource=cloud_run_revision/service_name/{revision.service}"
        f"/revision_name/{revision.name}"
    )


def render_revision(revision: Revision, service: Service | None) -> dict[str, Any]:
    """The Revision object on the wire, with its four conditions (``service``: its parent, if any)."""
    template = revision.template
    meta = template.get("metadata", {})
    labels = {
        **meta.get("labels", {}),
        LOCATION_LABEL: service.region if service else DEFAULT_REGION,
        SERVICE_LABEL: revision.service,
        "serving.knative.dev/configuration": revision.service,
        "serving.knative.dev/configurationGeneration": str(revision.generation),
    }
    serving = service is not None and revision.name in {t["revisionName"] for t in service.traffic}
    container = ingress_container(template)
    return prune(
        {
            "apiVersion": API_VERSION,
            "kind": "Revision",
            "metadata": {
                "name": revision.name,
                "namespace": scope_project(revision.namespace),
                "selfLink": f"{NS_PREFIX}/{scope_project(revision.namespace)}/revisions/{revision.name}",
                "uid": revision.uid,
                "resourceVersion": revision.resource_version,
                "generation": 1,
                "creationTimestamp": revision.created,
                "labels": labels,
                "annotations": {**meta.get("annotations", {}), IMMUTABLE_ANNOTATIONS[0]: PRINCIPAL},
                "ownerReferences": [
                    {
                        "kind": "Configuration",
                        "name": revision.service,
                        "apiVersion": API_VERSION,
                        "uid": service.uid if service else None,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": {
                "observedGeneration": 1,
                "conditions": revision_conditions(revision.ready, serving),
                "imageDigest": image_digest(container["image"]),
                "containerStatuses": [
                    {"name": c.get("name", ""), "imageDigest": image_digest(c["image"])}
                    for c in template["spec"].get("containers", [])
                ],
                "logUrl": log_url(revision),
                "serviceName": revision.service,
            },
        }
    )
