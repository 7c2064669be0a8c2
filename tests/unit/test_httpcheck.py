"""run-canary-http, the HTTP check for check_command: arguments, exit codes, and what it prints."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployer import httpcheck

SECRET = "env-value-9f8e7d"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            sent = self.rfile.read(length).decode() if length else ""
            status = int(self.path.split("/status/", 1)[1][:3]) if "/status/" in self.path else 200
            auth = self.headers.get("X-Token", "-")
            body = f"method={self.command} auth={auth} data={sent} DB_PASSWORD={SECRET}"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = do_DELETE = _answer

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = httpcheck.main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_statuses_and_methods(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([f"{server}/ok"], capsys)[0] == 0
    code, text = run(["GET", f"{server}/status/503"], capsys)
    assert code == 1 and "-> 503" in text and "expected 200-399" in text
    assert run([f"{server}/status/503", "--status", "500-599"], capsys)[0] == 0
    assert run(["delete", f"{server}/status/204", "--status", "204"], capsys)[0] == 0
    code, text = run([f"{server}/x", "--data", "hello", "--body", "method=POST .* data=hello"], capsys)
    assert code == 0 and text.startswith("POST ")
    assert run([f"{server}/x", "--header", "X-Token: abc", "--body", "auth=abc"], capsys)[0] == 0


def test_body_and_headers_are_never_printed(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(
        [f"{server}/x?key=q{SECRET}", "--header", f"X-Token: {SECRET}", "--body", "nope"], capsys
    )
    assert code == 1 and "body did not match" in text and "not shown" in text
    assert SECRET not in text and "?…" in text


def test_connection_errors_exit_1_without_the_query(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run([f"http://127.0.0.1:9/x?token={SECRET}", "--timeout", "2"], capsys)
    assert code == 1 and "ConnectionError" in text and SECRET not in text


@pytest.mark.parametrize(
    "argv",
    [
        ["ftp://example.com/x"],
        ["FETCH", "http://127.0.0.1/"],
        ["http://127.0.0.1/", "--status", "2xx"],
        ["http://127.0.0.1/", "--status", "399-200"],
        ["http://127.0.0.1/", "--header", "no colon"],
        ["http://127.0.0.1/", "--body", "("],
        ["http://127.0.0.1/", "--timeout", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(argv, capsys)
    assert code == 2 and text.startswith("run-canary-http: ")
