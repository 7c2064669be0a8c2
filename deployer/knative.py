"""Knative ``serving.knative.dev/v1`` objects as Cloud Run serves them: conditions, the revision
template we build from the inputs, traffic blocks and annotations. Pure."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from deployer import secretrefs, traffic
from deployer.errors import TemplateError as TemplateError
from deployer.settings import Config, RevisionSettings, RunContext, UpdateStrategy
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
    """Whether the status describes (at least) ``generation``: before that, conditions are stale.

    An absent ``observedGeneration`` counts as fresh, as gcloud reads it (``api_lib/run/condition.py``,
    ``Conditions.__init__``: fresh when ``observed_generation is None`` or equal to the generation).
    """
    observed = (service.get("status") or {}).get("observedGeneration")
    return observed is None or int(observed) >= generation


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
    """The revision template: ``base`` (current service, or the metadata file) plus every input.

    Image, env, resources and port go to the target container (``container`` input, else the ingress
    container); sidecars are left as they are. Raises TemplateError when that container is not there.
    """
    tpl = copy.deepcopy(base or {})
    meta = tpl.setdefault("metadata", {})
    meta["name"] = revision_name
    spec = tpl.setdefault("spec", {})
    containers = spec.setdefault("containers", [{}])
    if not containers:
        containers.append({})
    container = target_container(containers, config.container)
    if config.image:
        container["image"] = config.image
    aliases = secretrefs.parse_annotation((meta.get("annotations") or {}).get(secretrefs.ANNOTATION))
    container["env"] = _env(container.get("env") or [], config, aliases)
    if not container["env"]:
        del container["env"]
    secretrefs.set_annotation(meta, aliases, secretrefs.in_use(spec))
    _apply_revision_settings(tpl, container, config.revision)
    _client_annotations(tpl, container)
    return tpl


def _names(containers: list[Obj]) -> str:
    return ", ".join(repr(c.get("name") or "(unnamed)") for c in containers)


def target_container(containers: list[Obj], name: str | None = None) -> Obj:
    """The container the inputs apply to: the one named ``name``, else the ingress container.

    As gcloud's ``container`` property: a lone container is it; among several, the ingress container
    is the one that declares ``ports`` (it need not be first).
    """
    if name:
        found = next((c for c in containers if c.get("name") == name), None)
        if found is None:
            raise TemplateError(
                f"input container: no container named {name!r}; the service has {_names(containers)}"
            )
        return found
    if len(containers) == 1:
        (only,) = containers  # a lone container is the one, as in gcloud
        return only
    ingress = [c for c in containers if c.get("ports")]
    if len(ingress) != 1:
        raise TemplateError(
            f"the service has {len(containers)} containers ({_names(containers)}) and "
            f"{len(ingress)} of them declare ports; exactly one (the ingress container) must, "
            "or name the one to deploy with the input container"
        )
    return ingress[0]


def _env(current: list[Obj], config: Config, aliases: dict[str, str]) -> list[Obj]:
    """Merge or overwrite literal env vars and secret references, as the two strategies say; a secret
    of another project goes by an alias (added to ``aliases``: the template's secrets annotation)."""
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
    out += [secretrefs.env_entry(k, ref, aliases) for k, ref in config.secrets.items()]
    return out


def _apply_revision_settings(tpl: Obj, container: Obj, rs: RevisionSettings) -> None:
    spec = tpl["spec"]
    annotations = tpl["metadata"].setdefault("annotations", {})
    limits = {"cpu": rs.cpu, "memory": rs.memory}
    for key, value in limits.items():
        if value is not None:
            container.setdefault("resources", {}).setdefault("limits", {})[key] = value
    if rs.port is not None:
        set_port(container, rs.port)
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


DEFAULT_PORT = 8080  # what Cloud Run uses when ports[0].containerPort is unset
PROBES = ("startupProbe", "livenessProbe")
PROBE_ACTIONS = ("tcpSocket", "httpGet", "grpc")


def set_port(container: Obj, port: int) -> None:
    """Set the container port and move the probes that pointed at the old one along with it.

    Cloud Run stores a default TCP startup probe on the container port in every template; a probe
    left on the old port fails the new revision (HealthCheckContainerError). gcloud moves the TCP
    startup probe (``ContainerPortChange``); we move every startup and liveness probe action
    (tcpSocket, httpGet, grpc) whose port was the old container port. Probes on other ports (a
    separate health port) and probes without a port (they follow the container port) are kept.
    """
    ports = container.get("ports") or [{}]
    old = ports[0].get("containerPort") or DEFAULT_PORT
    name = ports[0].get("name") or "http1"
    container["ports"] = [{"name": name, "containerPort": port}]
    for probe_name in PROBES:
        probe = container.get(probe_name) or {}
        for action in PROBE_ACTIONS:
            target = probe.get(action)
            if isinstance(target, dict) and target.get("port") == old:
                target["port"] = port


USER_IMAGE_ANNOTATION = "client.knative.dev/user-image"
CLIENT_NAME_ANNOTATION = "run.googleapis.com/client-name"
CLIENT_VERSION_ANNOTATION = "run.googleapis.com/client-version"


def client_annotations() -> dict[str, str]:
    """Who wrote the object: us (gcloud writes its own name and version the same way)."""
    from deployer import __version__

    return {CLIENT_NAME_ANNOTATION: CLIENT_NAME, CLIENT_VERSION_ANNOTATION: __version__}


def _client_annotations(tpl: Obj, container: Obj) -> None:
    """Our client name and version on the template (as gcloud sets its own there), and the image
    the user asked for: values an earlier gcloud deploy left must not be copied onto our revision."""
    annotations = tpl["metadata"].setdefault("annotations", {})
    annotations.update(client_annotations())
    if container.get("image"):
        annotations[USER_IMAGE_ANNOTATION] = container["image"]


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
    namespace: str = "",
) -> Obj:
    """The Service to PUT (or POST): current metadata kept, spec replaced, our labels and annotations set.

    ``namespace`` (the project) is set on a create, where Cloud Run requires it; a PUT keeps the
    server's own. A metadata file is first stripped of what ``--format export`` strips.
    """
    base = current or exported(config.metadata) or {}
    meta_src = base.get("metadata") or {}
    meta: Obj = {
        k: copy.deepcopy(v)
        for k, v in meta_src.items()
        if k in ("name", "namespace", "labels", "annotations", "resourceVersion", "uid", "generation")
    }
    meta["name"] = config.service
    if namespace:
        meta["namespace"] = namespace
    meta.setdefault("labels", {}).update(labels)
    meta_annotations = meta.setdefault("annotations", {})
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


# What ``gcloud run services describe --format export`` drops (its ExportPrinter) plus what the
# server sets and a later write must not send back as if it were the user's: identity, versions,
# status, and server-owned annotations and labels.
EXPORT_DROPPED_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "ownerReferences",
    "managedFields",
    "deletionTimestamp",
)
EXPORT_DROPPED_ANNOTATIONS = frozenset(
    {
        "serving.knative.dev/creator",
        "serving.knative.dev/lastModifier",
        "run.googleapis.com/client-name",
        "run.googleapis.com/client-version",
        "run.googleapis.com/creatorEmail",
        "run.googleapis.com/lastModifierEmail",
        "run.googleapis.com/operation-id",
        "run.googleapis.com/urls",
        "run.googleapis.com/ingress-status",
        "client.knative.dev/user-image",
    }
)
EXPORT_DROPPED_LABELS = frozenset({"cloud.googleapis.com/location"})


def exported(service: Mapping[str, Any] | None) -> Obj | None:
    """A Service as ``--format export`` would write it: no status, no server-owned metadata."""
    if service is None:
        return None
    out: Obj = {k: copy.deepcopy(v) for k, v in service.items() if k != "status"}
    for meta in (out.get("metadata"), ((out.get("spec") or {}).get("template") or {}).get("metadata")):
        if not isinstance(meta, dict):
            continue
        for key in EXPORT_DROPPED_METADATA:
            meta.pop(key, None)
        for key, dropped in (("annotations", EXPORT_DROPPED_ANNOTATIONS), ("labels", EXPORT_DROPPED_LABELS)):
            values = meta.get(key)
            if isinstance(values, dict):
                for name in [n for n in values if n in dropped or n.startswith(IMMUTABLE_PREFIX)]:
                    del values[name]
    return out


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


def labels_for(config: Config, ctx: RunContext) -> dict[str, str]:
    """The labels every object we write gets: the user's, plus who deployed it and from which commit
    (label values are at most 63 characters), unless ``skip_default_labels``."""
    labels = dict(config.labels)
    if not config.skip_default_labels:
        labels.setdefault("managed-by", "github-actions")
        if ctx.sha:
            labels.setdefault("commit-sha", ctx.sha.lower()[:63])
    return labels


MetadataChanges = dict[str, dict[str, list[str | None]]]
OWN_PREFIX = "run-canary.dev/"  # the rollout record and stable revisions: restored by their own rules


def metadata_changes(before: Obj | None, after: Obj) -> MetadataChanges:
    """Which of the service's labels and annotations a write changes: kind -> key -> [before, after]
    (None where absent). A rollback undoes exactly these (``undo_metadata``)."""
    out: MetadataChanges = {}
    for kind in ("labels", "annotations"):
        old = ((before or {}).get("metadata") or {}).get(kind) or {}
        new = (after.get("metadata") or {}).get(kind) or {}
        changed = {
            key: [old.get(key), new.get(key)]
            for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key) and not key.startswith(OWN_PREFIX)
        }
        if changed:
            out[kind] = changed
    return out


def undo_metadata(body: Obj, changes: MetadataChanges | None) -> list[str]:
    """Put back in ``body`` each label and annotation of ``changes`` that still has the value our
    write gave it; one that someone changed since keeps theirs. Returns the keys left as they are."""
    kept = []
    meta = body.setdefault("metadata", {})
    for kind, keys in (changes or {}).items():
        values = meta.setdefault(kind, {})
        for key, (old, ours) in keys.items():
            if values.get(key) != ours:
                kept.append(key)
            elif old is None:
                values.pop(key, None)
            else:
                values[key] = old
        if not values:
            del meta[kind]
    return kept


def chain_changes(first: MetadataChanges | None, then: MetadataChanges) -> MetadataChanges:
    """Two writes' changes as one: each key's value before the first write that changed it, and its
    value after the last; a key that ends as it started is no change."""
    out: MetadataChanges = {kind: dict(keys) for kind, keys in (first or {}).items()}
    for kind, keys in then.items():
        into = out.setdefault(kind, {})
        for key, (old, new) in keys.items():
            into[key] = [into[key][0] if key in into else old, new]
    return {
        kind: {key: pair for key, pair in keys.items() if pair[0] != pair[1]}
        for kind, keys in out.items()
        if any(pair[0] != pair[1] for pair in keys.values())
    }
