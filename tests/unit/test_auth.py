"""Credentials and ID tokens against a loopback token endpoint (no Google servers involved)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import google.auth.compute_engine._metadata as gce_metadata
import google.auth.iam
import pytest
import requests
from google.auth import credentials as ga_credentials
from google.auth import impersonated_credentials
from google.oauth2 import service_account

from deployer.auth import (
    AuthError,
    IdTokens,
    IdTokenSource,
    authorized_session,
    is_loopback,
    jwt_expiry,
    service_audience,
)

EMAIL = "deployer@key-project.iam.gserviceaccount.com"
AUDIENCE = "https://svc-abc123-uc.a.run.app"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.{b64(b'sig')}"


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class TokenServer:
    """POST /token (OAuth JWT-bearer grant), POST /iam/EMAIL:generateIdToken, GET /api (echo auth)."""

    def __init__(self) -> None:
        self.issued = 0
        self.id_token_ttl = 3600
        self.api_auth: list[str | None] = []
        self.iam_bodies: list[dict[str, Any]] = []
        self.iam_auth: list[str | None] = []
        self.url = ""

    def id_token(self, audience: str) -> str:
        self.issued += 1
        now = int(time.time())
        claims = {"aud": audience, "iss": "https://accounts.google.com", "email": EMAIL}
        return unsigned_jwt({**claims, "iat": now, "exp": now + self.id_token_ttl, "n": self.issued})

    def handle(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/token":
            form = parse_qs(raw.decode())
            claims = jwt_claims(form["assertion"][0])
            if "target_audience" in claims:
                return 200, {"id_token": self.id_token(claims["target_audience"])}
            self.issued += 1
            return 200, {"access_token": f"access-{self.issued}", "expires_in": 3600, "token_type": "Bearer"}
        if method == "POST" and path.startswith("/iam/") and path.endswith(":generateIdToken"):
            body = json.loads(raw)
            self.iam_bodies.append(body)
            self.iam_auth.append(headers.get("Authorization"))
            return 200, {"token": self.id_token(body["audience"])}
        if method == "GET" and path == "/api":
            self.api_auth.append(headers.get("Authorization"))
            return 200, {"ok": True}
        return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": path}}


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    state = TokenServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = state.handle(self.command, self.path, self.headers, raw)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No ambient credentials: no env file, an empty gcloud config, no metadata server."""
    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "CLOUDSDK_CORE_PROJECT",
        "NO_GCE_CHECK",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setattr(gce_metadata, "_NO_GCE_CHECK", True)  # never probe a real metadata server
    return monkeypatch


@pytest.fixture
def key_file(
    tmp_path: Path, token_server: TokenServer, private_key_pem: str, clean_env: pytest.MonkeyPatch
) -> Path:
    info = {
        "type": "service_account",
        "project_id": "key-project",
        "private_key_id": "kid-1",
        "private_key": private_key_pem,
        "client_email": EMAIL,
        "client_id": "1234",
        "token_uri": f"{token_server.url}/token",
    }
    path = tmp_path / "gha-creds-test.json"
    path.write_text(json.dumps(info))
    clean_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


def test_is_loopback() -> None:
    assert is_loopback("http://127.0.0.1:8080")
    assert is_loopback("http://localhost:1")
    assert is_loopback("http://[::1]:9")
    assert not is_loopback("https://run.googleapis.com")
    assert not is_loopback("http://10.0.0.1")
    assert not is_loopback(None)
    # RFC 6761 section 6.3: every name under .localhost is a loopback name
    assert is_loopback("http://emulator.localhost:8080") and is_loopback("http://LOCALHOST.:1")
    assert not is_loopback("http://localhost.example.com") and not is_loopback("http://notlocalhost")


def test_authorized_session_sends_bearer_and_uses_key_project(
    key_file: Path, token_server: TokenServer
) -> None:
    session, project, creds = authorized_session(token_server.url, None)
    assert project == "key-project"
    assert isinstance(creds, service_account.Credentials)
    assert session.get(f"{token_server.url}/api", timeout=5).status_code == 200
    assert token_server.api_auth == ["Bearer access-1"]


def test_project_input_wins(key_file: Path, token_server: TokenServer) -> None:
    _, project, _ = authorized_session(None, "explicit")
    assert project == "explicit"


def test_loopback_without_credentials_is_anonymous(
    clean_env: pytest.MonkeyPatch, token_server: TokenServer
) -> None:
    clean_env.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    session, project, creds = authorized_session(token_server.url, None)
    assert creds is None  # anonymous
    assert type(session) is requests.Session
    assert project == "env-project"
    session.get(f"{token_server.url}/api", timeout=5)
    assert token_server.api_auth == [None]


def test_loopback_with_missing_key_file_is_anonymous(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nowhere.json"))
    _, project, creds = authorized_session("http://127.0.0.1:9", "p")
    assert creds is None and project == "p"


def test_remote_endpoint_without_credentials_is_a_clear_error(clean_env: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    with pytest.raises(AuthError) as info:
        authorized_session(None, "p")
    assert "google-github-actions/auth" in str(info.value)
    with pytest.raises(AuthError):
        authorized_session("https://psc.example.internal", "p")
    assert time.monotonic() - started < 5


def test_id_token_from_key_is_cached_then_refreshed(key_file: Path, token_server: TokenServer) -> None:
    _, _, creds = authorized_session(None, None)
    assert creds is not None
    masked: list[str] = []
    now = [time.time()]
    source = IdTokenSource(creds, AUDIENCE, mask=masked.append, clock=lambda: now[0])
    first = source.token()
    claims = jwt_claims(first)
    assert claims["aud"] == AUDIENCE and claims["email"] == EMAIL
    assert source.token() == first  # still valid: no new request
    assert token_server.issued == 1
    now[0] += 3600  # past expiry
    second = source.token()
    assert second != first and token_server.issued == 2
    assert masked == [first, second]


def test_id_token_short_lived_refreshes(key_file: Path, token_server: TokenServer) -> None:
    token_server.id_token_ttl = 30  # inside the refresh margin: every call mints a new one
    _, _, creds = authorized_session(None, None)
    assert creds is not None
    source = IdTokenSource(creds, AUDIENCE)
    assert source.token() != source.token()
    assert jwt_expiry(source.token()) == pytest.approx(time.time() + 30, abs=5)


def test_id_token_via_impersonation(
    key_file: Path, token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        google.auth.iam, "_IAM_IDTOKEN_ENDPOINT", token_server.url + "/iam/{}:generateIdToken"
    )
    source_creds = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    target = impersonated_credentials.Credentials(
        source_credentials=source_creds,
        target_principal="runner@other.iam.gserviceaccount.com",
        target_scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    masked: list[str] = []
    token = IdTokenSource(target, AUDIENCE, mask=masked.append).token()
    assert jwt_claims(token)["aud"] == AUDIENCE
    assert token_server.iam_bodies == [{"audience": AUDIENCE, "delegates": None, "includeEmail": True}]
    assert token_server.iam_auth[0] is not None and token_server.iam_auth[0].startswith("Bearer access-")
    assert masked == [token]


def test_id_token_impossible_names_the_role() -> None:
    source = IdTokenSource(ga_credentials.AnonymousCredentials(), AUDIENCE)
    with pytest.raises(AuthError) as info:
        source.token()
    assert "roles/iam.serviceAccountTokenCreator" in str(info.value)
    assert AUDIENCE in str(info.value)


def test_id_tokens_build_one_source_per_audience_and_only_when_a_token_is_asked_for(
    key_file: Path, token_server: TokenServer
) -> None:
    """The smoke check and load_rps ask for a token per request: one source (and one mint) per
    audience, however often and from however many threads."""
    _, _, creds = authorized_session(None, None)
    assert creds is not None
    built: list[str] = []

    def source(audience: str) -> IdTokenSource:
        built.append(audience)
        return IdTokenSource(creds, audience)

    tokens = IdTokens(creds, source=source)
    canary = tokens.for_url("https://canary---svc-abc123-uc.a.run.app")
    baseline = tokens.for_url("https://baseline---svc-abc123-uc.a.run.app")
    assert built == [] and token_server.issued == 0  # a public service never needs one
    threads = [threading.Thread(target=get) for get in [canary, baseline] * 8]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert canary() == baseline() == tokens.for_url(AUDIENCE)()  # one audience: the service URL
    assert built == [AUDIENCE] and token_server.issued == 1
    tokens.for_url("https://other-xyz-uc.a.run.app")()
    assert built == [AUDIENCE, "https://other-xyz-uc.a.run.app"] and token_server.issued == 2


def test_the_audience_of_a_tag_url_is_its_service_url() -> None:
    assert service_audience("https://canary---svc-abc123-uc.a.run.app/healthz?x=1") == AUDIENCE
    assert service_audience(AUDIENCE + "/") == AUDIENCE
    assert service_audience("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
