"""Revisions on a data plane, for the data plane's tests: a revision of service "web" in project
"my-project" (``run``), started and waited for until it is healthy (``start_ready``)."""

from __future__ import annotations

import time

from cloudrun_emulator.dataplane import DataPlane, Health, RevisionRun

KEY = "my-project/web"  # the route key of service "web" in project "my-project"


def run(name: str, image: str = "sample/hello", env: dict[str, str] | None = None) -> RevisionRun:
    return RevisionRun(name=name, service="web", configuration="web", image=image, env=env or {})


def wait_health(plane: DataPlane, revision: str, timeout: float = 8.0) -> Health:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = plane.health(revision)
        if health.status != "Unknown":
            return health
        time.sleep(0.02)
    raise AssertionError(f"{revision} still Unknown after {timeout}s")


def start_ready(plane: DataPlane, revision: RevisionRun) -> None:
    plane.start_revision(revision)
    assert wait_health(plane, revision.name) == Health("True")
