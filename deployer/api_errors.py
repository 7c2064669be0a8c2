"""What an error answer of a Google API says: the canonical code of an HTTP status and the
``ApiError`` (``NotFound``, ``Conflict``) built from a Google or Kubernetes ``Status`` error body.
Shared by every client of a Google API the action talks to."""

from __future__ import annotations

from typing import Any

import requests

from deployer.errors import ApiError, Conflict, NotFound

# HTTP status -> canonical error code, for error answers without a Google error body. From the
# "HTTP Mapping" of each code in google/rpc/code.proto (also the table in AIP-193 and in
# cloud.google.com/apis/design/errors), taking for a status shared by several codes the generic one
# (400 INVALID_ARGUMENT, 409 ABORTED, 500 INTERNAL). Two statuses code.proto does not map: 412 is
# FAILED_PRECONDITION (what a failed If-Match means) and 502 is UNAVAILABLE (gRPC's
# doc/http-grpc-status-mapping.md). The emulator (cloudrun_emulator/server.py) keeps an identical copy
# because neither product may import the other and the action image ships only deployer/;
# tests/unit/test_client.py asserts the two are equal.
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


def error_from_response(resp: requests.Response, method: str = "", url: str = "") -> ApiError:
    """Build the right ApiError subclass from a Google (or Kubernetes Status) error body."""
    status = resp.status_code
    reason, message = CANONICAL_CODES.get(status, resp.reason or "ERROR"), ""
    violations: list[dict[str, Any]] = []
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        reason = str(err.get("status") or reason)
        message = str(err.get("message") or "")
        for detail in err.get("details") or []:
            if isinstance(detail, dict) and isinstance(detail.get("fieldViolations"), list):
                violations.extend(v for v in detail["fieldViolations"] if isinstance(v, dict))
    elif isinstance(payload, dict) and payload.get("kind") == "Status":  # Knative on Kubernetes
        reason = str(payload.get("reason") or reason)
        message = str(payload.get("message") or "")
    if not message:
        text = (resp.text or "").strip()
        message = " ".join(text.split())[:200] or (resp.reason or "no error message")
    cls = NotFound if status == 404 else Conflict if status == 409 else ApiError
    return cls(status, reason, message, violations, method=method, url=url)
