"""The emulator's control plane: services, revisions, generations, conditions and IAM policies.

One lock guards everything (requests arrive on many threads). Readiness is not simulated by
sleeping: each object records when it changed, and ``reconcile`` (called before every read and by
a background thread) moves it forward once ``ready_delay`` has passed and the data plane agrees.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import os
import random
import re
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudrun_emulator import quotas, secretrefs
from cloudrun_emulator.dataplane import DataPlane, RevisionRun, instance_key
from cloudrun_emulator.schema import Violation, check_service

API_VERSION = "serving.knative.dev/v1"
NS_PREFIX = "/apis/serving.knative.dev/v1/namespaces"
PRINCIPAL = "user@emulator.local"
IMMUTABLE_ANNOTATIONS = ("serving.knative.dev/creator", "serving.knative.dev/lastModifier")
SERVICE_LABEL = "serving.knative.dev/service"
# Cloud Run labels every service, configuration, route and revision with its region
# (https://cloud.google.com/run/docs/reference/rest/v1/ObjectMeta: "cloud.googleapis.com/location");
# gcloud's REGION column reads it.
LOCATION_LABEL = "cloud.googleapis.com/location"
DEFAULT_REGION = "us-central1"
CONDITION_TYPES = ("Ready", "ConfigurationsReady", "RoutesReady")
MAP_FIELDS = frozenset({"labels", "annotations", "limits", "requests", "nodeSelector"})
LOCATIONS = {
    "us-central1": "Iowa",
    "us-east1": "South Carolina",
    "europe-west1": "Belgium",
    "europe-west4": "Netherlands",
    "asia-northeast1": "Tokyo",
}


ANY_REGION = "-"  # gcloud lists every region of a project at ``locations/-``


def project_key(ns: str) -> str:
    """A project as the store keys it: its number. Cloud Run paths name a project by ID or number alike
    (run.v1.json: "namespace ID or number"), and answers carry the number."""
    return ns if ns.isdigit() else project_number(ns)


def scope(ns: str, region: str) -> str:
    """Where a service, revision or job lives: a project AND a region (``<number>/<region>``).

    In Cloud Run a name is unique per project and region: ``web`` in europe-west1 and ``web`` in
    us-central1 are two services, each with its own revisions, URLs and IAM policy.
    """
    return f"{project_key(ns)}/{region}"


def scope_project(key: str) -> str:
    """The project number of a scope (what ``metadata.namespace`` shows)."""
    return key.split("/", 1)[0]


def in_scope(namespace: str, key: str) -> bool:
    """Does an object's scope fall under ``key`` (a region, or ``-``: every region of the project)?"""
    project, _, region = key.partition("/")
    return namespace == key or (region == ANY_REGION and scope_project(namespace) == project)


def same_project(given: str, ns: str) -> bool:
    """Does ``metadata.namespace`` (ID or number) name the project of the scope or URL ``ns``?"""
    return project_key(given) == project_key(scope_project(ns))


class ApiError(Exception):
    """An error the HTTP layer turns into Google's error body."""

    def __init__(self, code: int, status: str, message: str, violations: Iterable[Violation] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.violations = list(violations)


def invalid(violations: list[Violation]) -> ApiError:
    """400 INVALID_ARGUMENT listing every violation, the message naming them all."""
    return ApiError(400, "INVALID_ARGUMENT", "; ".join(v.description for v in violations), violations)


def url_name_mismatch(meta: dict[str, Any], name: str) -> list[Violation]:
    """A replace whose ``metadata.name`` is not the one in the URL (services and jobs alike)."""
    if meta.get("name") and meta["name"] != name:
        text = f"metadata.name: '{meta['name']}' does not match the name in the URL '{name}'"
        return [Violation("metadata.name", text)]
    return []


def check_version(meta: dict[str, Any], name: str, current_version: str) -> None:
    """Optimistic concurrency: a replace naming a stale ``resourceVersion`` is 409 ABORTED."""
    version = meta.get("resourceVersion")
    if version and version != current_version:
        raise ApiError(
            409,
            "ABORTED",
            f"Conflict for resource '{name}': version '{version}' was specified but current "
            f"version is '{current_version}'.",
        )


def not_found(kind: str, name: str) -> ApiError:
    """404 in Cloud Run's wording."""
    return ApiError(404, "NOT_FOUND", f"{kind} '{name}' not found.")


def now_iso() -> str:
    """RFC 3339 UTC timestamp with microseconds, as Google writes them."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prune(value: Any, keep_entries: bool = False) -> Any:
    """Drop zero, false, empty and null values like proto3 JSON; map entries are always kept."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pruned = item if keep_entries else prune(item, key in MAP_FIELDS)
            if keep_entries or not _is_default(pruned):
                out[key] = pruned
        return out
    if isinstance(value, list):
        return [prune(item) for item in value]
    return value


def _is_default(value: Any) -> bool:
    """Is this the proto3 default (omitted on the wire)?"""
    return value is None or value is False or (not isinstance(value, bool) and value in (0, "", [], {}))


@dataclass
class StoredCondition:
    """One status condition as the emulator stores it; lastTransitionTime only moves when the status does."""

    type: str
    status: str = "Unknown"
    reason: str | None = None
    message: str | None = None
    last_transition: str = field(default_factory=now_iso)

    def set(self, status: str, reason: str | None = None, message: str | None = None) -> bool:
        """Update in place; True when anything visible changed."""
        if (status, reason, message) == (self.status, self.reason, self.message):
            return False
        if status != self.status:
            self.last_transition = now_iso()
        self.status, self.reason, self.message = status, reason, message
        return True

    def to_json(self) -> dict[str, Any]:
        """Wire form."""
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition,
        }


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


def same_bytes(given: str, stored: str) -> bool:
    """Do two base64 texts hold the same bytes?

    An IAM etag is a proto ``bytes`` field. Proto3's JSON mapping writes bytes as standard base64
    and accepts standard or URL-safe base64, with or without padding
    (https://protobuf.dev/programming-guides/proto3/#json); gcloud sends etags back URL-safe.
    """

    def decode(text: str) -> bytes | None:
        try:
            return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
        except ValueError:
            return None

    return decode(given) is not None and decode(given) == decode(stored)


def new_etag() -> str:
    """IAM etags are base64 bytes."""
    return base64.b64encode(os.urandom(8)).decode("ascii")


@dataclass
class Change:
    """What a create or replace will do, worked out before anything is written."""

    service: Service
    new_revision: str | None
    template_changed: bool
    bumped: bool
    reused: str | None = None  # an existing revision the template names (a "BYO name" rollback)


class Store:
    """Services and revisions of every namespace, behind one lock."""

    def __init__(
        self, dataplane: DataPlane, ready_delay: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.dataplane = dataplane
        self.ready_delay = ready_delay
        self.tag_limit = quotas.TAG_LIMIT
        self.clock = clock
        self.lock = threading.RLock()
        self.services: dict[tuple[str, str], Service] = {}
        self.revisions: dict[tuple[str, str], Revision] = {}
        # (namespace, service) -> its revisions by name: the reconciler looks at every service 20
        # times a second, and a scan of all revisions for each would grow with the whole store.
        self._of_service: dict[tuple[str, str], dict[str, Revision]] = {}
        self._counter = 0

    def _next(self) -> int:
        """Monotonic sequence for ordering and resourceVersions."""
        self._counter += 1
        return self._counter

    def _list_version(self) -> str:
        """A list's resourceVersion: the store's write counter, as Kubernetes lists report theirs."""
        return str(self._counter)

    def _version(self) -> str:
        """A fresh opaque resourceVersion."""
        raw = self._next().to_bytes(8, "big") + os.urandom(2)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    # ---- services --------------------------------------------------------------------------

    def create_service(
        self, ns: str, body: dict[str, Any], dry_run: bool, region: str = DEFAULT_REGION
    ) -> dict[str, Any]:
        """services.create: validate everything, then store and start the first revision in ``region``."""
        name = body.get("metadata", {}).get("name", "")
        with self.lock:
            problems = check_service(body, name) + self._check_namespace(ns, body)
            problems += self._check_annotations(body, None)
            if problems:
                raise invalid(problems)
            if (ns, name) in self.services:
                raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists.")
            service = Service(ns, name, {}, {}, {}, seq=self._next(), region=region)
            change = self._plan(service, body, creating=True)
            return self._commit(change, dry_run, creating=True)

    def replace_service(self, ns: str, name: str, body: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        """services.replaceService: whole-object PUT with optimistic concurrency."""
        with self.lock:
            current = self._service(ns, name)
            self._reconcile(current)
            meta = body.get("metadata", {})
            problems = check_service(body, meta.get("name", "")) + self._check_namespace(ns, body)
            problems += url_name_mismatch(meta, name)
            problems += self._check_annotations(body, current)
            if problems:
                raise invalid(problems)
            check_version(meta, name, current.resource_version)
            change = self._plan(copy.deepcopy(current), body, creating=False)
            return self._commit(change, dry_run, creating=False)

    def _check_namespace(self, ns: str, body: dict[str, Any]) -> list[Violation]:
        """metadata.namespace, when given, must be the one in the URL."""
        given = body.get("metadata", {}).get("namespace")
        if given and not same_project(given, ns):
            text = f"metadata.namespace: '{given}' does not match the project in the URL"
            return [Violation("metadata.namespace", text)]
        return []

    def _check_annotations(self, body: dict[str, Any], current: Service | None) -> list[Violation]:
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

    def _plan(self, service: Service, body: dict[str, Any], creating: bool) -> Change:
        """Apply the body to ``service`` (a copy when replacing) and decide on a new revision."""
        meta = body.get("metadata", {})
        spec = prune(copy.deepcopy(body.get("spec", {})))  # empty == absent (proto3): see same_template
        template = prune(default_template(spec.get("template", {})))
        spec["template"] = template
        spec["traffic"] = spec.get("traffic") or [{"latestRevision": True, "percent": 100}]
        new_revision, template_changed = self._decide_revision(service, template, creating)
        wanted = template.get("metadata", {}).get("name")
        reused = wanted if new_revision is None and wanted and wanted != service.latest_created else None
        self._check_traffic_targets(service, spec["traffic"], new_revision)
        spec["traffic"] = self._tag_quota(service, spec["traffic"])
        annotations = {**meta.get("annotations", {}), IMMUTABLE_ANNOTATIONS[0]: PRINCIPAL}
        annotations[IMMUTABLE_ANNOTATIONS[1]] = PRINCIPAL
        labels = {**meta.get("labels", {}), LOCATION_LABEL: service.region}
        bumped = (spec, labels, annotations) != (service.spec, service.labels, service.annotations)
        service.spec, service.labels, service.annotations = spec, labels, annotations
        return Change(service, new_revision, template_changed, bumped, reused)

    def _decide_revision(
        self, service: Service, template: dict[str, Any], creating: bool
    ) -> tuple[str | None, bool]:
        """The name of the revision this write creates (None: none), and whether the template changed."""
        wanted = template.get("metadata", {}).get("name")
        if wanted and (service.namespace, wanted) in self.revisions:
            existing = self.revisions[(service.namespace, wanted)]
            if existing.service != service.name or not same_revision(existing.template, template):
                raise ApiError(
                    409,
                    "ALREADY_EXISTS",
                    f"Revision named '{wanted}' with different configuration already exists.",
                )
            return None, not creating and not same_template(template, service.spec.get("template", {}))
        if wanted:
            return wanted, True
        if not creating and same_revision(template, service.spec.get("template", {})):
            return None, not same_template(template, service.spec.get("template", {}))
        generation = 1 if creating else service.generation + 1
        suffix = "".join(random.choices(string.ascii_lowercase, k=3))
        return f"{service.name}-{generation:05d}-{suffix}", True

    def _tag_quota(self, service: Service, traffic: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Cloud Run's revision-tag limit per project and region, and its cleanup on the service that
        creates a tag (``quotas.tag_cleanup``)."""
        new = quotas.tags(traffic) - quotas.tags(service.spec.get("traffic", []))
        for target in traffic:  # in the order of the block
            if target.get("tag") in new:
                service.tags_born[target["tag"]] = self._next()
        others = sum(
            len(quotas.tags(s.spec.get("traffic", [])))
            for s in self.services.values()
            if (s.namespace, s.region) == (service.namespace, service.region) and s.name != service.name
        )
        return quotas.tag_cleanup(
            traffic, service.tags_born, new, others + len(quotas.tags(traffic)) - self.tag_limit
        )

    def _check_traffic_targets(
        self, service: Service, traffic: list[dict[str, Any]], new_revision: str | None
    ) -> None:
        """Every named revision must exist in this service or be the one being created."""
        problems = []
        for i, target in enumerate(traffic):
            name = target.get("revisionName")
            if not name or name == new_revision:
                continue
            revision = self.revisions.get((service.namespace, name))
            if revision is None or revision.service != service.name:
                where = f"spec.traffic[{i}].revisionName"
                problems.append(Violation(where, f"{where}: Revision '{name}' does not exist."))
        if problems:
            raise invalid(problems)

    def _commit(self, change: Change, dry_run: bool, creating: bool) -> dict[str, Any]:
        """Write the planned change (unless dry run) and return the service as stored."""
        service = change.service
        if dry_run:
            return self._render_service(service)
        now = self.clock()
        if not creating and change.bumped:
            service.generation += 1
        if creating or change.bumped:
            service.changed_at = now
            service.conditions["Ready"].set("Unknown", "Deploying", "Deploying revision.")
        if change.new_revision:
            self._add_revision(service, change.new_revision, now)
            service.conditions["ConfigurationsReady"].set("Unknown", "Deploying", "Creating revision.")
        elif change.reused:
            # Knative: a template naming an existing, identical revision makes that revision the latest
            # created (and, once Ready, the latest ready) again -- the "rollback to a BYO name" case.
            service.latest_created = change.reused
            service.conditions["ConfigurationsReady"].set("Unknown", "Deploying", "Updating configuration.")
        if creating or change.bumped:
            service.conditions["RoutesReady"].set("Unknown", "Deploying", "Configuring traffic.")
        service.resource_version = self._version()
        self.services[(service.namespace, service.name)] = service
        return self._render_service(service)

    def _add_revision(self, service: Service, name: str, now: float) -> None:
        """Record a new revision and ask the data plane to start it."""
        template = copy.deepcopy(service.spec["template"])
        revision = Revision(
            service.namespace, name, service.name, service.generation, template, self._next(), now
        )
        revision.resource_version = self._version()
        revision.ready.set("Unknown", "Deploying", "Starting the container.")
        self.revisions[(service.namespace, name)] = revision
        self._of_service.setdefault((service.namespace, service.name), {})[name] = revision
        service.latest_created = name
        container = ingress_container(template)
        env = revision_env(container, template.get("metadata", {}).get("annotations", {}))
        run = RevisionRun(name, service.name, service.name, container["image"], env, service.namespace)
        self.dataplane.start_revision(run)

    def get_service(self, ns: str, name: str) -> dict[str, Any]:
        """services.get."""
        with self.lock:
            service = self._service(ns, name)
            self._reconcile(service)
            return self._render_service(service)

    def list_services(self, ns: str, selector: str, limit: int, token: str) -> dict[str, Any]:
        """services.list: newest first, label selector, limit/continue paging."""
        with self.lock:
            found = sorted(
                (s for s in self.services.values() if in_scope(s.namespace, ns)),
                key=lambda s: s.seq,
                reverse=True,
            )
            for service in found:
                self._reconcile(service)
            items = [self._render_service(s) for s in found]
        return page("ServiceList", items, selector, limit, token, self._list_version())

    def delete_service(self, ns: str, name: str) -> dict[str, Any]:
        """services.delete: the service and its revisions go, their processes are stopped."""
        with self.lock:
            service = self._service(ns, name)
            del self.services[(ns, name)]
            doomed = list(self._of_service.pop((ns, name), {}).values())
            for revision in doomed:
                del self.revisions[(ns, revision.name)]
        self.dataplane.remove_route(f"{ns}/{name}")
        for revision in doomed:
            self.dataplane.stop_revision(instance_key(ns, revision.name))
        return status_object(name, "services", service.uid)

    def _service(self, ns: str, name: str) -> Service:
        """Look a service up or raise 404."""
        service = self.services.get((ns, name))
        if service is None:
            raise not_found("Resource", name)
        return service

    # ---- reconciliation --------------------------------------------------------------------

    def reconcile_all(self) -> None:
        """Move every unsettled service forward; called by the background reconciler (20 times a
        second, so settled services, most of a long-lived emulator's, are skipped cheaply)."""
        with self.lock:
            for key, service in list(self.services.items()):
                revisions = self._of_service.get(key, {}).values()
                if service.observed_generation == service.generation and all(
                    r.ready.status != "Unknown" for r in revisions
                ):
                    continue  # _reconcile would change nothing
                self._reconcile(service)

    def _reconcile(self, service: Service) -> None:
        """Advance revisions, then finish the pending generation once it can be decided."""
        now = self.clock()
        for revision in self._revisions_of(service):
            self._reconcile_revision(revision, now)
        latest_created = self.revisions.get((service.namespace, service.latest_created or ""))
        if latest_created is not None and latest_created.ready.status == "True":
            service.latest_ready = latest_created.name
        if service.observed_generation == service.generation or now - service.changed_at < self.ready_delay:
            return
        latest = self.revisions.get((service.namespace, service.latest_created or ""))
        pinned = [
            self.revisions.get((service.namespace, t.get("revisionName", "")))
            for t in service.spec["traffic"]
        ]
        if any(r is not None and r.ready.status == "Unknown" for r in [latest, *pinned]):
            return
        self._finish_generation(service, latest)

    def _reconcile_revision(self, revision: Revision, now: float) -> None:
        """A revision turns Ready only after ready_delay and a healthy container; failures stick."""
        if revision.ready.status != "Unknown" or now - revision.created_at < self.ready_delay:
            return
        health = self.dataplane.health(instance_key(revision.namespace, revision.name))
        if health.status == "Unknown":
            return
        probe_failure = probe_problem(revision.template) if health.status == "True" else None
        if probe_failure:
            revision.ready.set("False", "HealthCheckContainerError", probe_failure)
        elif health.status == "True":
            revision.ready.set("True")
        else:
            reason = health.reason or "HealthCheckContainerError"
            revision.ready.set("False", reason, health.message or "The container failed to start.")
        revision.resource_version = self._version()

    def _finish_generation(self, service: Service, latest: Revision | None) -> None:
        """Decide ConfigurationsReady, RoutesReady and Ready for the current generation."""
        conditions = service.conditions
        if latest is None:
            conditions["ConfigurationsReady"].set("True")
        elif latest.ready.status == "False":
            ready = latest.ready
            message = f"Revision '{latest.name}' is not ready and cannot serve traffic. {ready.message or ''}"
            conditions["ConfigurationsReady"].set("False", ready.reason, message.strip())
        else:
            conditions["ConfigurationsReady"].set(
                latest.ready.status, latest.ready.reason, latest.ready.message
            )
        problem = self._route(service)
        if problem:
            conditions["RoutesReady"].set("False", *problem)
        else:
            conditions["RoutesReady"].set("True")
        config, routes = conditions["ConfigurationsReady"], conditions["RoutesReady"]
        failed = next((c for c in (config, routes) if c.status == "False"), None)
        if failed:
            conditions["Ready"].set("False", failed.reason, failed.message)
        else:
            conditions["Ready"].set("True")
        service.observed_generation = service.generation
        service.resource_version = self._version()

    def _route(self, service: Service) -> tuple[str, str] | None:
        """Resolve spec.traffic and reprogram the data plane; a (reason, message) when it cannot."""
        latest_ready = self._latest_ready(service)
        resolved = []
        for target in service.spec["traffic"]:
            name = latest_ready if target.get("latestRevision") else target.get("revisionName")
            revision = self.revisions.get((service.namespace, name or ""))
            if revision is None:
                return "RevisionMissing", f"Configuration '{service.name}' does not have any ready Revision."
            if revision.ready.status != "True":
                message = f"Revision '{revision.name}' is not ready: {revision.ready.message or ''}".strip()
                return "RevisionFailed", message
            resolved.append({**target, "revisionName": revision.name})
        self._program(service, resolved)
        return None

    def _program(self, service: Service, resolved: list[dict[str, Any]]) -> None:
        """Send the split and tags to the data plane when they changed; record the URLs."""
        weights: dict[str, int] = {}
        for target in resolved:
            if target.get("percent", 0) > 0:
                weights[target["revisionName"]] = weights.get(target["revisionName"], 0) + target["percent"]
        tags = {t["tag"]: t["revisionName"] for t in resolved if t.get("tag")}
        routed = (tuple(weights.items()), tuple(sorted(tags.items())))
        if routed != service.routed:
            urls = self.dataplane.route(f"{service.namespace}/{service.name}", list(weights.items()), tags)
            service.url, service.tag_urls, service.routed = urls.url, dict(urls.tags), routed
        service.traffic = [
            {
                "revisionName": t["revisionName"],
                "percent": t.get("percent", 0),
                "latestRevision": bool(t.get("latestRevision")),
                "tag": t.get("tag"),
                "url": service.tag_urls.get(t["tag"]) if t.get("tag") else None,
            }
            for t in resolved
        ]

    def _revisions_of(self, service: Service) -> list[Revision]:
        """The service's revisions, newest first."""
        found = self._of_service.get((service.namespace, service.name), {}).values()
        return sorted(found, key=lambda r: r.seq, reverse=True)

    def _latest_ready(self, service: Service) -> str | None:
        """Knative's latestReadyRevisionName: the latest created revision that became Ready. It only
        moves forward (a failed new revision leaves it where it was), except to a revision the
        template names explicitly; if that revision was deleted, the newest Ready one."""
        if service.latest_ready and (service.namespace, service.latest_ready) in self.revisions:
            return service.latest_ready
        return next((r.name for r in self._revisions_of(service) if r.ready.status == "True"), None)

    # ---- rendering -------------------------------------------------------------------------

    def _metadata(self, service: Service, kind: str) -> dict[str, Any]:
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

    def _render_service(self, service: Service) -> dict[str, Any]:
        """The Service object on the wire."""
        status = {
            "observedGeneration": service.observed_generation,
            "conditions": [c.to_json() for c in service.conditions.values()],
            "latestCreatedRevisionName": service.latest_created,
            "latestReadyRevisionName": self._latest_ready(service),
            "url": service.url,
            "address": {"url": service.url},
            "traffic": copy.deepcopy(service.traffic),
        }
        return prune(
            {
                "apiVersion": API_VERSION,
                "kind": "Service",
                "metadata": self._metadata(service, "services"),
                "spec": copy.deepcopy(service.spec),
                "status": status,
            }
        )

    # ---- revisions -------------------------------------------------------------------------

    def get_revision(self, ns: str, name: str) -> dict[str, Any]:
        """revisions.get."""
        with self.lock:
            revision = self._revision(ns, name)
            self._reconcile_parent(revision)
            return self._render_revision(revision)

    def list_revisions(self, ns: str, selector: str, limit: int, token: str) -> dict[str, Any]:
        """revisions.list, newest first."""
        with self.lock:
            for service in [s for s in self.services.values() if in_scope(s.namespace, ns)]:
                self._reconcile(service)
            found = sorted(
                (r for r in self.revisions.values() if in_scope(r.namespace, ns)), key=lambda r: -r.seq
            )
            items = [self._render_revision(r) for r in found]
        return page("RevisionList", items, selector, limit, token, self._list_version())

    def delete_revision(self, ns: str, name: str) -> dict[str, Any]:
        """revisions.delete: refused while the revision serves or is the latest one."""
        with self.lock:
            revision = self._revision(ns, name)
            service = self.services.get((ns, revision.service))
            if service is not None:
                self._reconcile(service)
                if name in self._referenced(service):
                    raise ApiError(
                        400,  # Google maps FAILED_PRECONDITION to HTTP 400
                        "FAILED_PRECONDITION",
                        f"Revision '{name}' is referenced by traffic or is the latest revision of "
                        f"service '{service.name}' and cannot be deleted.",
                    )
            del self.revisions[(ns, name)]
            self._of_service.get((ns, revision.service), {}).pop(name, None)
        self.dataplane.stop_revision(instance_key(ns, name))
        return status_object(name, "revisions", revision.uid)

    def _referenced(self, service: Service) -> set[str]:
        """Revisions the service cannot lose: in spec or status traffic, latest created or ready."""
        names = {t.get("revisionName") for t in service.spec["traffic"] + service.traffic}
        names.add(service.latest_created)
        if any(t.get("latestRevision") for t in service.spec["traffic"]):
            names.add(self._latest_ready(service))
        return {n for n in names if n}

    def _revision(self, ns: str, name: str) -> Revision:
        """Look a revision up or raise 404."""
        revision = self.revisions.get((ns, name))
        if revision is None:
            raise not_found("Revision", name)
        return revision

    def _reconcile_parent(self, revision: Revision) -> None:
        """Reading a revision moves its service (and so the revision) forward."""
        service = self.services.get((revision.namespace, revision.service))
        if service is not None:
            self._reconcile(service)
        else:
            self._reconcile_revision(revision, self.clock())

    def _render_revision(self, revision: Revision) -> dict[str, Any]:
        """The Revision object on the wire, with its four conditions."""
        template = revision.template
        meta = template.get("metadata", {})
        service = self.services.get((revision.namespace, revision.service))
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
                    "logUrl": log_url(revision),
                    "serviceName": revision.service,
                },
            }
        )

    # ---- routes and configurations (read-only views of a service) --------------------------

    def get_view(self, ns: str, kind: str, name: str) -> dict[str, Any]:
        """routes.get / configurations.get."""
        with self.lock:
            service = self._service(ns, name)
            self._reconcile(service)
            return self._render_view(service, kind)

    def list_views(self, ns: str, kind: str, selector: str, limit: int, token: str) -> dict[str, Any]:
        """routes.list / configurations.list."""
        with self.lock:
            found = sorted(
                (s for s in self.services.values() if in_scope(s.namespace, ns)),
                key=lambda s: s.seq,
                reverse=True,
            )
            for service in found:
                self._reconcile(service)
            items = [self._render_view(s, kind) for s in found]
        list_kind = "RouteList" if kind == "routes" else "ConfigurationList"
        return page(list_kind, items, selector, limit, token, self._list_version())

    def _render_view(self, service: Service, kind: str) -> dict[str, Any]:
        """The Route or Configuration Knative derives from a Service."""
        meta = self._metadata(service, kind)
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
                "latestReadyRevisionName": self._latest_ready(service),
            }
        ready = {**condition.to_json(), "type": "Ready"}
        status.update({"observedGeneration": service.observed_generation, "conditions": [ready]})
        kind_name = "Route" if kind == "routes" else "Configuration"
        return prune(
            {"apiVersion": API_VERSION, "kind": kind_name, "metadata": meta, "spec": spec, "status": status}
        )

    # ---- IAM -------------------------------------------------------------------------------

    def get_iam_policy(self, ns: str, name: str, version: int = 0) -> dict[str, Any]:
        """getIamPolicy: bindings plus the etag to send back on set.

        A policy with conditional bindings is only shown whole as version 3; asked for less, IAM
        answers version 1 with each conditional binding's role renamed ``<role>_withcond_<hash>`` and
        its condition left out (https://cloud.google.com/iam/docs/policies#versions).
        """
        with self.lock:
            service = self._service(ns, name)
            policy = copy.deepcopy(service.policy)
            conditional = any("condition" in b for b in policy["bindings"])
            policy["version"] = 3 if conditional else 1
            if conditional and version < 3:
                policy = {"version": 1, "bindings": [_without_condition(b) for b in policy["bindings"]]}
            return prune({**policy, "etag": service.etag})

    def set_iam_policy(self, ns: str, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """setIamPolicy: whole-policy replace, refused when the etag is stale or when conditions
        would be written or overwritten by a policy older than version 3."""
        policy = request.get("policy", {})
        bindings = policy.get("bindings", [])
        problems = check_bindings(bindings)
        version = int(policy.get("version", 0) or 0)
        if version not in (0, 1, 3):
            problems.append(Violation("policy.version", f"policy.version: invalid policy version {version}"))
        elif version < 3 and any("condition" in b for b in bindings):
            text = "policy.version: conditional role bindings require policy version 3"
            problems.append(Violation("policy.version", text))
        if problems:
            raise invalid(problems)
        with self.lock:
            service = self._service(ns, name)
            etag = policy.get("etag")
            if etag and not same_bytes(etag, service.etag):
                raise ApiError(
                    409,
                    "ABORTED",
                    "There were concurrent policy changes. Please retry the whole read-modify-write "
                    "with exponential backoff.",
                )
            if version < 3 and any("condition" in b for b in service.policy["bindings"]):
                raise invalid(
                    [
                        Violation(
                            "policy.version",
                            "policy.version: the policy has conditional role bindings; "
                            "set it with version 3 (read it with options.requestedPolicyVersion=3)",
                        )
                    ]
                )
            service.policy = {"version": version or 1, "bindings": copy.deepcopy(bindings)}
            service.etag = new_etag()
            return prune({**copy.deepcopy(service.policy), "etag": service.etag})

    def close(self) -> None:
        """Forget everything (the data plane is closed by its owner)."""
        with self.lock:
            self.services.clear()
            self.revisions.clear()
            self._of_service.clear()


# ---- helpers ---------------------------------------------------------------------------------

MEMBER = re.compile(r"^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal\w*):.+)$")


def _without_condition(binding: Mapping[str, Any]) -> dict[str, Any]:
    """How a version 1 view shows a conditional binding: a marked role, no condition."""
    if "condition" not in binding:
        return dict(binding)
    digest = hashlib.sha256(json.dumps(binding["condition"], sort_keys=True).encode()).hexdigest()[:20]
    return {"role": f"{binding['role']}_withcond_{digest}", "members": list(binding.get("members", []))}


def check_bindings(bindings: list[dict[str, Any]]) -> list[Violation]:
    """IAM bindings need a role under roles/ (not a v1 ``_withcond_`` alias), well-formed members,
    and a condition, when there is one, with an expression."""
    problems = []
    for i, binding in enumerate(bindings):
        where = f"policy.bindings[{i}]"
        role = str(binding.get("role", ""))
        if not role.startswith("roles/") or "_withcond_" in role:
            problems.append(Violation(f"{where}.role", f"{where}.role: invalid role '{role}'"))
        condition = binding.get("condition")
        if condition is not None and not str(condition.get("expression", "")).strip():
            text = f"{where}.condition.expression: a condition needs an expression"
            problems.append(Violation(f"{where}.condition.expression", text))
        for j, member in enumerate(binding.get("members", [])):
            if not MEMBER.match(member):
                text = f"{where}.members[{j}]: Invalid member '{member}'"
                problems.append(Violation(f"{where}.members[{j}]", text))
    return problems


def default_template(template: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults Cloud Run writes back: concurrency, timeout, port, resources, startup probe."""
    result = copy.deepcopy(template)
    spec = result.setdefault("spec", {})
    spec.setdefault("timeoutSeconds", 300)
    containers = spec.get("containers", [])
    for container in containers:
        if len(containers) == 1:  # a lone container serves; among several, the one with ports does
            container.setdefault("ports", [{}])
        for port in container.get("ports", []):
            port.setdefault("name", "http1")
            port.setdefault("containerPort", 8080)
        limits = container.setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("cpu", "1000m")
        limits.setdefault("memory", "512Mi")
        if container.get("ports"):
            default_startup_probe(container)
    if not spec.get("containerConcurrency"):
        spec["containerConcurrency"] = default_concurrency(containers)
    return result


def default_concurrency(containers: list[dict[str, Any]]) -> int:
    """run.v1.json (``RevisionSpec.containerConcurrency``): "If not specified or 0, defaults to 80 when
    requested CPU >= 1 and defaults to 1 when requested CPU < 1" (the instance's CPU: every container's)."""
    cpu = sum(cpu_cores(c.get("resources", {}).get("limits", {}).get("cpu", "1")) for c in containers)
    return 80 if cpu >= 1 else 1


def cpu_cores(text: str) -> float:
    """A Kubernetes CPU quantity (``1``, ``0.5``, ``500m``) in cores; 1 when it does not parse."""
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return 1.0


def default_startup_probe(container: dict[str, Any]) -> None:
    """The ingress container's startup probe as Cloud Run stores it.

    https://cloud.google.com/run/docs/configuring/healthchecks: without a configured startup probe,
    Cloud Run uses a TCP probe on the container port (stored as ``tcpSocket.port``, timeout and
    period 240 s, failure threshold 1). A configured probe without a port probes the container
    port; gcloud's ``--port`` moves a probe that pointed at the old port
    (command_lib/run/config_changes.ContainerPortChange).
    """
    port = container["ports"][0]["containerPort"]
    probe = container.setdefault(
        "startupProbe", {"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1}
    )
    if not any(kind in probe for kind in ("tcpSocket", "httpGet", "grpc")):
        probe["tcpSocket"] = {}
    for kind in ("tcpSocket", "httpGet", "grpc"):
        if kind in probe and isinstance(probe[kind], dict):
            probe[kind].setdefault("port", port)


def ingress_container(template: Mapping[str, Any]) -> dict[str, Any]:
    """The container that receives requests: the one declaring ``ports`` (the only one otherwise)."""
    containers: list[dict[str, Any]] = template.get("spec", {}).get("containers", [])
    return next((c for c in containers if c.get("ports")), containers[0])


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


def strip_name(template: Mapping[str, Any]) -> dict[str, Any]:
    """A template without its revision name, to compare what a revision actually runs."""
    result = copy.deepcopy(dict(template))
    result.get("metadata", {}).pop("name", None)
    if result.get("metadata") == {}:
        result.pop("metadata")
    return result


def same_template(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal templates once defaults are filled and empty values dropped.

    Cloud Run is a proto3 API: an empty map, list or string is the same as an absent field
    (https://protobuf.dev/programming-guides/proto3/#default), and Knative compares specs with
    Kubernetes' semantic equality, where empty and nil are equal
    (k8s.io/apimachinery/pkg/api/equality). So ``labels: {}`` or a container ``name: ""`` sent by
    gcloud must not make an unchanged template look different from the one stored with defaults.
    """
    return bool(prune(default_template(dict(a))) == prune(default_template(dict(b))))


def same_revision(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Would both templates run the same revision (same template apart from the revision name)?"""
    return same_template(strip_name(a), strip_name(b))


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


def status_object(name: str, kind: str, uid: str) -> dict[str, Any]:
    """The Kubernetes Status a delete returns."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success",
        "details": {"name": name, "group": "serving.knative.dev", "kind": kind, "uid": uid},
    }


def locations(project: str) -> dict[str, Any]:
    """locations.list: a handful of regions (any region is accepted elsewhere)."""
    return {
        "locations": [
            {
                "name": f"projects/{project}/locations/{region}",
                "locationId": region,
                "displayName": display,
                "labels": {"cloud.googleapis.com/region": region},
            }
            for region, display in LOCATIONS.items()
        ]
    }


def project_number(project: str) -> str:
    """A stable 12-digit project number for a project ID (Google assigns one to every project)."""
    return str(10**11 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % (9 * 10**11))


def project_resource(project: str) -> dict[str, Any]:
    """Cloud Resource Manager v1 ``projects.get``: every project exists and is active.

    https://cloud.google.com/resource-manager/reference/rest/v1/projects/get. ``gcloud run services
    replace`` looks the project number up here when the file names a ``metadata.namespace``.
    """
    return {
        "projectNumber": project_number(project),
        "projectId": project,
        "lifecycleState": "ACTIVE",
        "name": project,
        "createTime": "2024-01-01T00:00:00.000Z",
    }


# ---- listing ---------------------------------------------------------------------------------

SELECTOR_TERM = re.compile(
    r"^\s*(?:(?P<neg>!)\s*(?P<absent>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def parse_selector(selector: str) -> list[Callable[[Mapping[str, str]], bool]]:
    """Kubernetes label selector terms (=, ==, !=, in, notin, key, !key); ApiError when bad."""
    tests = []
    for term in re.split(r",(?![^()]*\))", selector):
        if not term.strip():
            continue
        match = SELECTOR_TERM.match(term)
        if match is None:
            raise invalid(
                [Violation("labelSelector", f"labelSelector: unable to parse requirement: '{term}'")]
            )
        tests.append(_selector_test(match))
    return tests


def _selector_test(match: re.Match[str]) -> Callable[[Mapping[str, str]], bool]:
    """One parsed selector term as a predicate on labels."""
    if match["neg"]:
        absent = match["absent"]
        return lambda labels: absent not in labels
    key, op = match["key"], match["op"] or match["setop"]
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == match["value"]
    if op == "!=":
        return lambda labels: labels.get(key) != match["value"]
    if op in ("in", "notin"):
        values = {v.strip() for v in match["values"].split(",")}
        inside = op == "in"
        return lambda labels: (labels.get(key) in values) == inside
    return lambda labels: key in labels


def page(
    kind: str, items: list[dict[str, Any]], selector: str, limit: int, token: str, version: str = "1"
) -> dict[str, Any]:
    """Filter by label selector and cut one page; the continue token is an opaque offset.

    The list always carries ``metadata`` (Kubernetes ListMeta, which Knative lists and Cloud Run's
    v1 ``List*Response`` share: https://cloud.google.com/run/docs/reference/rest/v1/ListMeta):
    ``resourceVersion`` always, ``continue`` only when more items follow. gcloud reads
    ``metadata.continue`` of every list response and fails when ``metadata`` is missing.
    """
    tests = parse_selector(selector)
    matching = [i for i in items if all(t(i.get("metadata", {}).get("labels", {})) for t in tests)]
    start = decode_token(token)
    end = start + limit if limit > 0 else len(matching)
    more = end < len(matching)
    result = prune({"apiVersion": API_VERSION, "kind": kind, "items": matching[start:end]})
    result["metadata"] = prune({"resourceVersion": version, "continue": encode_token(end) if more else None})
    return result


def encode_token(offset: int) -> str:
    """Opaque continue token."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode("ascii")


def decode_token(token: str) -> int:
    """Offset from a continue token; 400 when it is not one of ours."""
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid([Violation("continue", "continue: invalid continue token")]) from exc
