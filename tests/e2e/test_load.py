"""load_rps: a steady, bounded, cancellable trickle of GETs on the tag URLs while a bake lasts."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from deployer import load
from deployer.errors import AuthError
from deployer.settings import SmokeAuth
from deployer.smoke import TokenRule


def token() -> str:
    return "t"


class Recorder:
    def __init__(self, delay: float = 0.0, private: bool = False) -> None:
        self.delay = delay
        self.private = private  # 403 without a token, as Cloud Run answers for a private service
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
            if recorder.private and not self.headers.get("Authorization"):
                self.send_response(403)
            else:
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
            (url_a, url_b), 40, "/ok", session=session, auth=lambda url: TokenRule(SmokeAuth.ID_TOKEN, token)
        ) as report,
    ):
        time.sleep(1.0)
    sent = sum(recorder.paths.values())
    assert 30 <= sent <= 45  # 40 a second for one second, give or take the machine
    per_url = sorted(recorder.paths.values())
    assert per_url[1] - per_url[0] <= 1  # taking turns
    assert set(recorder.tokens) == {"Bearer t"}
    text = report()
    where = f"{url_a}/ok, {url_b}/ok"
    assert text == f"load_rps 40: sent {sent} GET requests to {where}: {sent} 2xx, {sent} with an ID token"
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


def test_a_private_service_gets_a_token_after_its_first_403_as_the_smoke_check_does() -> None:
    recorder = Recorder(private=True)
    server, url = server_for(recorder)
    rule = TokenRule(SmokeAuth.AUTO, token)  # one per URL for the whole run (deployer.main)
    try:
        with requests.Session() as session:
            with load.running((url,), 20, "/ok", session=session, auth=lambda u: rule) as first:
                time.sleep(0.5)
            with load.running((url,), 20, "/ok", session=session, auth=lambda u: rule) as second:
                time.sleep(0.3)  # the next bake: the URL is known to want a token
    finally:
        server.shutdown()
        server.server_close()
    one = re.fullmatch(
        rf"load_rps 20: sent (\d+) GET requests to {url}/ok: (\d+) 2xx, (\d+) 4xx, (\d+) with an ID token",
        first(),
    )
    two = re.fullmatch(
        rf"load_rps 20: sent (\d+) GET requests to {url}/ok: (\d+) 2xx, (\d+) with an ID token", second()
    )
    assert one and two, (first(), second())
    sent, ok, refused, with_token = (int(n) for n in one.groups())
    # Only what was in flight before the first 403 came back went without a token (one, unless the
    # machine stalled); from then on every request carried one, in the next bake too.
    assert recorder.tokens[0] is None and 1 <= refused <= 3 and ok == with_token == sent - refused
    assert recorder.tokens.count(None) == refused and int(two[1]) == int(two[2]) == int(two[3])
    assert sent + int(two[1]) == len(recorder.tokens)  # what the server saw


def test_a_public_service_gets_no_token() -> None:
    recorder = Recorder()
    server, url = server_for(recorder)

    def never() -> str:
        raise AssertionError("minted a token for a public service")

    try:
        with (
            requests.Session() as session,
            load.running(
                (url,), 20, "/ok", session=session, auth=lambda u: TokenRule(SmokeAuth.AUTO, never)
            ) as report,
        ):
            time.sleep(0.4)
    finally:
        server.shutdown()
        server.server_close()
    assert recorder.tokens and set(recorder.tokens) == {None}
    assert "with an ID token" not in report() and " 2xx" in report()


def test_a_token_that_cannot_be_minted_is_reported_and_nothing_is_counted_as_sent() -> None:
    """The request never left: the report says so, and why, without any token text."""
    recorder = Recorder(private=True)
    server, url = server_for(recorder)

    def fails() -> str:
        raise AuthError(f"cannot mint an ID token for {url} with service_account.Credentials credentials")

    try:
        with (
            requests.Session() as session,
            load.running(
                (url,), 20, "/ok", session=session, auth=lambda u: TokenRule(SmokeAuth.ID_TOKEN, fails)
            ) as report,
        ):
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
    assert recorder.tokens == []  # nothing reached the server
    text = report()
    unsent = re.search(r": (\d+) not sent \(", text)
    assert text.startswith(f"load_rps 20: sent 0 GET requests to {url}/ok: ") and unsent, text
    assert int(unsent[1]) >= 5
    assert f"could not get an ID token: cannot mint an ID token for {url}" in text
    assert "Bearer" not in text and "no answer" not in text
