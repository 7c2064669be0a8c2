"""CloudRun client against a scripted loopback server.

Against the emulator: tests/e2e/test_client_emulator.py."""

from __future__ import annotations

import copy
import email.utils
import json
import socket
import threading
import time
from typing import Any

import pytest
import requests

from deployer.client import (
    CANONICAL_CODES,
    ApiError,
    Cancelled,
    CloudRun,
    Conflict,
    NotFound,
    RetryPolicy,
    TransportError,
    error_from_response,
    write_landed,
)
from tests.unit.scripted import (
    FAST,
    LOC,
    NS,
    PROJECT,
    REGION,
    SECRET,
    Reply,
    Req,
    ScriptedServer,
    make,
)

# The retries below expect the full backoff (the cap), not a random share of it.
pytestmark = pytest.mark.usefixtures("no_jitter")


def gerr(
    code: int, status: str, message: str = "boom", violations: list[dict[str, str]] | None = None
) -> dict:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if violations:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}
        ]
    return {"error": err}


def service(name: str = "svc", rv: str = "1", revision: str = "svc-00001-abc", traffic: Any = None) -> dict:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": PROJECT, "resourceVersion": rv, "annotations": {}},
        "spec": {
            "template": {"metadata": {"name": revision}, "spec": {"containers": [{"image": "sample/hello"}]}},
            "traffic": traffic or [{"latestRevision": True, "percent": 100}],
        },
    }


# ---- retries --------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured(server: ScriptedServer) -> None:
    server.queue = [(429, gerr(429, "RESOURCE_EXHAUSTED"), {"Retry-After": "2"}), (200, service())]
    api, delays, logs = make(server)
    got = api.get_service("svc")
    assert got is not None and got["metadata"]["name"] == "svc"
    assert delays == [2.0]
    assert api.request_count == {"read": 2, "write": 0}
    assert logs == [
        f"429 RESOURCE_EXHAUSTED on GET .../services/svc; retrying in 2.0 s (attempt 2/{FAST.attempts})"
    ]


def test_retry_after_http_date_and_budget_cap(server: ScriptedServer) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    server.queue = [(503, gerr(503, "UNAVAILABLE"), {"Retry-After": when}), (200, service())]
    api, delays, _ = make(server)
    api.get_service("svc")
    assert 3.5 <= delays[0] <= 5.0
    server.queue = [(429, gerr(429, "RESOURCE_EXHAUSTED"), {"Retry-After": "3600"}), (200, service())]
    api, delays, _ = make(server, policy=RetryPolicy(total=2.0, base_delay=0.01))
    api.get_service("svc")
    assert 0 < delays[0] <= 2.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retried(server: ScriptedServer, status: int) -> None:
    server.queue = [(status, gerr(status, "UNAVAILABLE")), (status, "<html>oops</html>"), (200, service())]
    api, delays, _ = make(server)
    assert api.get_service("svc") is not None
    assert len(server.requests) == 3
    assert delays == [0.01, 0.02]  # exponential (jitter pinned to the cap)


def test_400_not_retried_and_parsed(server: ScriptedServer) -> None:
    violations = [{"field": "spec.traffic[0].tag", "description": "must be a DNS-1035 label"}]
    server.default = lambda req: (400, gerr(400, "INVALID_ARGUMENT", "spec.traffic: invalid tag", violations))
    api, delays, _ = make(server)
    with pytest.raises(ApiError) as info:
        api.replace_service("svc", service())
    err = info.value
    assert (err.status, err.reason, err.message) == (400, "INVALID_ARGUMENT", "spec.traffic: invalid tag")
    assert err.field_violations == violations
    assert str(err) == (
        "400 INVALID_ARGUMENT: spec.traffic: invalid tag"
        " (field spec.traffic[0].tag: must be a DNS-1035 label)"
    )
    assert len(server.requests) == 1 and delays == []


@pytest.mark.parametrize("status", [401, 403, 412])
def test_other_4xx_not_retried(server: ScriptedServer, status: int) -> None:
    server.default = lambda req: (status, gerr(status, "PERMISSION_DENIED", "nope"))
    api, _, _ = make(server)
    with pytest.raises(ApiError) as info:
        api.get_service("svc")
    assert info.value.status == status
    assert len(server.requests) == 1


def test_attempts_bounded(server: ScriptedServer) -> None:
    server.default = lambda req: (503, gerr(503, "UNAVAILABLE", "try later"))
    api, delays, _ = make(server, policy=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02))
    with pytest.raises(ApiError) as info:
        api.get_service("svc")
    assert info.value.status == 503 and "try later" in str(info.value)
    assert len(server.requests) == 4 and len(delays) == 3
    assert max(delays) <= 0.02


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def __call__(self) -> float:
        return self.now


def test_total_budget_bounded(server: ScriptedServer) -> None:
    server.default = lambda req: (503, gerr(503, "UNAVAILABLE"))
    clock = FakeClock()
    api = CloudRun(
        requests.Session(),
        region=REGION,
        project=PROJECT,
        api_endpoint=server.url,
        policy=RetryPolicy(attempts=100, base_delay=0.5, max_delay=8.0, total=3.0),
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(ApiError):
        api.get_service("svc")
    assert sum(clock.sleeps) <= 3.0
    assert len(server.requests) == 4  # at 0, 0.5, 1.5, 3.0


def test_connection_reset_retried(server: ScriptedServer) -> None:
    server.queue = ["reset", "reset", (200, service())]
    api, delays, logs = make(server)
    assert api.get_service("svc") is not None
    assert len(server.requests) == 3 and len(delays) == 2
    assert logs[0].startswith("UNAVAILABLE (ConnectionError) on GET .../services/svc; retrying")


def test_read_timeout_retried(server: ScriptedServer) -> None:
    server.queue = [("hang", 1.0), (200, service())]
    api, _, logs = make(server)
    started = time.monotonic()
    assert api.get_service("svc") is not None
    assert time.monotonic() - started < 1.0
    assert "DEADLINE_EXCEEDED (ReadTimeout)" in logs[0]


def test_transport_error_after_retries_has_no_token() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here: connection refused
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {SECRET}"
    logs: list[str] = []
    api = CloudRun(
        session,
        region=REGION,
        project=PROJECT,
        api_endpoint=f"http://127.0.0.1:{port}",
        policy=RetryPolicy(attempts=2, base_delay=0.01),
        sleep=lambda s: None,
        log=logs.append,
    )
    with pytest.raises(TransportError) as info:
        api.get_service("svc")
    assert info.value.status == 0 and info.value.reason == "UNAVAILABLE"
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no request objects kept
    for text in (str(info.value), repr(info.value), *logs):
        assert SECRET not in text and "Authorization" not in text


def test_authorization_never_in_api_error(server: ScriptedServer) -> None:
    server.default = lambda req: (400, gerr(400, "INVALID_ARGUMENT", "bad"))
    api, _, _ = make(server)
    with pytest.raises(ApiError) as info:
        api.create_service(service())
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"  # it was sent...
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)  # ...but never shown
    assert "Authorization" not in str(info.value)


def test_explicit_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def fake_request(self: requests.Session, method: str, url: str, **kw: Any) -> requests.Response:
        seen.append({"method": method, "url": url, **kw})
        resp = requests.Response()
        resp.status_code = 200
        resp._content = b'{"bindings": []}'
        return resp

    monkeypatch.setattr(requests.Session, "request", fake_request)
    api = CloudRun(requests.Session(), region=REGION, project=PROJECT)
    api.get_service("svc")
    api.get_iam_policy("svc")
    api.set_iam_policy("svc", {"bindings": [], "etag": "x"})
    assert all(call["timeout"] == (5.0, 30.0) for call in seen)
    assert seen[0]["url"] == f"https://us-central1-run.googleapis.com{NS}/services/svc"
    assert seen[1]["url"] == (
        "https://run.googleapis.com/v1/projects/proj/locations/us-central1/services/svc:getIamPolicy"
    )
    assert seen[1]["params"] == {"options.requestedPolicyVersion": "3"}  # conditions come back whole
    assert (seen[2]["method"], seen[2]["url"]) == (
        "POST",
        "https://run.googleapis.com/v1/projects/proj/locations/us-central1/services/svc:setIamPolicy",
    )
    assert seen[2]["json"] == {"policy": {"bindings": [], "etag": "x", "version": 3}}


# ---- uncertain writes ----------------------------------------------------------------------


class FakeServiceStore:
    """A one-service control plane: GET and PUT with resourceVersion checks."""

    def __init__(self, svc: dict[str, Any]) -> None:
        self.svc = svc
        self.lose_next_put_response = 0
        self.fail_next_put = 0

    def handle(self, req: Req) -> Reply:
        if req.method == "GET":
            return (200, self.svc)
        if req.method == "PUT":
            if self.fail_next_put:
                self.fail_next_put -= 1
                return (503, gerr(503, "UNAVAILABLE"))
            if req.body["metadata"].get("resourceVersion") != self.svc["metadata"]["resourceVersion"]:
                return (409, gerr(409, "ABORTED", "resourceVersion is stale"))
            new = copy.deepcopy(req.body)
            new["metadata"]["resourceVersion"] = str(int(self.svc["metadata"]["resourceVersion"]) + 1)
            new["status"] = {"observedGeneration": 2}
            self.svc = new
            if self.lose_next_put_response:
                self.lose_next_put_response -= 1
                return "reset"
            return (200, self.svc)
        return (405, gerr(405, "UNIMPLEMENTED"))


def _new_spec(svc: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(svc)
    body["spec"]["traffic"] = [
        {"revisionName": "svc-00001-abc", "percent": 100},
        {"revisionName": "svc-00002-def", "percent": 0, "tag": "canary"},
    ]
    body["spec"]["template"]["metadata"]["name"] = "svc-00002-def"
    body["metadata"]["annotations"]["run-canary.dev/rollout"] = '{"step": 0}'
    return body


def test_put_that_landed_is_verified_not_repeated(server: ScriptedServer) -> None:
    store = FakeServiceStore(service(rv="7"))
    store.lose_next_put_response = 1
    server.default = store.handle
    api, _, logs = make(server)
    result = api.replace_service("svc", _new_spec(store.svc))
    assert server.methods() == ["PUT", "GET"]
    assert result["metadata"]["resourceVersion"] == "8"
    assert result["spec"]["template"]["metadata"]["name"] == "svc-00002-def"
    assert api.request_count == {"read": 1, "write": 1}
    assert len(logs) == 1


def test_put_that_did_not_land_is_retried_with_original_version(server: ScriptedServer) -> None:
    store = FakeServiceStore(service(rv="7"))
    store.fail_next_put = 2
    server.default = store.handle
    api, _, _ = make(server)
    result = api.replace_service("svc", _new_spec(store.svc))
    assert server.methods() == ["PUT", "GET", "PUT", "GET", "PUT"]
    assert [r.body["metadata"]["resourceVersion"] for r in server.requests if r.method == "PUT"] == ["7"] * 3
    assert result["metadata"]["resourceVersion"] == "8"


def test_put_lost_then_concurrent_change_surfaces_conflict(server: ScriptedServer) -> None:
    store = FakeServiceStore(service(rv="7"))
    server.queue = [(503, gerr(503, "UNAVAILABLE"))]  # not landed...
    server.default = store.handle
    api, _, _ = make(server)
    body = _new_spec(store.svc)
    store.svc["metadata"]["resourceVersion"] = "9"  # ...and someone else wrote meanwhile
    with pytest.raises(Conflict) as info:
        api.replace_service("svc", body)
    assert info.value.status == 409 and info.value.reason == "ABORTED"
    assert server.methods() == ["PUT", "GET", "PUT"]


def test_409_is_conflict_without_retry(server: ScriptedServer) -> None:
    server.default = lambda req: (409, gerr(409, "ABORTED", "stale"))
    api, _, _ = make(server)
    with pytest.raises(Conflict):
        api.replace_service("svc", service())
    assert len(server.requests) == 1


def test_create_uncertain_then_already_exists_returns_ours(server: ScriptedServer) -> None:
    created = service(rv="1")
    server.queue = ["reset", (409, gerr(409, "ALREADY_EXISTS", "exists")), (200, created)]
    api, _, _ = make(server)
    assert api.create_service(service(rv="")) == created
    assert server.methods() == ["POST", "POST", "GET"]


def test_create_already_exists_not_ours_is_conflict(server: ScriptedServer) -> None:
    server.queue = [
        "reset",
        (409, gerr(409, "ALREADY_EXISTS", "exists")),
        (200, service(revision="svc-other")),
    ]
    api, _, _ = make(server)
    with pytest.raises(Conflict):
        api.create_service(service(rv=""))
    server.requests.clear()
    server.queue = [(409, gerr(409, "ALREADY_EXISTS", "exists"))]
    with pytest.raises(Conflict):
        api.create_service(service(rv=""))
    assert server.methods() == ["POST"]  # certain failure: no GET


def test_write_landed_rules() -> None:
    sent = _new_spec(service(rv="7"))
    landed = copy.deepcopy(sent)
    landed["metadata"]["resourceVersion"] = "8"
    landed["spec"]["traffic"][1].pop("percent")  # zero values are omitted on the wire
    landed["metadata"]["annotations"]["serving.knative.dev/lastModifier"] = "x"
    assert write_landed(sent, landed)
    assert not write_landed(sent, sent)  # same resourceVersion: not our write
    other = copy.deepcopy(landed)
    other["metadata"]["annotations"].pop("run-canary.dev/rollout")
    assert not write_landed(sent, other)
    other = copy.deepcopy(landed)
    other["spec"]["traffic"][0]["percent"] = 90
    assert not write_landed(sent, other)
    assert not write_landed(sent, None)


# ---- reads, paths, misc ----------------------------------------------------------------------


def test_get_service_404_is_none(server: ScriptedServer) -> None:
    api, _, _ = make(server)
    assert api.get_service("missing") is None
    assert api.get_revision("missing") is None
    assert [r.path for r in server.requests] == [f"{LOC}/services/missing", f"{LOC}/revisions/missing"]
    with pytest.raises(NotFound):
        api.get_iam_policy("missing")


def test_non_json_error_body() -> None:
    resp = requests.Response()
    resp.status_code = 502
    resp.reason = "Bad Gateway"
    resp._content = b"<html>\n<body>Bad   gateway</body></html>"
    err = error_from_response(resp, "GET", "http://x")
    assert (err.status, err.reason) == (502, "UNAVAILABLE")
    assert str(err) == "502 UNAVAILABLE: <html> <body>Bad gateway</body></html>"
    resp._content = b""
    assert str(error_from_response(resp)) == "502 UNAVAILABLE: Bad Gateway"
    resp.status_code = 409
    resp._content = json.dumps(
        {"kind": "Status", "reason": "Conflict", "message": "stale", "code": 409}
    ).encode()
    assert isinstance(error_from_response(resp), Conflict)
    assert str(error_from_response(resp)) == "409 Conflict: stale"


def test_dry_run_query(server: ScriptedServer) -> None:
    server.default = lambda req: (200, service())
    api, _, _ = make(server)
    api.create_service(service(), dry_run=True)
    api.replace_service("svc", service(), dry_run=True)
    api.replace_service("svc", service())
    assert [(r.method, r.path, r.query.get("dryRun")) for r in server.requests] == [
        ("POST", f"{LOC}/services", ["all"]),
        ("PUT", f"{LOC}/services/svc", ["all"]),
        ("PUT", f"{LOC}/services/svc", None),
    ]
    assert api.request_count["write"] == 3


def test_iam_paths_on_endpoint(server: ScriptedServer) -> None:
    policy = {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}], "etag": "BwX="}
    server.default = lambda req: (200, policy)
    api, _, _ = make(server)
    assert api.get_iam_policy("svc") == policy
    api.set_iam_policy("svc", policy)
    base = f"/v1/projects/{PROJECT}/locations/{REGION}/services/svc"
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", f"{base}:getIamPolicy"),
        ("POST", f"{base}:setIamPolicy"),
    ]
    assert server.requests[0].query == {"options.requestedPolicyVersion": ["3"]}
    assert server.requests[1].body == {"policy": {**policy, "version": 3}}
    assert api.request_count == {"read": 1, "write": 1}


def test_set_iam_policy_lost_response_verified(server: ScriptedServer) -> None:
    policy = {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}], "etag": "new"}
    server.queue = ["reset", (200, policy)]
    api, _, _ = make(server)
    assert api.set_iam_policy("svc", {**policy, "etag": "old"}) == policy
    assert server.methods() == ["POST", "GET"]


def test_list_revisions_follows_continue(server: ScriptedServer) -> None:
    def page(req: Req) -> Reply:
        token = req.query.get("continue", [""])[0]
        if token == "":
            return (200, {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "t1"}})
        if token == "t1":
            return (200, {"items": [{"metadata": {"name": "b"}}], "metadata": {"continue": "t2"}})
        return (200, {"items": [{"metadata": {"name": "c"}}], "metadata": {}})

    server.default = page
    api, _, _ = make(server)
    assert [r["metadata"]["name"] for r in api.list_revisions("svc")] == ["a", "b", "c"]
    assert all(r.query["labelSelector"] == ["serving.knative.dev/service=svc"] for r in server.requests)
    assert all(r.path == f"{LOC}/revisions" for r in server.requests)


def test_should_stop_before_any_request(server: ScriptedServer) -> None:
    api, _, _ = make(server, should_stop=lambda: True)
    with pytest.raises(Cancelled):
        api.get_service("svc")
    assert server.requests == []


def test_should_stop_interrupts_backoff_quickly(server: ScriptedServer) -> None:
    server.default = lambda req: (503, gerr(503, "UNAVAILABLE"), {"Retry-After": "30"})
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    api = CloudRun(
        requests.Session(),
        region=REGION,
        project=PROJECT,
        api_endpoint=server.url,
        policy=RetryPolicy(total=60),
        should_stop=stop.is_set,
    )
    started = time.monotonic()
    with pytest.raises(Cancelled):
        api.replace_service("svc", service())
    assert time.monotonic() - started < 1.5
    assert server.methods()[:1] == ["PUT"]


def test_with_policy_shares_session_and_counters(server: ScriptedServer) -> None:
    server.queue = [(503, gerr(503, "UNAVAILABLE"))]
    api, _, _ = make(server)
    fast = api.with_policy(RetryPolicy(attempts=1))
    with pytest.raises(ApiError):
        fast.get_service("svc")
    assert fast.session is api.session and fast.knative_base == api.knative_base
    assert api.request_count["read"] == 1


# The HTTP Mapping of every google.rpc.Code (google/rpc/code.proto, AIP-193).
CODE_PROTO_HTTP = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


def test_one_status_map_for_client_and_emulator() -> None:
    from cloudrun_emulator import server as emulator_server

    assert CANONICAL_CODES == emulator_server.CANONICAL_CODES
    beyond_code_proto = {412, 502}  # not mapped by code.proto; see the comment on CANONICAL_CODES
    for status, code in CANONICAL_CODES.items():
        assert status in beyond_code_proto or CODE_PROTO_HTTP[code] == status, (status, code)
    for status in CODE_PROTO_HTTP.values():  # every status code.proto uses has a code
        assert status in CANONICAL_CODES
