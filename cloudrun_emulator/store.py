"""The emulator's control plane: the services, revisions, routes, configurations and IAM calls.

Each call validates everything, then writes under the one lock. What the objects are lives in
``services`` and ``revisions`` (Knative's template defaults in ``defaults``), how they become ready in
``lifecycle``, listing in ``listing``, IAM policies in ``iam``, projects and regions in ``projects``.
The names other code has always imported from here stay importable (``__all__``).
"""

from __future__ import annotations

import copy
import random
import string
from typing import Any

from cloudrun_emulator import quotas
from cloudrun_emulator.conditions import StoredCondition
from cloudrun_emulator.dataplane import RevisionRun, instance_key
from cloudrun_emulator.defaults import (
    default_concurrency,
    default_startup_probe,
    default_template,
    ingress_container,
    same_revision,
    same_template,
)
from cloudrun_emulator.errors import ApiError, check_version, invalid, not_found, url_name_mismatch
from cloudrun_emulator.iam import (
    check_bindings,
    new_etag,
    read_policy,
    replaced_policy,
    requested_policy,
    same_bytes,
)
from cloudrun_emulator.lifecycle import Lifecycle
from cloudrun_emulator.listing import page, parse_selector
from cloudrun_emulator.projects import (
    ANY_REGION,
    DEFAULT_REGION,
    LOCATION_LABEL,
    in_scope,
    locations,
    project_number,
    project_resource,
    same_project,
    scope,
    scope_project,
)
from cloudrun_emulator.revisions import Revision, probe_problem, render_revision, revision_env
from cloudrun_emulator.schema import Violation, check_service
from cloudrun_emulator.services import (
    IMMUTABLE_ANNOTATIONS,
    PRINCIPAL,
    Change,
    Service,
    check_annotations,
    check_namespace,
    render_service,
    render_view,
)
from cloudrun_emulator.wire import API_VERSION, now_iso, prune, status_object

__all__ = [
    "ANY_REGION",
    "API_VERSION",
    "DEFAULT_REGION",
    "LOCATION_LABEL",
    "PRINCIPAL",
    "ApiError",
    "Revision",
    "Service",
    "Store",
    "StoredCondition",
    "check_bindings",
    "check_version",
    "default_concurrency",
    "default_startup_probe",
    "default_template",
    "in_scope",
    "invalid",
    "locations",
    "not_found",
    "now_iso",
    "page",
    "parse_selector",
    "probe_problem",
    "project_number",
    "project_resource",
    "prune",
    "revision_env",
    "same_bytes",
    "same_project",
    "scope",
    "scope_project",
    "status_object",
    "url_name_mismatch",
]


class Store(Lifecycle):
    """Services and revisions of every namespace, behind one lock: the API's calls."""

    # ---- services --------------------------------------------------------------------------

    def create_service(
        self, ns: str, body: dict[str, Any], dry_run: bool, region: str = DEFAULT_REGION
    ) -> dict[str, Any]:
        """services.create: validate everything, then store and start the first revision in ``region``."""
        name = body.get("metadata", {}).get("name", "")
        with self.lock:
            problems = check_service(body, name) + check_namespace(ns, body)
            problems += check_annotations(body, None)
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
            problems = check_service(body, meta.get("name", "")) + check_namespace(ns, body)
            problems += url_name_mismatch(meta, name)
            problems += check_annotations(body, current)
            if problems:
                raise invalid(problems)
            check_version(meta, name, current.resource_version)
            change = self._plan(copy.deepcopy(current), body, creating=False)
            return self._commit(change, dry_run, creating=False)

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

    def _render_service(self, service: Service) -> dict[str, Any]:
        """The Service object on the wire."""
        return render_service(service, self._latest_ready(service))

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

    def _render_revision(self, revision: Revision) -> dict[str, Any]:
        """The Revision object on the wire, with its four conditions."""
        return render_revision(revision, self.services.get((revision.namespace, revision.service)))

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
        return render_view(service, kind, self._latest_ready(service))

    # ---- IAM -------------------------------------------------------------------------------

    def get_iam_policy(self, ns: str, name: str, version: int = 0) -> dict[str, Any]:
        """getIamPolicy (``iam.read_policy``)."""
        with self.lock:
            service = self._service(ns, name)
            return read_policy(service.policy, service.etag, version)

    def set_iam_policy(self, ns: str, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """setIamPolicy: whole-policy replace (``iam.requested_policy``, ``iam.replaced_policy``)."""
        version, bindings = requested_policy(request)
        etag = request.get("policy", {}).get("etag")
        with self.lock:
            service = self._service(ns, name)
            service.policy = replaced_policy(service.policy, service.etag, etag, version, bindings)
            service.etag = new_etag()
            return prune({**copy.deepcopy(service.policy), "etag": service.etag})
