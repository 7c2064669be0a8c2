"""The lifecycle of services and revisions: readiness, generations, conditions and routing.

Readiness is not simulated by sleeping: each object records when it changed, and ``reconcile``
(called before every read and by a background thread) moves it forward once ``ready_delay`` has
passed and the data plane agrees.
"""

from __future__ import annotations

from typing import Any

from cloudrun_emulator.dataplane import instance_key
from cloudrun_emulator.revisions import Revision, probe_problem
from cloudrun_emulator.services import Service
from cloudrun_emulator.state import StoreState


class Lifecycle(StoreState):
    """Moves services and revisions forward: Knative's reconciler, run on reads and by a thread."""

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

    def _reconcile_parent(self, revision: Revision) -> None:
        """Reading a revision moves its service (and so the revision) forward."""
        service = self.services.get((revision.namespace, revision.service))
        if service is not None:
            self._reconcile(service)
        else:
            self._reconcile_revision(revision, self.clock())
