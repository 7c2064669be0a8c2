"""The canary analysis' world against real loopback servers: the emulator's data plane with revisions
that served real requests, and a loopback Cloud Monitoring (``Monitoring``) that answers
timeSeries.list over its samples, with injected failures. The fixtures (``world``, ``fast_analysis``)
are in tests/e2e/conftest.py."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cloudrun_emulator.dataplane import DataPlane, Health, RevisionRun
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.monitoring import Ingestion, time_series
from deployer import analysis


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Monitoring:
    """A loopback Cloud Monitoring: time_series over the data plane's samples, plus injected failures."""

    plane: DataPlane
    failures: list[int] = field(default_factory=list)  # statuses to answer before serving
    calls: list[dict[str, list[str]]] = field(default_factory=list)
    retry_after: str | None = None  # sent with injected 429s
    lock: threading.Lock = field(default_factory=threading.Lock)
    ingestion: Ingestion = field(default_factory=lambda: Ingestion(0, 0))  # data at once: figures only

    def answer(self, path: str, raw_query: str) -> tuple[int, dict[str, Any]]:
        q = parse_qs(raw_query, keep_blank_values=True)
        with self.lock:
            self.calls.append(q)
            if self.failures:
                status = self.failures.pop(0)
                return status, {
                    "error": {"code": status, "message": "backend unavailable", "status": "UNAVAILABLE"}
                }
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v3", "projects"] or parts[3] != "timeSeries":
            return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
        return time_series(
            q,
            self.plane.samples(),
            project=parts[2],
            location="us-central1",
            now=time.time(),
            ingestion=self.ingestion,
        )


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}"


def reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class World:
    plane: DataPlane
    monitoring: Monitoring
    monitoring_url: str
    urls: dict[str, str]
    started: float


REVISIONS = {
    "web-hello": ("sample/hello", {}),
    "web-error": ("sample/error", {"ERROR_RATE": "0.3"}),
    "web-slow": ("sample/slow", {"DELAY_MS": "300"}),
}


def wait_ready(plane: DataPlane, name: str) -> None:
    deadline = time.monotonic() + 10
    while plane.health(name).status == "Unknown" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert plane.health(name) == Health("True")


@contextlib.contextmanager
def build_world() -> Iterator[World]:
    """A data plane with three revisions of "web" in "proj" (hello, error, slow) that served 60 real
    requests, and a loopback Cloud Monitoring over its samples."""
    plane = DataPlane(ImageCatalogue(), start_timeout=10.0)
    runs = [
        RevisionRun(name, "web", "web", image, dict(env), "proj") for name, (image, env) in REVISIONS.items()
    ]
    for run in runs:
        plane.start_revision(run)
    for run in runs:
        wait_ready(plane, run.key)
    route = plane.route(
        "proj/web", [("web-hello", 34), ("web-error", 33), ("web-slow", 33)], {"hello": "web-hello"}
    )
    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: requests.get(route.url + "/", timeout=10).status_code, range(60)))
    assert statuses.count(500) == 6  # 30 % of the ~20 requests web-error served
    monitoring = Monitoring(plane)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, body = monitoring.answer(parts.path, parts.query)
            extra = (
                {"Retry-After": monitoring.retry_after} if status == 429 and monitoring.retry_after else {}
            )
            reply(self, status, json.dumps(body).encode(), extra)

    server, url = serve(Handler)
    try:
        yield World(plane, monitoring, url, {"service": route.url, "hello": route.tags["hello"]}, started)
    finally:
        server.shutdown()
        server.server_close()
        plane.close()


def fast_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """No metric lag, and monitoring retries at once."""
    monkeypatch.setattr(analysis, "METRIC_LAG_SECONDS", 0.0)
    quick = replace(analysis.MONITORING_POLICY, base_delay=0.01, max_delay=0.01)
    monkeypatch.setattr(analysis, "MONITORING_POLICY", quick)
