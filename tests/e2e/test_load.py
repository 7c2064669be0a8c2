"""load_rps: a steady, bounded, cancellable trickle of GETs on the tag URLs while a bake lasts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from deployer import load


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.paths: Counter[str] = Counter()
        self.tokens: list[str | None] = []
        self.lock = threading.Lock()


def server_for(recorder: Recorder) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(recorder.delay)
            with recorder.lock:
                recorder.paths[f"{self.headers.get('Host')}{self.path}"] += 1
                recorder.tokens.append(self.headers.get("Authorization"))
            self.send_response(200 if "ok" in self.path else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def two() -> Iterator[tuple[Recorder, str, str]]:
    recorder = Recorder()
    a, url_a = server_for(recorder)
    b, url_b = server_for(recorder)
    yield recorder, url_a, url_b
    for s in (a, b):
        s.shutdown()
        s.server_close()


def test_the_rate_is_split_evenly_between_the_tag_urls_and_reported(two: tuple[Recorder, str, str]) -> None:
    recorder, url_a, url_b = two
    with (
        requests.Session() as session,
        load.running(
            (url_a, url_b), 40, "/ok", session=session, headers=lambda url: {"Authorization": "Bearer t"}
        ) as report,
    ):
        time.sleep(1.0)
    sent = sum(recorder.paths.values())
    assert 30 <= sent <= 45  # 40 a second for one second, give or take the machine
    per_url = sorted(recorder.paths.values())
    assert per_url[1] - per_url[0] <= 1  # taking turns
    assert set(recorder.tokens) == {"Bearer t"}
    text = report()
    assert text.startswith(f"load_rps 40: sent {sent} GET requests to {url_a}/ok, {url_b}/ok: {sent} 2xx")
    time.sleep(0.3)
    assert sum(recorder.paths.values()) == sent  # stopped with the block


def test_answers_are_counted_by_class() -> None:
    recorder = Recorder()
    server, url = server_for(recorder)
    try:
        with requests.Session() as session, load.running((url,), 20, "/bad", session=session) as report:
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
    assert " 5xx" in report() and "2xx" not in report()


def test_no_rate_sends_nothing() -> None:
    with (
        requests.Session() as session,
        load.running(("http://127.0.0.1:9",), None, "/", session=session) as report,
    ):
        time.sleep(0.1)
    assert report() == ""


def test_cancellation_stops_it_at_once(two: tuple[Recorder, str, str]) -> None:
    recorder, url_a, _ = two
    stop = threading.Event()
    with (
        requests.Session() as session,
        load.running((url_a,), 50, "/ok", session=session, should_stop=stop.is_set),
    ):
        time.sleep(0.3)
        stop.set()
        time.sleep(0.1)
        sent = sum(recorder.paths.values())
        time.sleep(0.4)
        assert sum(recorder.paths.values()) <= sent + load.MAX_IN_FLIGHT  # only those already in flight


def test_requests_in_flight_are_bounded() -> None:
    recorder = Recorder(delay=0.6)
    server, url = server_for(recorder)
    try:
        with requests.Session() as session, load.running((url,), 100, "/ok", session=session) as report:
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
    text = report()
    assert f"sent {load.MAX_IN_FLIGHT} GET" in text and "skipped" in text
