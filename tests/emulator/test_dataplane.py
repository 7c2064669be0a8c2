"""Data plane: revisions run as processes, loopback URLs, weighted split, health and samples."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from cloudrun_emulator import samples
from cloudrun_emulator.dataplane import DataPlane, RevisionRun
from cloudrun_emulator.images import ImageCatalogue
from tests.emulator.revisions import KEY, run, start_ready, wait_health

ECHO_APP = textwrap.dedent(
    """
    import json, os
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = json.dumps({
                "port": os.environ["PORT"],
                "revision": os.environ["K_REVISION"],
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "body": body.decode(),
                "connection": self.headers.get("Connection"),
            }).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-App", "echo")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _reply

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
    """
)


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST" if data is not None else "GET", target, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "", parts.port or 80), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    dp = DataPlane(ImageCatalogue(), start_timeout=8.0)
    yield dp
    dp.close()


def test_tag_url_reaches_its_revision_and_sees_revision_env(plane: DataPlane) -> None:
    start_ready(plane, run("web-00001-abc", "sample/hello:v1", {"GREETING": "hi"}))
    start_ready(plane, run("web-00002-def", "us-docker.pkg.dev/cloudrun/container/hello", {"COLOR": "blue"}))
    urls = plane.route(KEY, [("web-00001-abc", 100)], {"cand": "web-00002-def", "old": "web-00001-abc"})

    status, body = fetch(urls.tags["cand"] + "/some/path?x=1")
    assert status == 200
    assert body["revision"] == "web-00002-def"
    assert body["service"] == "web"
    assert body["image"] == "us-docker.pkg.dev/cloudrun/container/hello"
    assert body["message"] == "Hello from web-00002-def"
    assert body["env"] == {"COLOR": "blue"}  # only what the revision defines, nothing inherited

    assert fetch(urls.tags["old"])[1]["env"] == {"GREETING": "hi"}
    assert fetch(urls.url)[1]["revision"] == "web-00001-abc"
    assert fetch(urls.url + "/healthz")[0] == 200
    assert urls.url.startswith("http://127.0.0.1:")


def test_split_90_10_is_exact_over_300_requests(plane: DataPlane) -> None:
    start_ready(plane, run("web-a"))
    start_ready(plane, run("web-b"))
    urls = plane.route(KEY, [("web-a", 90), ("web-b", 10)], {})
    since = time.time()

    counts = Counter(fetch(urls.url)[1]["revision"] for _ in range(300))

    assert counts == {"web-a": 270, "web-b": 30}
    samples = plane.samples(since)
    assert Counter(s.revision for s in samples) == {"web-a": 270, "web-b": 30}
    assert {s.service for s in samples} == {"web"} and {s.status for s in samples} == {200}


def test_reconfiguring_a_route_keeps_ports_and_closes_dropped_tags(plane: DataPlane) -> None:
    start_ready(plane, run("web-a"))
    start_ready(plane, run("web-b"))
    first = plane.route(KEY, [("web-a", 100)], {"keep": "web-a", "drop": "web-a"})

    second = plane.route(KEY, [("web-b", 100)], {"keep": "web-b", "new": "web-b"})

    assert second.url == first.url
    assert second.tags["keep"] == first.tags["keep"]
    assert set(second.tags) == {"keep", "new"}
    assert fetch(second.url)[1]["revision"] == "web-b"
    assert fetch(second.tags["keep"])[1]["revision"] == "web-b"
    assert fetch(second.tags["new"])[1]["revision"] == "web-b"
    assert refused(first.tags["drop"])

    plane.remove_route(KEY)
    assert refused(first.url)


def test_unknown_image_is_container_missing_at_once(plane: DataPlane) -> None:
    plane.start_revision(run("web-x", "gcr.io/nope/app:1"))

    health = plane.health("web-x")

    assert health.status == "False"
    assert health.reason == "ContainerMissing"
    assert health.message == "Image 'gcr.io/nope/app:1' not found."


def test_crash_is_health_check_container_error_with_its_output(plane: DataPlane) -> None:
    plane.start_revision(run("web-crash", "sample/crash:latest"))

    health = wait_health(plane, "web-crash")

    assert health.status == "False"
    assert health.reason == "HealthCheckContainerError"
    assert health.message is not None
    assert "failed to start and listen on the port" in health.message
    assert "simulated crash" in health.message


def test_not_listening_in_time_is_health_check_container_error(tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(30)\n")
    images = ImageCatalogue({"my/sleeper": [sys.executable, str(script)]})
    with DataPlane(images, start_timeout=0.5) as dp:
        dp.start_revision(run("web-sleepy", "my/sleeper"))
        health = wait_health(dp, "web-sleepy")
        assert (health.status, health.reason) == ("False", "HealthCheckContainerError")
        assert "PORT=" in (health.message or "")


def test_user_mapping_runs_a_script_that_sees_port_and_revision(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(ECHO_APP)
    ref, argv = ImageCatalogue.parse_mapping(f"my/app={sys.executable} {script}")
    with DataPlane(ImageCatalogue({ref: argv})) as dp:
        start_ready(dp, run("web-user", "my/app:v2@sha256:" + "a" * 64))
        urls = dp.route(KEY, [("web-user", 100)], {})

        status, body = fetch(urls.url + "/p?q=1", data=b"payload", headers={"Connection": "keep-alive"})

    assert status == 201
    assert body["revision"] == "web-user"
    assert body["port"].isdigit() and body["port"] != urls.url.rsplit(":", 1)[1]
    assert (body["method"], body["path"], body["body"]) == ("POST", "/p?q=1", "payload")
    assert body["host"] == urls.url.removeprefix("http://")
    assert body["connection"] is None  # hop-by-hop headers are not forwarded


def test_error_rate_gives_exact_share_of_500s(plane: DataPlane) -> None:
    start_ready(plane, run("web-err", "sample/error", {"ERROR_RATE": "0.25"}))
    urls = plane.route(KEY, [("web-err", 100)], {"t": "web-err"})

    statuses = Counter(fetch(urls.tags["t"])[0] for _ in range(100))

    assert statuses == {200: 75, 500: 25}
    assert Counter(s.status for s in plane.samples()) == {200: 75, 500: 25}


def test_slow_sample_latency_is_recorded(plane: DataPlane) -> None:
    start_ready(plane, run("web-slow", "sample/slow", {"DELAY_MS": "300"}))
    urls = plane.route(KEY, [("web-slow", 100)], {})

    assert fetch(urls.url)[0] == 200

    [sample] = plane.samples()
    assert sample.revision == "web-slow" and sample.status == 200
    assert sample.latency_ms >= 300


def test_no_traffic_or_unhealthy_revision_answers_503(plane: DataPlane) -> None:
    plane.start_revision(run("web-missing", "nope/nope"))
    empty = plane.route("p/empty", [], {})
    broken = plane.route(KEY, [("web-missing", 100)], {})

    status, body = fetch(empty.url)
    assert status == 503 and body["error"]["status"] == "UNAVAILABLE"
    status, body = fetch(broken.url)
    assert status == 503 and "web-missing" in body["error"]["message"]


def test_stop_revision_ends_its_process(plane: DataPlane) -> None:
    start_ready(plane, run("web-stop"))
    urls = plane.route(KEY, [("web-stop", 100)], {})
    pid = plane._instances["web-stop"].process.pid  # type: ignore[union-attr]

    plane.stop_revision("web-stop")

    assert not _alive(pid)
    assert plane.health("web-stop").status == "Unknown"
    assert fetch(urls.url)[0] == 503


def test_start_is_idempotent_for_the_same_name(plane: DataPlane) -> None:
    start_ready(plane, run("web-once"))
    pid = plane._instances["web-once"].process.pid  # type: ignore[union-attr]

    plane.start_revision(run("web-once"))

    assert plane._instances["web-once"].process.pid == pid  # type: ignore[union-attr]


def test_close_leaves_no_child_processes() -> None:
    dp = DataPlane(ImageCatalogue())
    for name in ("web-1", "web-2", "web-3"):
        start_ready(dp, run(name))
    urls = dp.route(KEY, [("web-1", 50), ("web-2", 50)], {"t": "web-3"})
    pids = [i.process.pid for i in dp._instances.values() if i.process]

    dp.close()
    dp.close()  # idempotent

    assert len(pids) == 3
    assert not any(_alive(pid) for pid in pids)
    assert refused(urls.url) and refused(urls.tags["t"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- image catalogue ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    ["my/app", "my/app:v2", "my/app@sha256:" + "0" * 64, "my/app:v2@sha256:" + "0" * 64],
)
def test_user_mapping_matches_any_tag_or_digest(image: str) -> None:
    assert ImageCatalogue({"my/app": ["run-me"]}).resolve(image) == ["run-me"]


def test_exact_mapping_and_registry_port_are_not_mistaken_for_tags() -> None:
    images = ImageCatalogue({"localhost:5000/app:v1": ["v1"], "localhost:5000/app": ["any"]})
    assert images.resolve("localhost:5000/app:v1") == ["v1"]
    assert images.resolve("localhost:5000/app:v9") == ["any"]
    assert images.resolve("localhost:5000/other") is None


def test_builtins_resolve_with_tags_and_unknowns_do_not() -> None:
    images = ImageCatalogue()
    expected = [sys.executable, "-S", str(Path(samples.__file__)), "hello"]
    assert images.resolve("sample/hello") == expected
    assert images.resolve("us-docker.pkg.dev/cloudrun/container/hello:latest") == expected
    assert images.resolve("sample/slow@sha256:" + "1" * 64) == [*expected[:-1], "slow"]
    assert images.resolve("sample/nope") is None
    assert ImageCatalogue({"sample/hello": ["mine"]}).resolve("sample/hello:1") == ["mine"]


def test_parse_mapping() -> None:
    parsed = ImageCatalogue.parse_mapping("my/app=python 'my app.py' --x")
    assert parsed == ("my/app", ["python", "my app.py", "--x"])
    for bad in ("no-equals", "=python app.py", "my/app=", "my/app=python 'unclosed"):
        with pytest.raises(ValueError, match=r"invalid image mapping"):
            ImageCatalogue.parse_mapping(bad)


def test_same_revision_name_in_two_projects_runs_two_instances(plane: DataPlane) -> None:
    """Namespaces isolate projects: each project's revision is its own process, with its own env."""
    for ns, color in (("proj-a", "red"), ("proj-b", "blue")):
        plane.start_revision(RevisionRun("web-v1", "web", "web", "sample/hello", {"COLOR": color}, ns))
    urls = {}
    for ns in ("proj-a", "proj-b"):
        assert wait_health(plane, f"{ns}/web-v1").status == "True"
        urls[ns] = plane.route(f"{ns}/web", [("web-v1", 100)], {}).url
    assert requests.get(urls["proj-a"], timeout=5).json()["env"]["COLOR"] == "red"
    assert requests.get(urls["proj-b"], timeout=5).json()["env"]["COLOR"] == "blue"
    assert {s.revision for s in plane.samples()} >= {"web-v1"}


def _get(conn: http.client.HTTPConnection, path: str = "/") -> tuple[int, dict]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def test_a_kept_alive_connection_follows_each_traffic_change(plane: DataPlane) -> None:
    """Keep-alive as Google's front end: one client connection, routed request by request."""
    start_ready(plane, run("web-a"))
    start_ready(plane, run("web-b"))
    urls = plane.route(KEY, [("web-a", 100)], {})
    parts = urlsplit(urls.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        assert _get(conn)[1]["revision"] == "web-a"
        first = conn.sock
        plane.route(KEY, [("web-b", 100)], {})
        assert _get(conn)[1]["revision"] == "web-b"
        assert conn.sock is first  # the same connection served both
    finally:
        conn.close()


def test_a_removed_url_answers_nothing_more_on_a_kept_alive_connection(plane: DataPlane) -> None:
    start_ready(plane, run("web-a"))
    urls = plane.route(KEY, [("web-a", 100)], {"gone": "web-a"})
    parts = urlsplit(urls.tags["gone"])
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        assert _get(conn)[0] == 200
        plane.route(KEY, [("web-a", 100)], {})  # the tag is removed
        with pytest.raises((OSError, http.client.HTTPException)):  # the same connection: no answer
            _get(conn)
    finally:
        conn.close()


def test_an_instance_that_restarted_is_reached_afresh(plane: DataPlane) -> None:
    """The front end's idle connection to a stopped instance is not reused for its successor."""
    start_ready(plane, run("web-a"))
    urls = plane.route(KEY, [("web-a", 100)], {})
    assert fetch(urls.url)[0] == 200
    plane.stop_revision("web-a")
    start_ready(plane, run("web-a"))
    since = time.time()
    assert [fetch(urls.url)[0] for _ in range(3)] == [200, 200, 200]
    assert [s.status for s in plane.samples(since)] == [200, 200, 200]
