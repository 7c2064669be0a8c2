"""Secrets that reach the action through its inputs or from the service never leave it: not in the
log, the outputs, the saved state, the env file or the step summary. One test per way in: a webhook
URL with a token (in requests' error text, in an answer that echoes it), YAML errors in env_vars and
secrets (alias `*` and tag `!`), and a smoke-check body that echoes the revision's environment.
"""

from __future__ import annotations

import base64
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudrun_emulator import Emulator
from deployer import redact
from devtools import harness
from tests.cloudrun import Api
from tests.helpers import target

SECRET = "S3cr3tT0kenValue9f8e7d6c"


def assert_nowhere(result: harness.RunResult, secret: str = SECRET) -> None:
    """The secret is in none of the places the runner shows or keeps."""
    places = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "outputs": repr(result.outputs),
        "state": repr(result.state),
        "env file": repr(result.env_file),
        "summary": result.summary,
    }
    for where, text in places.items():
        assert secret not in text, f"{secret!r} in {where}:\n{text}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A webhook endpoint that answers 500 and echoes the request line it got (path and query)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            # As many frameworks' 404 pages: the path as routed, percent-decoded.
            routed = urllib.parse.unquote(self.path)
            auth = self.headers.get("Authorization", "-")
            body = f"cannot handle {self.requestline} ({routed}) from {auth}".encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rollout_inputs(emulator: Emulator, project: str, service: str, **extra: str) -> dict[str, str]:
    rollout = {"service": service, "image": "sample/hello:v2", "steps": "50,100", "step_interval": "1s"}
    return target(emulator, project, **{**rollout, "smoke_path": "/healthz", **extra})


# --- check_webhook ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "webhook",
    [
        "http://127.0.0.1:{port}/hooks/canary?token={secret}",
        "http://hook-user:{secret}@127.0.0.1:{port}/hooks/canary",
        "http://127.0.0.1:{port}/services/T000/B000/{secret}",
    ],
    ids=["query", "userinfo", "path"],
)
def test_webhook_url_never_printed_when_the_request_fails(
    emulator: Emulator, project: str, tmp_path: Path, webhook: str
) -> None:
    Api(emulator.url, project).create_service("hooked", "sample/hello:v1", "hooked-v1")
    url = webhook.format(port=_closed_port(), secret=SECRET)
    result = harness.run(rollout_inputs(emulator, project, "hooked", check_webhook=url), tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back"
    assert "check_webhook request to http://127.0.0.1:" in result.stdout  # the failure is explained
    assert "ConnectionError" in result.stdout
    assert_nowhere(result)


def test_webhook_url_never_printed_when_the_answer_echoes_it(
    emulator: Emulator, project: str, tmp_path: Path, echo_server: str
) -> None:
    Api(emulator.url, project).create_service("echoed", "sample/hello:v1", "echoed-v1")
    url = f"{echo_server}/hooks/canary?token={SECRET}"
    result = harness.run(rollout_inputs(emulator, project, "echoed", check_webhook=url), tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert "check_webhook answered 500" in result.stdout
    assert_nowhere(result)


def test_webhook_token_never_printed_when_the_answer_echoes_it_decoded(
    emulator: Emulator, project: str, tmp_path: Path, echo_server: str
) -> None:
    """Finding 9 of issue 23: a token with ``+``, ``/`` and ``=`` is written percent-encoded; an
    endpoint that echoes the decoded path used to put it in the log and the summary as it is."""
    Api(emulator.url, project).create_service("decoded", "sample/hello:v1", "decoded-v1")
    token = "Zk9x+Yq/Ab7R" + SECRET + "=="
    url = f"{echo_server}/hooks/T0/{urllib.parse.quote(token, safe='')}"
    result = harness.run(rollout_inputs(emulator, project, "decoded", check_webhook=url), tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert "check_webhook answered 500" in result.stdout
    assert_nowhere(result, token)
    assert_nowhere(result)


def test_scrub_hides_every_encoding_of_the_secret() -> None:
    token = "Zk9x+Yq/Ab7R=="
    url = f"https://hooks.example.com/hooks/T0/{urllib.parse.quote(token, safe='')}?k=a+b%20c"
    for form in (token, urllib.parse.quote(token, safe=""), "k=a b c", "k=a+b c"):
        assert form not in redact.scrub(f"answer: {form} end", url), form
    basic = base64.b64encode(b"user:pa55word").decode()
    assert basic not in redact.scrub(
        f"Authorization: Basic {basic}", "https://user:pa55word@hooks.example.com/x"
    )
    assert redact.scrub("no secret here", url) == "no secret here"


def test_scrub_keeps_the_origin_and_hides_the_rest() -> None:
    url = f"https://u:{SECRET}@hooks.example.com:8443/services/{SECRET}x?token={SECRET}#{SECRET}"
    text = f"POST {url} failed; Max retries exceeded with url: /services/{SECRET}x?token={SECRET} (x)"
    scrubbed = redact.scrub(text, url)
    assert SECRET not in scrubbed
    assert "https://hooks.example.com:8443" in scrubbed
    assert redact.url_origin(url) == "https://hooks.example.com:8443"
    assert redact.redact_url(url) == f"https://…@hooks.example.com:8443/services/{SECRET}x?…#…"
    assert redact.redact_urls(f"see http://a.example/p?k={SECRET} and url: /q?k={SECRET} end") == (
        "see http://a.example/p?… and url: /q?… end"
    )


# --- YAML in env_vars and secrets -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["env_vars", "secrets"])
@pytest.mark.parametrize(
    "text",
    [
        f"PASSWORD: *{SECRET}\n",  # an alias that was never anchored
        f"PASSWORD: !{SECRET} value\n",  # an unknown tag
        f"PASSWORD: !!python/object:{SECRET} x\n",
        f"A: &{SECRET} x\nB: *{SECRET}x\n",
        f'PASSWORD: "{SECRET}\n',  # an unclosed quote
        f"PASSWORD: [{SECRET}\n",
    ],
    ids=["alias", "tag", "python-tag", "anchor", "quote", "flow"],
)
def test_yaml_errors_never_quote_values(
    emulator: Emulator, project: str, tmp_path: Path, name: str, text: str
) -> None:
    before = len(emulator.requests())
    inputs = {
        "service": "yaml-app",
        "image": "sample/hello",
        "project_id": project,
        "api_endpoint": emulator.url,
    }
    result = harness.run({**inputs, name: text}, tmp_path=tmp_path)
    assert result.returncode != 0, result.log
    assert f"input '{name}'" in result.stdout and "is not valid YAML" in result.stdout, result.log
    assert "line " in result.stdout  # where, without what
    assert_nowhere(result)
    assert len(emulator.requests()) == before  # rejected before any API call


# --- smoke body that echoes the environment -------------------------------------------------------


def test_smoke_body_mismatch_never_shows_the_revisions_environment(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    # sample/hello answers {"revision", "service", "image", "env": {...}}: every env var of the revision.
    Api(emulator.url, project).create_service("echo-env", "sample/hello:v1", "echo-env-v1")
    inputs = rollout_inputs(
        emulator,
        project,
        "echo-env",
        smoke_path="/",
        smoke_body="no such text",
        smoke_timeout="2s",
        env_vars=f"DB_PASSWORD={SECRET}\nLOG_LEVEL=info",
    )
    result = harness.run(inputs, tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back"
    assert "body did not match" in result.stdout and "not shown" in result.stdout
    assert_nowhere(result)
    # The secret really was there to leak: the candidate revision's body carries it (the rollback put
    # the service's template back as it was, so read the revision itself).
    candidate = Api(emulator.url, project).revision(result.outputs["revision"]).json()
    env = candidate["spec"]["containers"][0]["env"]
    assert {"name": "DB_PASSWORD", "value": SECRET} in env
