"""Knative ``serving.knative.dev/v1`` objects as Cloud Run serves them: conditions, the revision
template we build from the inputs, traffic blocks and annotations. Pure."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from deployer import traffic
from deployer.settings import Config, RevisionSettings, UpdateStrategy
from deployer.traffic import Traffic

Obj = dict[str, Any]

CLIENT_NAME = "run-canary"
# Set by the server; a PUT must carry them unchanged.
IMMUTABLE_PREFIX = "serving.knative.dev/"


@dataclass(frozen=True)
class StatusCondition:
    """One condition of a Knative object's ``status`` as the action reads it (Ready, RoutesReady...)."""

    type: str
    status: str = "Unknown"  # True | False | Unknown
    reason: str = ""
    message: str = ""

    def describe(self) -> str:
        text = f"{self.type}={self.status}"
        if self.reason:
            text += f" ({self.reason})"
        return text + (f": {self.message}" if self.message else "")


def condition(obj: Obj | None, kind: str) -> StatusCondition:
    """The condition ``kind`` of an object's status (Unknown when absent)."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return StatusCondition(
                kind, c.get("status", "Unknown"), c.get("reason", ""), c.get("message", "")
            )
    return StatusCondition(kind)


def is_fresh(service: Obj, generation: int) -> bool:
    """Whether the status describes (at least) ``generation``: before that, conditions are stale."""
    return int((service.get("status") or {}).get("observedGeneration") or 0) >= generation


def generation(obj: Obj) -> int:
    return int(obj.get("metadata", {}).get("generation") or 0)


def status_traffic(service: Obj) -> Traffic:
    """The resolved traffic (every entry names a revision; tagged ones carry their URL)."""
    entries = (service.get("status") or {}).get("traffic")
    return traffic.from_spec(entries) if entries else ()


def spec_traffic(service: Obj) -> Traffic:
    return traffic.from_spec((service.get("spec") or {}).get("traffic"))


def service_url(service: Obj) -> str | None:
    """The service URL (``status.url``), never a tag URL."""
    return (service.get("status") or {}).get("url")


def tag_url(service: Obj, tag: str) -> str | None:
    """URL of ``tag`` as the server resolved it (never built by hand)."""
    return next((t.url for t in status_traffic(service) if t.tag == tag and t.url), None)


def template_name(service: Obj) -> str | None:
    return ((service.get("spec") or {}).get("template") or {}).get("metadata", {}).get("name")


# --- building the new template ---------------------------------------------------------------


def new_template(base: Obj | None, config: Config, revision_name: str) -> Obj:
    """The revision template: ``base`` (current service, or the metadata file) plus every input."""
    tpl = copy.deepcopy(base or {})
    meta = tpl.setdefault("metadata", {})
    meta["name"] = revision_name
    spec = tpl.setdefault("spec", {})
    containers = spec.setdefault("containers", [{}])
    if not containers:
        containers.append({})
    container = containers[0]
    if config.image:
        container["image"] = config.image
    container["env"] = _env(container.get("env") or [], config)
    if not container["env"]:
        del container["env"]
    _apply_revision_settings(tpl, config.revision)
    return tpl


def _env(current: list[Obj], config: Config) -> list[Obj]:
    """Merge or overwrite literal env vars and secret references, as the two strategies say."""
    keep = [
        e
        for e in current
        if not (
            ("valueFrom" in e and config.secrets_update_strategy is UpdateStrategy.OVERWRITE)
            or ("valueFrom" not in e and config.env_vars_update_strategy is UpdateStrategy.OVERWRITE)
        )
    ]
    ours = {**config.env_vars, **config.secrets}
    out = [e for e in keep if e.get("name") not in ours]
    out += [{"name": k, "value": v} for k, v in config.env_vars.items()]
    out += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.version}}}
        for k, ref in config.secrets.items()
    ]
    return out


def _apply_revision_settings(tpl: Obj, rs: RevisionSettings) -> None:
    spec = tpl["spec"]
    container = spec["containers"][0]
    annotations = tpl["metadata"].setdefault("annotations", {})
    limits = {"cpu": rs.cpu, "memory": rs.memory}
    for key, value in limits.items():
        if value is not None:
            container.setdefault("resources", {}).setdefault("limits", {})[key] = value
    if rs.port is not None:
        name = ((container.get("ports") or [{}])[0]).get("name") or "http1"
        container["ports"] = [{"name": name, "containerPort": rs.port}]
    if rs.concurrency is not None:
        spec["containerConcurrency"] = rs.concurrency
    if rs.request_timeout is not None:
        spec["timeoutSeconds"] = rs.request_timeout
    if rs.service_account is not None:
        spec["serviceAccountName"] = rs.service_account
    revision_annotations: dict[str, object] = {
        "autoscaling.knative.dev/minScale": rs.min_instances,
        "autoscaling.knative.dev/maxScale": rs.max_instances,
        "run.googleapis.com/cpu-throttling": None
        if rs.cpu_throttling is None
        else str(rs.cpu_throttling).lower(),
        "run.googleapis.com/execution-environment": rs.execution_environment,
        "run.googleapis.com/vpc-access-connector": rs.vpc_connector,
        "run.googleapis.com/vpc-access-egress": rs.vpc_egress,
    }
    for key, setting in revision_annotations.items():
        if setting is not None:
            annotations[key] = str(setting)
    if not annotations:
        del tpl["metadata"]["annotations"]


def same_template(a: Obj | None, b: Obj | None) -> bool:
    """Whether two templates would make the same revision (the revision name aside)."""
    return _unnamed(a) == _unnamed(b)


def _unnamed(tpl: Obj | None) -> Obj:
    out = copy.deepcopy(tpl or {})
    out.get("metadata", {}).pop("name", None)
    return out


def template_diff(old: Obj | None, new: Obj) -> list[str]:
    """A unified diff of two templates as YAML, for the dry-run plan; env values are never shown."""
    old_values = _env_values(old)
    a = yaml.safe_dump(_redacted(old, {}), sort_keys=True).splitlines()
    b = yaml.safe_dump(_redacted(new, old_values), sort_keys=True).splitlines()
    return list(difflib.unified_diff(a, b, "current", "new", lineterm=""))


def _env_values(tpl: Obj | None) -> dict[str, str]:
    containers = ((tpl or {}).get("spec") or {}).get("containers") or []
    return {e.get("name", ""): e["value"] for c in containers for e in c.get("env") or [] if "value" in e}


def _redacted(tpl: Obj | None, before: Mapping[str, str]) -> Obj:
    """``tpl`` with env values replaced: they may come from GitHub secrets, and plans are printed."""
    out = copy.deepcopy(tpl or {})
    for container in (out.get("spec") or {}).get("containers") or []:
        for entry in container.get("env") or []:
            if "value" in entry:
                same = before.get(entry.get("name", "")) == entry["value"]
                entry["value"] = "(hidden)" if same or not before else "(hidden, changed)"
    return out


def service_body(
    current: Obj | None,
    config: Config,
    template: Obj,
    new_traffic: Traffic,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str | None],
) -> Obj:
    """The Service to PUT (or POST): current metadata kept, spec replaced, our labels and annotations set."""
    base = current or config.metadata or {}
    meta_src = base.get("metadata") or {}
    meta: Obj = {
        k: copy.deepcopy(v)
        for k, v in meta_src.items()
        if k in ("name", "namespace", "labels", "annotations", "resourceVersion", "uid", "generation")
    }
    meta["name"] = config.service
    meta.setdefault("labels", {}).update(labels)
    meta_annotations = meta.setdefault("annotations", {})
    if current is None:  # the metadata file may carry server-owned annotations from an export
        for key in [k for k in meta_annotations if k.startswith(IMMUTABLE_PREFIX)]:
            del meta_annotations[key]
    _apply(meta_annotations, annotations)
    if config.revision.ingress is not None:
        meta_annotations["run.googleapis.com/ingress"] = config.revision.ingress
    for key in ("labels", "annotations"):
        if not meta[key]:
            del meta[key]
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"template": template, "traffic": traffic.to_spec(new_traffic)},
    }


def with_traffic(current: Obj, new_traffic: Traffic, annotations: Mapping[str, str | None]) -> Obj:
    """``current`` with only its traffic block and our annotations changed (steps and rollbacks)."""
    body: Obj = {
        k: copy.deepcopy(current[k]) for k in ("apiVersion", "kind", "metadata", "spec") if k in current
    }
    body["spec"]["traffic"] = traffic.to_spec(new_traffic)
    meta_annotations = body["metadata"].setdefault("annotations", {})
    _apply(meta_annotations, annotations)
    return body


def _apply(target: dict[str, str], annotations: Mapping[str, str | None]) -> None:
    """Set each annotation, or remove it where the value is None."""
    for key, value in annotations.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def annotation(service: Obj | None, key: str) -> str | None:
    return (((service or {}).get("metadata") or {}).get("annotations") or {}).get(key)
