"""A loopback fake of the GitHub REST endpoints the action uses (deployments, statuses, PR comments).

Enough of the real response shapes for PyGithub 2.x to parse them: ``id``, ``url`` (PyGithub follows
it for later calls), ``created_at``/``updated_at``, ``user``. Supports a path prefix (``/api/v3``)
to look like GitHub Enterprise, a request log, and injected failures.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    """``with FakeGitHub(token="t") as gh: Github(base_url=gh.url, ...)``."""

    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 - a fake's fixed credential
        *,
        prefix: str = "",
        owner_login: str = "github-actions[bot]",
    ):
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.login = owner_login
        self.requests: list[dict[str, Any]] = []
        self.deployments: dict[int, dict[str, Any]] = {}
        self.statuses: dict[int, list[dict[str, Any]]] = {}
        self.comments: dict[int, dict[str, Any]] = {}  # id -> comment (with "_issue")
        self.faults: list[Fault] = []
        self._ids = 1000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """Base API URL (what ``GITHUB_API_URL`` would hold)."""
        return self.root + self.prefix

    # -- helpers for tests -------------------------------------------------------------------
    def fail(self, method: str, path: str, status: int = 500, times: int = 1) -> None:
        """Answer ``status`` to the next ``times`` requests whose path matches the regex."""
        self.faults.append(Fault(method.upper(), re.compile(path), status, times))

    def add_comment(self, issue: int, body: str, login: str = "someone") -> dict[str, Any]:
        return self._new_comment("o/r", issue, body, login)

    def job_deployment(self, repo: str, sha: str, environment: str, job_url: str) -> int:
        """What GitHub does for a job with ``environment:``: a deployment of the job's commit, in
        progress, its status linking to the job (``.../actions/runs/<run id>/job/<job id>``)."""
        did, sid = self.next_id(), self.next_id()
        base = f"{self.url}/repos/{repo}/deployments/{did}"
        self.deployments[did] = {
            "id": did,
            "url": base,
            "statuses_url": f"{base}/statuses",
            "sha": sha,
            "ref": sha,
            "task": "deploy",
            "payload": {},
            "environment": environment,
            "original_environment": environment,
            "description": None,
            "transient_environment": False,
            "production_environment": False,
            "creator": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "created_at": _now(),
            "updated_at": _now(),
        }
        status = {
            "id": sid,
            "url": f"{base}/statuses/{sid}",
            "state": "in_progress",
            "environment": environment,
            "target_url": job_url,
            "log_url": job_url,
            "environment_url": "",
            "description": "",
            "created_at": _now(),
        }
        self.statuses[did] = [status]
        return did

    def comments_on(self, issue: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["_issue"] == issue]

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _new_comment(self, repo: str, issue: int, body: str, login: str) -> dict[str, Any]:
        cid = self.next_id()
        comment = {
            "id": cid,
            "node_id": f"IC_{cid}",
            "url": f"{self.url}/repos/{repo}/issues/comments/{cid}",
            "html_url": f"https://github.example/{repo}/pull/{issue}#issuecomment-{cid}",
            "issue_url": f"{self.url}/repos/{repo}/issues/{issue}",
            "body": body,
            "user": {"login": login, "id": 41898282, "type": "Bot" if login.endswith("[bot]") else "User"},
            "created_at": _now(),
            "updated_at": _now(),
            "_issue": issue,
        }
        self.comments[cid] = comment
        return comment

    def take_fault(self, method: str, path: str) -> int | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.path.search(path):
                    fault.times -= 1
                    return fault.status
        return None


DEPLOYMENT_FILTERS = frozenset({"sha", "ref", "task", "environment"})


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    repo = r"/repos/(?P<repo>[^/]+/[^/]+)"
    routes: list[tuple[str, re.Pattern[str], str]] = [
        ("GET", re.compile(repo + r"$"), "get_repo"),
        ("POST", re.compile(repo + r"/deployments$"), "create_deployment"),
        ("GET", re.compile(repo + r"/deployments$"), "list_deployments"),
        ("GET", re.compile(repo + r"/deployments/(?P<id>\d+)$"), "get_deployment"),
        ("POST", re.compile(repo + r"/deployments/(?P<id>\d+)/statuses$"), "create_status"),
        ("GET", re.compile(repo + r"/deployments/(?P<id>\d+)/statuses$"), "list_statuses"),
        ("GET", re.compile(repo + r"/issues/(?P<n>\d+)/comments$"), "list_comments"),
        ("POST", re.compile(repo + r"/issues/(?P<n>\d+)/comments$"), "create_comment"),
        ("PATCH", re.compile(repo + r"/issues/comments/(?P<id>\d+)$"), "edit_comment"),
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            path, _, query = self.path.partition("?")
            self.query = {k: v[-1] for k, v in parse_qs(query).items()}
            fake.requests.append(
                {"method": method, "path": path, "json": body, "headers": dict(self.headers.items())}
            )
            auth = self.headers.get("Authorization", "")
            if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                return self._send(401, {"message": "Bad credentials"})
            if fake.prefix:
                if not path.startswith(fake.prefix + "/"):
                    return self._send(404, {"message": "Not Found"})
                path = path[len(fake.prefix) :]
            status = fake.take_fault(method, path)
            if status is not None:
                return self._send(status, {"message": f"injected {status}"})
            for verb, pattern, name in routes:
                match = pattern.match(path)
                if verb == method and match:
                    code, payload = getattr(self, name)(body or {}, **match.groupdict())
                    return self._send(code, payload)
            return self._send(404, {"message": "Not Found"})

        # -- routes ------------------------------------------------------------------------
        def get_repo(self, body: dict[str, Any], repo: str) -> tuple[int, Any]:
            owner, name = repo.split("/")
            return 200, {
                "id": 1,
                "name": name,
                "full_name": repo,
                "owner": {"login": owner, "id": 2, "type": "User"},
                "url": f"{fake.url}/repos/{repo}",
                "html_url": f"https://github.example/{repo}",
                "private": False,
                "default_branch": "main",
            }

        def create_deployment(self, body: dict[str, Any], repo: str) -> tuple[int, Any]:
            if not body.get("ref"):
                return 422, {"message": "ref is required"}
            did = fake.next_id()
            deployment = {
                "id": did,
                "node_id": f"DE_{did}",
                "url": f"{fake.url}/repos/{repo}/deployments/{did}",
                "statuses_url": f"{fake.url}/repos/{repo}/deployments/{did}/statuses",
                "repository_url": f"{fake.url}/repos/{repo}",
                "sha": body["ref"],
                "ref": body["ref"],
                "task": body.get("task", "deploy"),
                "payload": body.get("payload", {}),
                "environment": body.get("environment", "production"),
                "original_environment": body.get("environment", "production"),
                "description": body.get("description"),
                "transient_environment": body.get("transient_environment", False),
                "production_environment": body.get("production_environment", False),
                "creator": {"login": fake.login, "id": 41898282, "type": "Bot"},
                "created_at": _now(),
                "updated_at": _now(),
            }
            fake.deployments[did] = deployment
            fake.statuses[did] = []
            return 201, deployment

        def list_deployments(self, body: dict[str, Any], repo: str) -> tuple[int, Any]:
            """Newest first, filtered by ``sha``, ``ref``, ``task`` and ``environment`` like GitHub."""
            found = [
                d
                for d in sorted(fake.deployments.values(), key=lambda d: -d["id"])
                if all(d.get(key) == value for key, value in self.query.items() if key in DEPLOYMENT_FILTERS)
            ]
            return 200, found[: int(self.query.get("per_page", 30))]

        def get_deployment(self, body: dict[str, Any], repo: str, id: str) -> tuple[int, Any]:
            deployment = fake.deployments.get(int(id))
            return (200, deployment) if deployment else (404, {"message": "Not Found"})

        def create_status(self, body: dict[str, Any], repo: str, id: str) -> tuple[int, Any]:
            did = int(id)
            if did not in fake.deployments:
                return 404, {"message": "Not Found"}
            valid = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
            if body.get("state") not in valid:
                return 422, {"message": f"invalid state {body.get('state')!r}"}
            if len(body.get("description") or "") > 140:
                return 422, {"message": "description is too long (maximum is 140 characters)"}
            sid = fake.next_id()
            status = {
                "id": sid,
                "node_id": f"DES_{sid}",
                "url": f"{fake.url}/repos/{repo}/deployments/{did}/statuses/{sid}",
                "deployment_url": f"{fake.url}/repos/{repo}/deployments/{did}",
                "repository_url": f"{fake.url}/repos/{repo}",
                "state": body["state"],
                "description": body.get("description", ""),
                "environment": body.get("environment", fake.deployments[did]["environment"]),
                "environment_url": body.get("environment_url", ""),
                "target_url": body.get("target_url", body.get("log_url", "")),
                "log_url": body.get("log_url", body.get("target_url", "")),
                "creator": {"login": fake.login, "id": 41898282, "type": "Bot"},
                "created_at": _now(),
                "updated_at": _now(),
            }
            fake.statuses[did].insert(0, status)  # newest first, like GitHub
            return 201, status

        def list_statuses(self, body: dict[str, Any], repo: str, id: str) -> tuple[int, Any]:
            did = int(id)
            if did not in fake.statuses:
                return 404, {"message": "Not Found"}
            return 200, fake.statuses[did]

        def list_comments(self, body: dict[str, Any], repo: str, n: str) -> tuple[int, Any]:
            return 200, [_public(c) for c in fake.comments_on(int(n))]

        def create_comment(self, body: dict[str, Any], repo: str, n: str) -> tuple[int, Any]:
            if not body.get("body"):
                return 422, {"message": "body is required"}
            return 201, _public(fake._new_comment(repo, int(n), body["body"], fake.login))

        def edit_comment(self, body: dict[str, Any], repo: str, id: str) -> tuple[int, Any]:
            comment = fake.comments.get(int(id))
            if comment is None:
                return 404, {"message": "Not Found"}
            if comment["user"]["login"] != fake.login:
                return 403, {"message": "Resource not accessible by integration"}
            comment["body"] = body.get("body", comment["body"])
            comment["updated_at"] = _now()
            return 200, _public(comment)

        # -- plumbing ----------------------------------------------------------------------
        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
