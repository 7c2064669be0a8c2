"""A scripted loopback server for the CloudRun client's unit tests: it answers from a queue of replies
and records every request; ``make`` builds a client on it with short retry timings. The fixtures
(``server``, ``no_jitter``) are in tests/unit/conftest.py."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from deployer.client import CloudRun, RetryPolicy

PROJECT = "proj"
REGION = "us-central1"
NS = f"/apis/serving.knative.dev/v1/namespaces/{PROJECT}"  # at a regional endpoint
LOC = f"/v1/projects/{PROJECT}/locations/{REGION}"  # through an endpoint override
SECRET = "ya29.SECRET-TOKEN-VALUE"
FAST = RetryPolicy(
    attempts=6, base_delay=0.01, max_delay=0.05, total=10.0, connect_timeout=1.0, read_timeout=0.4
)

# ---- scripted loopback server ---------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Reply = Any  # (status, body[, headers]) | "reset" | ("hang", seconds) | callable(Req) -> Reply


@dataclass
class ScriptedServer:
    """Answers from a queue of scripted replies, then from ``default``; records every request."""

    queue: list[Reply] = field(default_factory=list)
    default: Callable[[Req], Reply] = lambda req: (404, {"error": {"code": 404, "status": "NOT_FOUND"}})
    requests: list[Req] = field(default_factory=list)
    url: str = ""

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def reply_for(self, req: Req) -> Reply:
        self.requests.append(req)
        reply = self.queue.pop(0) if self.queue else self.default
        while callable(reply):
            reply = reply(req)
        return reply


def handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            req = Req(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
            reply = server.reply_for(req)
            if reply == "reset":
                # RST instead of FIN: the client sees "connection reset by peer"
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(reply, tuple) and reply[0] == "hang":
                time.sleep(reply[1])
                self.close_connection = True
                return
            status, payload, *rest = reply
            headers = rest[0] if rest else {}
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            ctype = "text/html" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

    return Handler


@contextlib.contextmanager
def serving() -> Iterator[ScriptedServer]:
    """A ScriptedServer listening on loopback until the block ends."""
    scripted = ScriptedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(scripted))
    httpd.daemon_threads = True
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        httpd.shutdown()
        httpd.server_close()


def make(server: ScriptedServer, **kw: Any) -> tuple[CloudRun, list[float], list[str]]:
    delays: list[float] = []
    logs: list[str] = []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {SECRET}"
    kw.setdefault("policy", FAST)
    api = CloudRun(
        session,
        region=REGION,
        project=PROJECT,
        api_endpoint=server.url,
        sleep=delays.append,
        log=logs.append,
        **kw,
    )
    return api, delays, logs
