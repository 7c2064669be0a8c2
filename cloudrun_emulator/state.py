"""The store's state: every service and revision behind one lock, and the lookups all its parts share.

One lock guards everything (requests arrive on many threads). ``lifecycle`` moves the objects forward,
``store`` answers the API's calls; both build on this class.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable

from cloudrun_emulator import quotas
from cloudrun_emulator.dataplane import DataPlane
from cloudrun_emulator.errors import not_found
from cloudrun_emulator.revisions import Revision
from cloudrun_emulator.services import Service


class StoreState:
    """Services and revisions of every project and region, their counters and lookups."""

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

    def _service(self, ns: str, name: str) -> Service:
        """Look a service up or raise 404."""
        service = self.services.get((ns, name))
        if service is None:
            raise not_found("Resource", name)
        return service

    def _revision(self, ns: str, name: str) -> Revision:
        """Look a revision up or raise 404."""
        revision = self.revisions.get((ns, name))
        if revision is None:
            raise not_found("Revision", name)
        return revision

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

    def close(self) -> None:
        """Forget everything (the data plane is closed by its owner)."""
        with self.lock:
            self.services.clear()
            self.revisions.clear()
            self._of_service.clear()
