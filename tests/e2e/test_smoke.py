"""Smoke checks against a scripted loopback service."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployer.client import Cancelled
from deployer.settings import SmokeAuth, SmokeSettings, StatusRanges
from deployer.smoke import check

TOKEN = "eyJ.ID-TOKEN-SECRET.sig"


@dataclass
class Service:
    """Answers ``replies`` in order, then ``default``; records path and Authorization of each GET."""

    replies: list[tuple[int, str]] = field(default_factory=list)
    default: Callable[[str | None], tuple[int, str]] = lambda auth: (200, "ok")
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, auth: str | None) -> tuple[int, str]:
        self.seen.append((path, auth))
        return self.replies.pop(0) if self.replies else self.default(auth)


@pytest.fixture
def svc() -> Iterator[Service]:
    state = Service()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            status, body = state.answer(self.path, self.headers.get("Authorization"))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def settings(**kw: Any) -> SmokeSettings:
    kw.setdefault("timeout", 2.0)
    return SmokeSettings(**kw)


def test_pass_first_time(svc: Service) -> None:
    result = check(svc.url, settings(path="/healthz"))
    assert result.ok and result.status == 200 and result.attempts == 1
    assert svc.seen == [("/healthz", None)]
    assert result.detail.startswith(f"GET {svc.url}/healthz -> 200 after 1 attempt in ")


def test_wrong_status_retried_then_pass(svc: Service) -> None:
    svc.replies = [(503, "starting"), (502, "starting")]
    logs: list[str] = []
    result = check(svc.url, settings(), log=logs.append)
    assert result.ok and result.attempts == 3
    assert f"GET {svc.url}/ -> 503 (expected 200-399); retrying in 0.5 s" in logs[0]
    assert "retrying in 1.0 s" in logs[1]


def test_custom_statuses(svc: Service) -> None:
    svc.default = lambda auth: (204, "")
    assert check(svc.url, settings(statuses=StatusRanges(((204, 204),)))).ok
    result = check(svc.url, settings(statuses=StatusRanges(((200, 200),)), timeout=0.3))
    assert not result.ok and result.status == 204
    assert "204 (expected 200)" in result.detail


def test_body_mismatch_fails_with_clear_detail(svc: Service) -> None:
    svc.default = lambda auth: (200, "status: degraded " + "x" * 500)
    result = check(svc.url, settings(body=re.compile(r"\bok\b"), timeout=1.0))
    assert not result.ok and result.status == 200
    assert "body did not match '\\\\bok\\\\b'" in result.detail
    assert "517 characters" in result.detail
    assert "degraded" not in result.detail  # never the body: it may echo the environment


def test_body_match_passes(svc: Service) -> None:
    svc.default = lambda auth: (200, '{"status": "ok"}')
    assert check(svc.url, settings(body=re.compile(r'"status":\s*"ok"'))).ok


def test_timeout_respected(svc: Service) -> None:
    svc.default = lambda auth: (503, "down")
    started = time.monotonic()
    result = check(svc.url, settings(timeout=1.5))
    elapsed = time.monotonic() - started
    assert not result.ok and result.status == 503
    assert 1.4 <= elapsed < 2.5
    assert result.attempts >= 3  # 0, 0.5, 1.5 (0.5 + 1.0 backoff)
    assert re.fullmatch(
        rf"GET {re.escape(svc.url)}/ -> 503 \(expected 200-399\) after \d+ attempts in 1\.\d s", result.detail
    )


def test_deadline_wins_over_timeout(svc: Service) -> None:
    svc.default = lambda auth: (500, "no")
    started = time.monotonic()
    result = check(svc.url, settings(timeout=30), deadline=time.monotonic() + 0.6)
    assert not result.ok and time.monotonic() - started < 1.5


def test_connection_errors_are_failed_attempts() -> None:
    result = check("http://127.0.0.1:9", settings(timeout=0.8))
    assert not result.ok and result.status is None and result.attempts >= 2
    assert "connection error" in result.detail


def test_auto_switches_to_bearer_after_401(svc: Service) -> None:
    svc.default = lambda auth: (200, "ok") if auth == f"Bearer {TOKEN}" else (401, "who are you")
    logs: list[str] = []
    result = check(svc.url, settings(auth=SmokeAuth.AUTO), id_token=lambda: TOKEN, log=logs.append)
    assert result.ok and result.attempts == 2
    assert [auth for _, auth in svc.seen] == [None, f"Bearer {TOKEN}"]
    assert all(TOKEN not in line for line in logs) and TOKEN not in result.detail


def test_auto_switches_after_403_and_keeps_token(svc: Service) -> None:
    svc.replies = [(403, "forbidden"), (503, "warming")]
    result = check(svc.url, settings(), id_token=lambda: TOKEN)
    assert result.ok
    assert [auth for _, auth in svc.seen] == [None, f"Bearer {TOKEN}", f"Bearer {TOKEN}"]


def test_none_never_sends_token(svc: Service) -> None:
    svc.default = lambda auth: (401, "no")
    called: list[int] = []

    def token() -> str:
        called.append(1)
        return TOKEN

    result = check(svc.url, settings(auth=SmokeAuth.NONE, timeout=0.8), id_token=token)
    assert not result.ok and result.status == 401
    assert called == [] and all(auth is None for _, auth in svc.seen)


def test_id_token_mode_always_sends(svc: Service) -> None:
    result = check(svc.url, settings(auth=SmokeAuth.ID_TOKEN), id_token=lambda: TOKEN)
    assert result.ok and svc.seen == [("/", f"Bearer {TOKEN}")]


def test_id_token_mode_without_source_fails_fast(svc: Service) -> None:
    result = check(svc.url, settings(auth=SmokeAuth.ID_TOKEN, timeout=10))
    assert not result.ok and result.elapsed < 1 and "no ID token source" in result.detail


def test_token_echoed_in_body_is_not_in_detail(svc: Service) -> None:
    svc.default = lambda auth: (200, f"you sent {auth}")
    logs: list[str] = []
    result = check(
        svc.url,
        settings(auth=SmokeAuth.ID_TOKEN, body=re.compile("^ok$"), timeout=0.6),
        id_token=lambda: TOKEN,
        log=logs.append,
    )
    assert not result.ok and "not shown" in result.detail and "you sent" not in result.detail
    assert TOKEN not in result.detail and all(TOKEN not in line for line in logs)


def test_should_stop_cancels(svc: Service) -> None:
    svc.default = lambda auth: (503, "down")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        check(svc.url, settings(timeout=30), should_stop=stop.is_set)
    assert time.monotonic() - started < 1.0
