"""What the end-to-end suites share, once: a run's inputs against the emulator, the writes a run made,
a service as an operator left it, an operator's read-modify-write, the jobs API read as an operator
would, real users loading a service URL, and a quiet Reporter for rollouts run in-process. (The
emulator client itself is tests/cloudrun.py.)"""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from cloudrun_emulator import Emulator
from deployer.result import Phase
from tests.cloudrun import Api, api_path

# Step and wait timings for the emulator (ready in 0.2 s): a bake of 1 s, a readiness wait that still
# outlasts a loaded machine, and a smoke check that gives up fast.
FAST = {"step_interval": "1s", "wait_timeout": "30s", "smoke_timeout": "4s"}

WRITE_METHODS = ("PUT", "POST")
EVERY_WRITE = ("PUT", "POST", "PATCH", "DELETE")


def target(emu: Emulator, project: str, **extra: Any) -> dict[str, Any]:
    """Where a run goes: the emulator, the test's project, us-central1 (``region=...`` to change)."""
    return {"api_endpoint": emu.url, "project_id": project, "region": "us-central1", **extra}


def inputs(emu: Emulator, project: str, **extra: Any) -> dict[str, Any]:
    """The inputs of a run against the emulator with the FAST timings (``extra`` wins over both)."""
    return target(emu, project, **{**FAST, **extra})


def writes(
    emu: Emulator,
    project: str,
    service: str | None = None,
    *,
    since: float = 0.0,
    methods: tuple[str, ...] = WRITE_METHODS,
    dry_runs: bool = False,
    accepted_only: bool = True,
) -> list[dict[str, Any]]:
    """The write requests the emulator received for the project's services (or one service), in order.

    By default only accepted (200) PUTs and POSTs that were no dry run: the writes that changed
    something. ``methods``, ``dry_runs`` and ``accepted_only`` widen it to every attempt."""
    path = api_path(project, rf"services(?:/{service})?$") if service else api_path(project, "services")
    return [
        r
        for r in emu.requests()
        if r["method"] in methods
        and re.search(path, r["path"])
        and (dry_runs or "dryRun" not in (r.get("query") or ""))
        and (not accepted_only or r["status"] == 200)
        and r["time"] >= since
    ]


def puts(emu: Emulator, project: str, service: str) -> list[dict[str, Any]]:
    """The bodies of the writes our run made, in order (dry runs excluded). A test's project holds
    the service and the writes to it; ``service`` names it for the reader."""
    return [r["body"] for r in writes(emu, project)]


def split_two_revisions(api: Api, name: str) -> None:
    """A service whose traffic another tool pinned and split: 70/30 with extra tags."""
    api.create_service(name, "sample/hello:v1", f"{name}-v1")
    api.replace_service(
        name,
        "sample/hello:v2",
        f"{name}-v2",
        [
            {"revisionName": f"{name}-v1", "percent": 70, "tag": "blue"},
            {"revisionName": f"{name}-v2", "percent": 30, "tag": "green"},
            {"revisionName": f"{name}-v1", "percent": 0, "tag": "old"},
        ],
    )


def as_operator(api: Api, service: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """A read-modify-write of the service, as gcloud or the console would do it (again on a 409)."""
    for _ in range(5):
        svc = api.service(service)
        svc.pop("status", None)
        change(svc)
        resp = requests.put(f"{api.ns}/services/{service}", json=svc, timeout=10)
        if resp.status_code != 409:
            break
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


class Jobs:
    """The jobs API of one project on the emulator, read the way an operator would."""

    def __init__(self, base: str, project: str, region: str | None = None):
        self.ns = f"{base}/apis/run.googleapis.com/v1/namespaces/{project}"
        # Jobs have no location path in v1: a region other than the default is named by the host,
        # as gcloud does (``{region}-localhost``).
        self.headers = {"Host": f"{region}-{urlsplit(base).netloc}"} if region else {}

    def job(self, name: str) -> dict[str, Any]:
        resp = requests.get(f"{self.ns}/jobs/{name}", headers=self.headers, timeout=10)
        resp.raise_for_status()
        return dict(resp.json())

    def execution(self, name: str) -> dict[str, Any]:
        resp = requests.get(f"{self.ns}/executions/{name}", headers=self.headers, timeout=10)
        resp.raise_for_status()
        return dict(resp.json())

    def executions(self, job: str) -> list[dict[str, Any]]:
        params = {"labelSelector": f"run.googleapis.com/job={job}"}
        resp = requests.get(f"{self.ns}/executions", params=params, headers=self.headers, timeout=10)
        return list(resp.json().get("items", []))


# The service of the jobs suites (a shop whose release runs a migration job first).
SHOP = "shop"


def shop_inputs(emu: Emulator, project: str, **extra: Any) -> dict[str, Any]:
    """A rollout of the jobs suites: v2 of the shop, in two steps (``extra`` wins)."""
    defaults = {
        "service": SHOP,
        "image": "sample/hello:v2",
        "suffix": "v2",
        "steps": "50,100",
        "step_interval": "1s",
        "wait_timeout": "60s",
        "smoke_timeout": "5s",
    }
    return target(emu, project, **{**defaults, **extra})


# Three users, each with a request every 100 ms at most: about 30 requests a second, so a 3 s bake at
# 50 % brings the candidate some 45, over every threshold of the analysis suites (min_requests 20 is
# the highest met). Unpaced, the users took most of the suite's CPU.
USERS, PAUSE = 3, 0.1


@contextlib.contextmanager
def load(url: str, pause: float = PAUSE) -> Iterator[None]:
    """Real users: requests to the service URL, each user pausing ``pause`` s between them.

    Plain http.client rather than ``requests`` (much less CPU per request, and these users send
    thousands of requests a session). Each user keeps its connection alive, as browsers and HTTP
    clients do with Cloud Run's front end, and opens another after an error."""
    stop = threading.Event()
    parts = urlsplit(url)
    target = f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"

    def hammer() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
        try:
            while not stop.wait(pause):
                try:
                    conn.request("GET", target)
                    conn.getresponse().read()
                except (OSError, http.client.HTTPException):
                    conn.close()
        finally:
            conn.close()

    workers = [threading.Thread(target=hammer, daemon=True) for _ in range(USERS)]
    for w in workers:
        w.start()
    try:
        yield
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)


class Quiet:
    """A Reporter for a rollout run in-process: keeps what it says and knows the phase it is in."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []
        self.phase = ""

    def phase_started(self, phase: Phase) -> None:
        self.phase = phase.name

    def phase_finished(self, phase: Phase) -> None:
        pass

    def info(self, text: str) -> None:
        self.infos.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)
