"""HTTP front of the emulator: Google's paths, Google's error bodies, faults, the token endpoint.

Everything here is translation: the store decides, this module maps URLs to store calls and
exceptions to ``{"error": {...}}`` bodies, and applies fault rules before a request is served.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloudrun_emulator.dataplane import SERVE_POLL_SECONDS, DataPlane, ServerOfClients, close_server
from cloudrun_emulator.errors import ApiError, invalid
from cloudrun_emulator.faults import FaultRule, Faults, RequestLog
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.jobs import JobStore
from cloudrun_emulator.monitoring import (
    MAX_PAGE_SIZE,
    METRIC_LAG_SECONDS,
    SAMPLING_SECONDS,
    Ingestion,
    time_series,
)
from cloudrun_emulator.projects import ANY_REGION, DEFAULT_REGION, locations, project_resource, scope
from cloudrun_emulator.schema import SchemaError, Violation, validate
from cloudrun_emulator.store import Store
from cloudrun_emulator.wire import prune

RECONCILE_SECONDS = 0.05
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# HTTP status -> canonical error code for injected faults: google/rpc/code.proto's "HTTP Mapping"
# (AIP-193), generic code for a shared status, 412 FAILED_PRECONDITION and 502 UNAVAILABLE (gRPC's
# http-grpc-status-mapping.md) where code.proto has none. The action (deployer/api_errors.py)
# keeps an identical copy: the emulator is a product of its own and must not import the action (nor
# the action the emulator); tests/unit/test_client.py asserts the two are equal.
CANONICAL_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
FAULT_MESSAGES = {
    429: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per region'.",
    503: "The service is currently unavailable.",
}
KNATIVE = re.compile(
    r"^/apis/serving\.knative\.dev/v1/namespaces/(?P<ns>[^/]+)/"
    r"(?P<kind>services|revisions|routes|configurations)(?:/(?P<name>[^/:]+))?/?$"
)
V1_RESOURCE = re.compile(
    r"^/v1/(?:projects|namespaces)/(?P<ns>[^/]+)(?:/locations/[^/]+)?/"
    r"(?P<kind>services|revisions|routes|configurations)(?:/(?P<name>[^/:]+))?/?$"
)
IAM = re.compile(
    r"^/v1/projects/(?P<ns>[^/]+)/locations/[^/]+/services/(?P<name>[^/:]+):(?P<verb>getIamPolicy|setIamPolicy|testIamPermissions)$"
)
LOCATIONS = re.compile(r"^/v1/projects/(?P<ns>[^/]+)/locations/?$")
RUN_V1 = re.compile(
    r"^/apis/run\.googleapis\.com/v1/namespaces/(?P<ns>[^/]+)/"
    r"(?P<kind>jobs|executions|tasks)(?:/(?P<name>[^/:]+)(?::(?P<verb>run|cancel))?)?/?$"
)
PROJECT = re.compile(r"^/v1/projects/(?P<ns>[^/:]+)$")
PATH_REGION = re.compile(r"^/v1/(?:projects|namespaces)/[^/]+/locations/(?P<region>[^/]+)/")
# Cloud Run's regional endpoint is <region>-run.googleapis.com; gcloud derives it by prefixing the
# region to the host of its endpoint override (connection_context.DeriveRegionalEndpoint).
HOST_REGION = re.compile(r"^(?P<region>[a-z]+(?:-[a-z]+)+\d+)-[^:]")


MONITORING_PATH = re.compile(r"^/v3/projects/(?P<project>[^/]+)/timeSeries/?$")
LOCATION_FILTER = re.compile(r'resource\.labels\.location\s*=\s*"([^"]+)"')


@dataclass
class Reply:
    """A response before it is written: status, JSON payload and extra headers."""

    status: int
    payload: Any
    headers: dict[str, str] | None = None


def request_region(path: str, host: str) -> str:
    """The region a request addresses: from a ``locations/R`` path, else the regional host name.

    The Knative-style paths carry no region: Cloud Run takes it from the regional endpoint
    (https://cloud.google.com/run/docs/reference/rest#service-endpoint). A plain host (the
    action's ``api_endpoint``) means the default region.
    """
    match = PATH_REGION.match(path) or HOST_REGION.match(host)
    return match["region"] if match else DEFAULT_REGION


def error_reply(error: ApiError) -> Reply:
    """Google's error body for an ApiError."""
    body: dict[str, Any] = {"code": error.code, "message": error.message, "status": error.status}
    if error.violations:
        # google.rpc.BadRequest: the description says why the field is bad, without repeating the
        # field (https://cloud.google.com/apis/design/errors#error_details); gcloud prints
        # "{field}: {description}" (command_lib/run/exceptions.py), so a repeated field shows twice.
        violations = [
            {"field": v.field, "description": v.description.removeprefix(f"{v.field}: ")}
            for v in error.violations
        ]
        body["details"] = [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}
        ]
    return Reply(error.code, {"error": body})


class Api:
    """Maps a parsed request onto the store; raises ApiError for anything refused."""

    def __init__(self, store: Store, jobs: JobStore) -> None:
        self.store = store
        self.jobs = jobs

    def dispatch(
        self, method: str, path: str, query: Mapping[str, str], body: Any, region: str = DEFAULT_REGION
    ) -> Reply:
        """Route one API request to the project AND region it addresses (``region``: from a
        ``locations/R`` path, else the regional host): a name is unique per project and region."""
        if region == ANY_REGION and method != "GET":
            raise ApiError(400, "INVALID_ARGUMENT", "Location '-' is only valid for listing; name a region.")
        match = IAM.match(path)
        if match:
            return self._iam(method, match, query, body, region)
        match = LOCATIONS.match(path)
        if match and method == "GET":
            return Reply(200, locations(match["ns"]))
        match = PROJECT.match(path)
        if match and method == "GET":
            return Reply(200, project_resource(match["ns"]))
        match = KNATIVE.match(path) or V1_RESOURCE.match(path)
        if match:
            where = scope(match["ns"], region)
            return self._resource(method, where, match["kind"], match["name"], query, body, region)
        match = RUN_V1.match(path)
        if match:
            return Reply(200, self._run_v1(method, match, query, body, region))
        raise ApiError(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")

    def _resource(
        self,
        method: str,
        ns: str,
        kind: str,
        name: str | None,
        query: Mapping[str, str],
        body: Any,
        region: str = DEFAULT_REGION,
    ) -> Reply:
        """Knative resource collections and items."""
        handlers: dict[tuple[str, str, bool], Callable[[], dict[str, Any]]] = {
            ("services", "POST", False): lambda: self._create(ns, query, body, region),
            ("services", "PUT", True): lambda: self._replace(ns, name or "", query, body),
            ("services", "DELETE", True): lambda: self.store.delete_service(ns, name or ""),
            ("revisions", "DELETE", True): lambda: self.store.delete_revision(ns, name or ""),
        }
        handler = handlers.get((kind, method, name is not None))
        if handler is None and method == "GET":
            handler = self._reader(ns, kind, name, query)
        if handler is None:
            raise ApiError(405, "UNIMPLEMENTED", f"Method {method} is not supported on this resource.")
        return Reply(200, handler())

    def _reader(
        self, ns: str, kind: str, name: str | None, query: Mapping[str, str]
    ) -> Callable[[], dict[str, Any]]:
        """GET of one object or a list."""
        store = self.store
        if name is not None:
            if kind == "services":
                return lambda: store.get_service(ns, name)
            if kind == "revisions":
                return lambda: store.get_revision(ns, name)
            return lambda: store.get_view(ns, kind, name)
        selector, token, limit = query.get("labelSelector", ""), query.get("continue", ""), _limit(query)
        if kind == "services":
            return lambda: store.list_services(ns, selector, limit, token)
        if kind == "revisions":
            return lambda: store.list_revisions(ns, selector, limit, token)
        return lambda: store.list_views(ns, kind, selector, limit, token)

    def _create(self, ns: str, query: Mapping[str, str], body: Any, region: str) -> dict[str, Any]:
        """services.create."""
        service = _parse(body, "Service", "service")
        return self.store.create_service(ns, service, _dry_run(query), region)

    def _replace(self, ns: str, name: str, query: Mapping[str, str], body: Any) -> dict[str, Any]:
        """services.replaceService."""
        service = _parse(body, "Service", "service")
        return self.store.replace_service(ns, name, service, _dry_run(query))

    def _run_v1(
        self, method: str, match: re.Match[str], query: Mapping[str, str], body: Any, region: str
    ) -> dict[str, Any]:
        """Jobs, executions and tasks (``apis/run.googleapis.com/v1``): the same strict parsing."""
        ns, kind, name, verb = scope(match["ns"], region), match["kind"], match["name"], match["verb"]
        jobs = self.jobs
        if verb is not None:
            if method != "POST" or (kind, verb) not in (("jobs", "run"), ("executions", "cancel")):
                raise ApiError(405, "UNIMPLEMENTED", f"Method {method} is not supported for {verb}.")
            if verb == "run":
                return jobs.run_job(ns, name, _parse(body, "RunJobRequest", ""))
            _parse(body, "CancelExecutionRequest", "")
            return jobs.cancel_execution(ns, name)
        if method == "GET":
            if name is None:
                selector, token, limit = (
                    query.get("labelSelector", ""),
                    query.get("continue", ""),
                    _limit(query),
                )
                lister = {
                    "jobs": jobs.list_jobs,
                    "executions": jobs.list_executions,
                    "tasks": jobs.list_tasks,
                }
                return lister[kind](ns, selector, limit, token)
            getter = {"jobs": jobs.get_job, "executions": jobs.get_execution, "tasks": jobs.get_task}
            return getter[kind](ns, name)
        if kind == "jobs" and method == "POST" and name is None:
            return jobs.create_job(ns, _parse(body, "Job", "job"), _dry_run(query), region)
        if kind == "jobs" and method == "PUT" and name is not None:
            return jobs.replace_job(ns, name, _parse(body, "Job", "job"), _dry_run(query))
        if method == "DELETE" and name is not None and kind in ("jobs", "executions"):
            return jobs.delete_job(ns, name) if kind == "jobs" else jobs.delete_execution(ns, name)
        raise ApiError(405, "UNIMPLEMENTED", f"Method {method} is not supported on this resource.")

    def _iam(
        self, method: str, match: re.Match[str], query: Mapping[str, str], body: Any, region: str
    ) -> Reply:
        """getIamPolicy (GET, or POST like the gRPC transcoding allows), setIamPolicy, testIamPermissions."""
        ns, name = scope(match["ns"], region), match["name"]
        if match["verb"] == "getIamPolicy" and method in ("GET", "POST"):
            options = (body or {}).get("options") if isinstance(body, dict) else None
            version = query.get("options.requestedPolicyVersion") or str(
                (options or {}).get("requestedPolicyVersion", 0)
            )
            return Reply(200, self.store.get_iam_policy(ns, name, requested_version(version)))
        if match["verb"] == "setIamPolicy" and method == "POST":
            return Reply(200, self.store.set_iam_policy(ns, name, _parse(body, "SetIamPolicyRequest", "")))
        if match["verb"] == "testIamPermissions" and method == "POST":
            request = _parse(body, "TestIamPermissionsRequest", "")
            return Reply(200, test_iam_permissions(request.get("permissions", [])))
        raise ApiError(405, "UNIMPLEMENTED", f"Method {method} is not supported for {match['verb']}.")


def requested_version(text: str) -> int:
    """``options.requestedPolicyVersion``: 0, 1 or 3 ("Requests specifying an invalid value will be
    rejected")."""
    if text not in ("0", "1", "3"):
        message = (
            f"Invalid value at 'options.requested_policy_version' ({text!r}): valid values are 0, 1 and 3."
        )
        raise ApiError(
            400, "INVALID_ARGUMENT", message, [Violation("options.requestedPolicyVersion", message)]
        )
    return int(text)


def test_iam_permissions(permissions: list[str]) -> dict[str, Any]:
    """testIamPermissions: the subset of ``permissions`` the caller holds.

    Follows https://cloud.google.com/run/docs/reference/rest/v1/projects.locations.services/testIamPermissions
    and IAM's TestIamPermissionsRequest (https://cloud.google.com/iam/docs/reference/rest/v1/TestIamPermissionsRequest):
    wildcards are refused. The emulator does not enforce IAM, so the caller holds every permission;
    like Cloud Run it answers for a service that does not exist yet (``gcloud run deploy`` asks
    before creating one, to decide whether to offer ``--allow-unauthenticated``).
    """
    wild = [
        Violation("permissions", f"Permissions with wildcards (*) are not allowed: {p}")
        for p in permissions
        if "*" in p
    ]
    if wild:
        raise invalid(wild)
    return prune({"permissions": list(dict.fromkeys(permissions))})


def _parse(body: Any, schema: str, root: str) -> dict[str, Any]:
    """Schema-check a request body; every violation becomes part of one 400."""
    if body is None:
        body = {}
    try:
        result = validate(body, schema, root)
    except SchemaError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc), exc.violations) from exc
    return result


def _dry_run(query: Mapping[str, str]) -> bool:
    """``dryRun=all`` validates only; any other non-empty value is refused like the real API."""
    value = query.get("dryRun", "")
    if value not in ("", "all"):
        raise invalid([Violation("dryRun", f"dryRun: unsupported value '{value}'; only 'all' is supported")])
    return value == "all"


def _limit(query: Mapping[str, str]) -> int:
    """The ``limit`` list parameter; 0 means no limit."""
    text = query.get("limit", "")
    if not text:
        return 0
    if not text.isdigit():
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value at 'limit' (TYPE_INT32), \"{text}\"")
    return int(text)


# ---- OAuth token endpoint --------------------------------------------------------------------


def token_reply(form: Mapping[str, str]) -> Reply:
    """Mint fake tokens for jwt-bearer and refresh_token grants; signatures are not checked."""
    grant = form.get("grant_type", "")
    if grant == JWT_BEARER:
        claims = _jwt_claims(form.get("assertion", ""))
        if claims is None:
            return _oauth_error("invalid_grant", "Invalid JWT assertion.")
        subject = str(claims.get("sub") or claims.get("iss") or "emulator")
        audience = claims.get("target_audience")
    elif grant == "refresh_token":
        if not form.get("refresh_token"):
            return _oauth_error("invalid_request", "Missing required parameter: refresh_token")
        subject, audience = "authorized-user", form.get("client_id") or None
    else:
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant}")
    payload: dict[str, Any] = {
        "access_token": f"emu-access-{secrets.token_urlsafe(16)}",
        "expires_in": 3600,
        "token_type": "Bearer",
    }
    if audience:
        payload["id_token"] = unsigned_jwt(str(audience), subject)
    return Reply(200, payload)


def _oauth_error(code: str, description: str) -> Reply:
    """OAuth 2.0 error shape (not Google's API error shape: this is the token endpoint)."""
    return Reply(400, {"error": code, "error_description": description})


def _b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs use."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _jwt_claims(assertion: str) -> dict[str, Any] | None:
    """Decode a JWT payload without verifying it; None when it is not a JWT."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def unsigned_jwt(audience: str, subject: str) -> str:
    """A well-formed RS256-shaped ID token with random signature bytes."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"aud": audience, "exp": now + 3600, "iat": now, "iss": "emulator", "sub": subject}
    parts = [_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)]
    return ".".join([*parts, _b64url(os.urandom(256))])


# ---- HTTP ------------------------------------------------------------------------------------


class EmulatorHTTPServer(ServerOfClients):
    """Threading server carrying the emulator's state for its handlers."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    """One request: control endpoints, then faults, then the token endpoint or the API."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body go out in two writes; with Nagle's algorithm the body
    # waits for the client's delayed ACK of the headers, 40 ms on Linux, on most answers of a
    # keep-alive connection. Google's front ends add no such stall, so neither may the emulator.
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record (and tokens must never be printed)."""

    def do_GET(self) -> None:
        """GET."""
        self._handle("GET")

    def do_POST(self) -> None:
        """POST."""
        self._handle("POST")

    def do_PUT(self) -> None:
        """PUT."""
        self._handle("PUT")

    def do_DELETE(self) -> None:
        """DELETE."""
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        """PATCH (Cloud Run v1 has none: answered 405 like any unsupported method)."""
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        """Read, apply faults, dispatch, log, write."""
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        raw = self._read_body()
        emulator = self.server.emulator
        if path.startswith("/_emulator/"):
            self._write(emulator.control(method, path, raw))
            return
        rule = emulator.faults.take(method, path)
        if rule is not None and self._fault(rule, method, path, query, raw):
            return
        if path == "/token":
            self._write(token_reply({k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}))
            return
        monitoring = MONITORING_PATH.match(path)
        if monitoring and method == "GET":
            reply = emulator.time_series(monitoring["project"], parts.query)
            emulator.log.record(method, path, query, None, reply.status)
            self._write(reply)
            return
        reply = emulator.api_call(
            method, path, query, raw, request_region(path, self.headers.get("Host", ""))
        )
        self._write(reply)

    def _read_body(self) -> bytes:
        """The request body (Content-Length only: clients here never stream)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _fault(self, rule: FaultRule, method: str, path: str, query: Mapping[str, str], raw: bytes) -> bool:
        """Apply a fault; True when it replaced the response entirely."""
        if rule.delay:
            time.sleep(rule.delay)
        log = self.server.emulator.log
        if rule.action in ("reset", "hang"):
            if path != "/token":
                log.record(method, path, query, _json_or_text(raw), 0)
            self._drop_connection(reset=rule.action == "reset")
            return True
        if rule.status is None:
            return False
        status_name = CANONICAL_CODES.get(rule.status, "UNKNOWN")
        message = rule.message or FAULT_MESSAGES.get(rule.status, f"Injected fault: HTTP {rule.status}.")
        reply = error_reply(ApiError(rule.status, status_name, message))
        if rule.retry_after is not None:
            reply.headers = {"Retry-After": f"{rule.retry_after:g}"}
        if path != "/token":
            log.record(method, path, query, _json_or_text(raw), rule.status)
        self._write(reply)
        return True

    def _drop_connection(self, reset: bool) -> None:
        """Close without answering; with SO_LINGER 0 the peer sees a TCP reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _write(self, reply: Reply) -> None:
        """Serialise a JSON reply with explicit length (keep-alive friendly)."""
        data = json.dumps(reply.payload).encode("utf-8") + b"\n"  # compact: indent takes pure-Python paths
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _json_or_text(raw: bytes) -> Any:
    """A body for the request log: parsed JSON, else text, else None."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---- the emulator ----------------------------------------------------------------------------


class Emulator:
    """The whole local Cloud Run: API server, control plane, data plane, faults and request log."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        images: Mapping[str, Sequence[str]] | None = None,
        ready_delay: float = 0.5,
        start_timeout: float = 10.0,
        metric_sampling: float = SAMPLING_SECONDS,
        metric_lag: float = METRIC_LAG_SECONDS,
    ) -> None:
        self.ingestion = Ingestion(metric_sampling, metric_lag)
        self.monitoring_page_size = MAX_PAGE_SIZE  # the most series one timeSeries page holds
        self.dataplane = DataPlane(ImageCatalogue(images), host=host, start_timeout=start_timeout)
        self.store = Store(self.dataplane, ready_delay=ready_delay)
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        self.jobs = JobStore(self.dataplane.images, allow_commands=loopback)
        self.api = Api(self.store, self.jobs)
        self.faults = Faults()
        self.log = RequestLog()
        self._httpd = EmulatorHTTPServer((host, port), self)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def url(self) -> str:
        """Base URL for ``api_endpoint``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        """Serve and reconcile in background threads."""
        for target, kwargs, name in (
            (self._httpd.serve_forever, {"poll_interval": SERVE_POLL_SECONDS}, "emulator-http"),
            (self._reconciler, {}, "emulator-rec"),
        ):
            thread = threading.Thread(target=target, kwargs=kwargs, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _reconciler(self) -> None:
        """Move state forward even when nobody reads it (routes must switch on time)."""
        while not self._stop.wait(RECONCILE_SECONDS):
            with contextlib.suppress(Exception):
                self.store.reconcile_all()

    def close(self) -> None:
        """Stop serving, stop every revision process and proxy; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        close_server(self._httpd)  # at once, whatever the poll interval
        for thread in self._threads:
            thread.join(timeout=5)
        self.store.close()
        self.jobs.close()
        self.dataplane.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def requests(self) -> list[dict[str, Any]]:
        """The API calls received so far (not control or token calls)."""
        return self.log.entries()

    def set_ready_delay(self, seconds: float) -> None:
        """How long creations and traffic changes take to become Ready."""
        if seconds < 0:
            raise ValueError("ready_delay must not be negative")
        self.store.ready_delay = seconds

    def time_series(self, project: str, raw_query: str) -> Reply:
        """Cloud Monitoring v3 ``timeSeries.list`` over the requests the data plane really served."""
        query = parse_qs(raw_query, keep_blank_values=True)  # lists: groupByFields repeats
        asked = (query.get("pageSize") or ["0"])[-1]
        smaller = asked.isdigit() and 0 < int(asked) < self.monitoring_page_size
        if self.monitoring_page_size < MAX_PAGE_SIZE and not smaller:
            query["pageSize"] = [str(self.monitoring_page_size)]  # the server may page sooner than asked
        location = LOCATION_FILTER.search(" ".join(query.get("filter", [])))
        status, payload = time_series(
            query,
            self.dataplane.samples(),
            project=project,
            location=location[1] if location else "us-central1",
            now=time.time(),
            ingestion=self.ingestion,
        )
        return Reply(status, payload)

    def configure(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``POST /_emulator/config`` settings; every one is checked before any is applied."""
        deleted = data.get("deleted_images", [])
        if not isinstance(deleted, list) or not all(isinstance(i, str) and i for i in deleted):
            raise ValueError("deleted_images must be a list of image references")
        numbers = {}
        for key in ("ready_delay", "metric_sampling", "metric_lag", "monitoring_page_size"):
            if key in data:
                value = float(data[key])
                low = 1 if key == "monitoring_page_size" else 0
                if not math.isfinite(value) or value < low:
                    raise ValueError(f"{key} must be a finite number >= {low}")
                numbers[key] = value
        if "ready_delay" in numbers:
            self.set_ready_delay(numbers["ready_delay"])
        sampling = numbers.get("metric_sampling", self.ingestion.sampling)
        self.ingestion = Ingestion(sampling, numbers.get("metric_lag", self.ingestion.lag))
        if "monitoring_page_size" in numbers:
            self.monitoring_page_size = int(numbers["monitoring_page_size"])
        if "tag_limit" in data:
            limit = data["tag_limit"]
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ValueError("tag_limit must be an integer >= 1")
            self.store.tag_limit = limit
        for image in deleted:
            self.dataplane.images.delete(image)
        return self.settings()

    def settings(self) -> dict[str, Any]:
        """What ``GET /_emulator/config`` shows."""
        return {
            "ready_delay": self.store.ready_delay,
            "metric_sampling": self.ingestion.sampling,
            "metric_lag": self.ingestion.lag,
            "monitoring_page_size": self.monitoring_page_size,
            "tag_limit": self.store.tag_limit,
            "deleted_images": self.dataplane.images.deleted,
        }

    def api_call(
        self, method: str, path: str, query: Mapping[str, str], raw: bytes, region: str = DEFAULT_REGION
    ) -> Reply:
        """Serve one API request and log it."""
        body: Any = None
        try:
            body = _json_body(raw)
            reply = self.api.dispatch(method, path, query, body, region)
        except ApiError as error:
            reply = error_reply(error)
        self.log.record(method, path, query, body if body is not None else _json_or_text(raw), reply.status)
        return reply

    def control(self, method: str, path: str, raw: bytes) -> Reply:
        """The ``/_emulator/*`` endpoints for out-of-process tests."""
        try:
            data = _json_body(raw) or {}
            return self._control(method, path, data)
        except ApiError as error:
            return error_reply(error)
        except (ValueError, TypeError) as exc:
            return error_reply(ApiError(400, "INVALID_ARGUMENT", str(exc)))

    def _control(self, method: str, path: str, data: Any) -> Reply:
        """Dispatch a control call."""
        if path == "/_emulator/faults" and method == "POST":
            return Reply(200, self.faults.add_json(data).to_json())
        if path == "/_emulator/faults" and method == "GET":
            return Reply(200, [rule.to_json() for rule in self.faults.rules()])
        if path == "/_emulator/faults" and method == "DELETE":
            self.faults.clear()
            return Reply(200, {})
        if path == "/_emulator/requests" and method == "GET":
            return Reply(200, self.requests())
        if path == "/_emulator/requests" and method == "DELETE":
            self.log.clear()
            return Reply(200, {})
        if path == "/_emulator/config" and method == "POST":
            return Reply(200, self.configure(data))
        if path == "/_emulator/config" and method == "GET":
            return Reply(200, self.settings())
        raise ApiError(404, "NOT_FOUND", f"No control endpoint {method} {path}.")


def _json_body(raw: bytes) -> Any:
    """Parse a JSON request body; 400 in Google's words when it is not JSON."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        message = f"Invalid JSON payload received. {exc}."
        raise ApiError(400, "INVALID_ARGUMENT", message, [Violation("", message)]) from exc
